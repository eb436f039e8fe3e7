package bridge

import (
	"errors"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
)

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, filter string
		err             bool
	}{
		{"site1/kitchen/{content}/{reaction}", "site1/kitchen/+/+", false},
		{"{reaction}/{content}", "+/+", false},
		{"+/line/{content}/x/{reaction}/#", "+/line/+/x/+/#", false},
		{"site1/{content}", "", true},                // no reaction
		{"{content}/{content}/{reaction}", "", true}, // twice
		{"a/#/{content}/{reaction}", "", true},       // # not last
		{"a/b{content}/{reaction}", "", true},        // braces mixed with text
		{"a/x+/{content}/{reaction}", "", true},      // wildcard mixed with text
		{"$share/g/{content}/{reaction}", "", true},  // share group goes elsewhere
		{"", "", true},
	} {
		tp, err := parsePattern(tc.pattern)
		if tc.err {
			if !errors.Is(err, ErrInvalidUpstream) {
				t.Errorf("parsePattern(%q) = %v, want ErrInvalidUpstream", tc.pattern, err)
			}
			continue
		}
		if err != nil || tp.filter != tc.filter {
			t.Errorf("parsePattern(%q) = %q, %v; want %q", tc.pattern, tp.filter, err, tc.filter)
		}
	}
}

func TestTopicPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, topic    string
		content, reaction string
		ok                bool
	}{
		{"site1/kitchen/{content}/{reaction}", "site1/kitchen/stove-3/active", "stove-3", "active", true},
		{"site1/kitchen/{content}/{reaction}", "site1/kitchen/stove-3", "", "", false},
		{"site1/kitchen/{content}/{reaction}", "site1/kitchen/stove-3/active/x", "", "", false},
		{"site1/kitchen/{content}/{reaction}", "site2/kitchen/stove-3/active", "", "", false},
		{"{reaction}/+/{content}", "busy/any/line-1", "line-1", "busy", true},
		{"f/{content}/{reaction}/#", "f/c/r", "c", "r", true},
		{"f/{content}/{reaction}/#", "f/c/r/more/levels", "c", "r", true},
		{"f/{content}/{reaction}/#", "f/c", "", "", false},
		{"f/{content}/{reaction}", "f//r", "", "r", true}, // empty id: the event check refuses it
	} {
		tp, err := parsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("parsePattern(%q): %v", tc.pattern, err)
		}
		c, r, ok := tp.match(tc.topic)
		if c != tc.content || r != tc.reaction || ok != tc.ok {
			t.Errorf("%q.match(%q) = %q, %q, %v; want %q, %q, %v", tc.pattern, tc.topic, c, r, ok, tc.content, tc.reaction, tc.ok)
		}
	}
}

func TestCheckUpstreams(t *testing.T) {
	good := Upstream{Name: "f", URL: "tcp://10.0.0.5:1883", ClientID: "arina-1", Topics: []string{"k/{content}/{reaction}"}}
	if err := CheckUpstreams([]Upstream{good}); err != nil {
		t.Fatalf("CheckUpstreams(good) = %v", err)
	}
	for name, mutate := range map[string]func(*Upstream){
		"no name":      func(u *Upstream) { u.Name = "" },
		"no client id": func(u *Upstream) { u.ClientID = "" },
		"bad scheme":   func(u *Upstream) { u.URL = "http://x:1" },
		"no host":      func(u *Upstream) { u.URL = "tcp://" },
		"no topics":    func(u *Upstream) { u.Topics = nil },
		"bad topic":    func(u *Upstream) { u.Topics = []string{"k/+"} },
		"bad share":    func(u *Upstream) { u.ShareGroup = "a/b" },
	} {
		u := good
		mutate(&u)
		if err := CheckUpstreams([]Upstream{u}); !errors.Is(err, ErrInvalidUpstream) {
			t.Errorf("%s: CheckUpstreams = %v, want ErrInvalidUpstream", name, err)
		}
	}
	if err := CheckUpstreams([]Upstream{good, good}); !errors.Is(err, ErrInvalidUpstream) {
		t.Errorf("duplicate name and client id: CheckUpstreams = %v, want ErrInvalidUpstream", err)
	}
	// The reconnect cap: 0 (the default) or 100ms to 1h, named by its configuration key.
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {100 * time.Millisecond, true}, {time.Hour, true}, {-time.Second, false}, {99 * time.Millisecond, false}, {time.Hour + 1, false}} {
		u := good
		u.MaxReconnectInterval = tc.d
		err := CheckUpstreams([]Upstream{good, {Name: "g", URL: u.URL, ClientID: "arina-2", Topics: u.Topics, MaxReconnectInterval: tc.d}})
		var fe *optcheck.FieldError
		if tc.ok && err != nil {
			t.Errorf("max_reconnect_interval %v: CheckUpstreams = %v, want nil", tc.d, err)
		}
		if !tc.ok && (!errors.As(err, &fe) || fe.Field != "bridge.upstreams[1].max_reconnect_interval" || !errors.Is(err, optcheck.ErrOutOfRange)) {
			t.Errorf("max_reconnect_interval %v: CheckUpstreams = %v, want bridge.upstreams[1].max_reconnect_interval out of range", tc.d, err)
		}
	}
}

// FuzzTopicPatternMatch: matching never panics, and a match maps back onto the topic.
func FuzzTopicPatternMatch(f *testing.F) {
	f.Add("site1/kitchen/{content}/{reaction}", "site1/kitchen/stove-3/active")
	f.Add("f/{content}/{reaction}/#", "f/c/r/x")
	f.Add("{reaction}/+/{content}", "a//b")
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		tp, err := parsePattern(pattern)
		if err != nil {
			return
		}
		c, r, ok := tp.match(topic)
		if !ok {
			return
		}
		levels := splitLevels(topic)
		if levels[tp.content] != c || levels[tp.reaction] != r {
			t.Fatalf("%q.match(%q) = %q, %q; levels %q", pattern, topic, c, r, levels)
		}
	})
}

func splitLevels(topic string) []string {
	var out []string
	start := 0
	for i := 0; i < len(topic); i++ {
		if topic[i] == '/' {
			out = append(out, topic[start:i])
			start = i + 1
		}
	}
	return append(out, topic[start:])
}
