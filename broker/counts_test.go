package broker

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/arina-dev/arina/store"
)

// TestCountsJSON_MatchesEncodingJSON: the count JSON built by hand is byte for byte
// what encoding/json makes of countsMessage, for ids with characters it escapes (HTML
// characters, quotes, control characters, U+2028/9, invalid UTF-8) and for any order
// of reactions the store returns.
func TestCountsJSON_MatchesEncodingJSON(t *testing.T) {
	pieces := []string{"a", "Stew", "é", "火", "<", ">", "&", `"`, `\`, "\n", "\t", "\b", "\f", "\r", "\x01", "\x1f", "\x7f",
		"\u2028", "\u2029", "\xff", "\xe2\x80", "😀", " ", "/", "_", "\u00a0", "\ufeff"}
	rng := rand.New(rand.NewPCG(1, 2))
	id := func() string {
		var sb strings.Builder
		for range rng.IntN(6) + 1 {
			sb.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return sb.String()
	}
	for range 5000 {
		content := id()
		var rc []store.ReactionCount
		msg := countsMessage{ContentID: content, ReactionCount: map[string]int64{}}
		for range rng.IntN(5) {
			r := id()
			if _, dup := msg.ReactionCount[r]; dup {
				continue
			}
			n := rng.Int64N(1<<40) - 10
			rc = append(rc, store.ReactionCount{ReactionType: r, Count: n})
			msg.ReactionCount[r] = n
		}
		want, err := json.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
		if got := appendCountsJSON(nil, content, rc); !bytes.Equal(got, want) {
			t.Fatalf("content %q, counts %v:\n got %s\nwant %s", content, rc, got, want)
		}
	}
}

// TestMatchFilter: what matchFilter says a filter matches of the count topics is what
// MQTT's topic matching (4.7) says, level by level, for every filter over a set of
// topics: the prefix, contents and reactions named in the filters, and others.
func TestMatchFilter(t *testing.T) {
	const prefix = "plant/counts"
	contents := []string{"Stew", "Soup", "counts", "+x"}
	reactions := []string{"fire", "yum", "Stew"}
	var topics []string
	for _, c := range contents {
		topics = append(topics, prefix+"/"+c)
		for _, r := range reactions {
			topics = append(topics, prefix+"/"+c+"/"+r)
		}
	}
	levels := []string{"plant", "counts", "Stew", "Soup", "fire", "yum", "other", "+", "#", ""}
	var filters []string
	var gen func(f string, n int)
	gen = func(f string, n int) {
		if f != "" {
			filters = append(filters, f)
		}
		if n == 0 || strings.HasSuffix(f, "#") {
			return
		}
		for _, l := range levels {
			if f == "" {
				gen(l, n-1)
			} else {
				gen(f+"/"+l, n-1)
			}
		}
	}
	gen("", 5)
	for _, perReaction := range []bool{true, false} {
		for _, f := range filters {
			sel, ok := matchFilter(prefix, f, perReaction)
			for _, topic := range topics {
				isReaction := strings.Count(topic, "/") == 3
				if isReaction && !perReaction {
					continue
				}
				parts := strings.Split(topic, "/")
				want := mqttMatch(f, topic)
				r := ""
				if isReaction {
					r = parts[3]
				}
				got := ok && sel.has(parts[2], r)
				if got != want {
					t.Fatalf("perReaction %v, filter %q, topic %q: matchFilter says %v (%+v, %v), MQTT says %v", perReaction, f, topic, got, sel, ok, want)
				}
			}
		}
	}
}

// mqttMatch reports whether filter matches topic as MQTT 4.7 says (no '$' topics).
func mqttMatch(filter, topic string) bool {
	f, tp := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, l := range f {
		if l == "#" {
			return i == len(f)-1
		}
		if i >= len(tp) || l != "+" && l != tp[i] {
			return false
		}
	}
	return len(f) == len(tp)
}
