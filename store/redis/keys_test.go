package redis

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/arina-dev/arina/store"
)

func TestKeys_ParseSet(t *testing.T) {
	k := keys{prefix: "a*[x]:"}
	for _, c := range []string{"Stew", "{", "}", "{x}", "a:b", "日本", "\xff", "x y"} {
		for _, r := range []string{"fire", ":", "{}", "m:x"} {
			tag := k.tag(c)
			if strings.Count(tag, "{") != 1 || strings.Count(tag, "}") != 1 || tag == "{}" {
				t.Fatalf("tag(%q) = %q: not one non-empty hash tag", c, tag)
			}
			key := k.set(tag, kindExpiry, r)
			gc, gr, ok := k.parseSet(key, kindExpiry)
			if !ok || gc != c || gr != r {
				t.Fatalf("parseSet(%q) = %q, %q, %v; want %q, %q", key, gc, gr, ok, c, r)
			}
			if _, _, ok := k.parseSet(key, kindTomb); ok {
				t.Fatalf("parseSet(%q, d) matched an x key", key)
			}
		}
	}
	for _, key := range []string{"", "a*[x]:", "a*[x]:{", "a*[x]:{!!}:x:r", "a*[x]:{}:x:r", "b:{U3Rldw}:x:r", "a*[x]:{U3Rldw}:m:r", "a*[x]:u:{U3Rldw}:x:r"} {
		if c, r, ok := k.parseSet(key, kindExpiry); ok {
			t.Errorf("parseSet(%q) = %q, %q: want no match", key, c, r)
		}
	}
}

func TestGlobEscape(t *testing.T) {
	for in, want := range map[string]string{"arina:": "arina:", "a*b?c[d]e\\": `a\*b\?c\[d\]e\\`, "": ""} {
		if got := globEscape(in); got != want {
			t.Errorf("globEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", false}, {"a", "b", true}, {"line-", "line.", true}, {"a\xff", "b", true}, {"\xff\xff", "", false},
	} {
		got, ok := prefixEnd(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseIndexValue(t *testing.T) {
	for in, want := range map[string]struct {
		exp    int64
		member bool
	}{
		"0 m 0": {0, true}, "12 m 1700000000000": {1700000000000, true}, "3 t 99": {0, false},
		"": {0, false}, "m 5": {0, false}, "1 m x": {0, false},
	} {
		exp, member := parseIndexValue(in)
		if exp != want.exp || member != want.member {
			t.Errorf("parseIndexValue(%q) = %d, %v; want %d, %v", in, exp, member, want.exp, want.member)
		}
	}
}

// encodeMessage writes a feed message as apply.lua does.
func encodeMessage(node string, at int64, changes []store.Change) string {
	var b strings.Builder
	field := func(s string) { b.WriteString(strconv.Itoa(len(s)) + ":" + s) }
	field(feedVersion)
	field(node)
	field(strconv.FormatInt(at, 10))
	for _, c := range changes {
		field(c.ContentID)
		field(c.ReactionType)
		field(c.UserID)
		field(strconv.Itoa(int(c.Action)))
		field(strconv.FormatInt(c.Count, 10))
		field(strconv.FormatInt(c.ExpiresAt, 10))
	}
	return b.String()
}

var feedSamples = []struct {
	node    string
	at      int64
	changes []store.Change
}{
	{"n1", 1700000000000, []store.Change{{ContentID: "Stew", ReactionType: "fire", UserID: "Sam", Action: store.Add, Count: 3}}},
	{"n2", 5, []store.Change{
		{ContentID: "a:1:b", ReactionType: "9:x", UserID: "12:", Action: store.Remove, Count: 0},
		{ContentID: "{}", ReactionType: "日本", UserID: "u", Action: store.Expire, Count: 7, ExpiresAt: -1},
	}},
	{"n3", 0, nil},
}

func TestDecodeMessage(t *testing.T) {
	for _, s := range feedSamples {
		node, changes, err := decodeMessage(encodeMessage(s.node, s.at, s.changes))
		for i := range s.changes {
			s.changes[i].At = s.at
		}
		if err != nil || node != s.node || !slices.Equal(changes, s.changes) && len(s.changes) > 0 {
			t.Fatalf("decode(encode(%v)) = %q, %+v, %v", s, node, changes, err)
		}
	}
	for _, bad := range []string{"", "x", "1:1", "1:2", "1:12:n1", "1:12:n11:x", "1:12:n11:5" + "1:c1:r1:u1:91:01:0",
		"99999999999:x", "-1:", "1:12:n11:51:c1:r1:u1:11:x1:0", "1:12:n11:51:c1:r1:u1:11:01:z", "1:22:n11:5"} {
		if _, _, err := decodeMessage(bad); err == nil {
			t.Errorf("decodeMessage(%q) accepted a malformed message", bad)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range feedSamples {
		f.Add(encodeMessage(s.node, s.at, s.changes))
	}
	f.Add("1:12:n11:5")
	f.Fuzz(func(t *testing.T, p string) {
		node, changes, err := decodeMessage(p)
		if err != nil {
			return
		}
		at := int64(0)
		if len(changes) > 0 {
			at = changes[0].At
		}
		again, changes2, err := decodeMessage(encodeMessage(node, at, changes))
		if err != nil || again != node || !slices.Equal(changes, changes2) {
			t.Fatalf("round trip of %q: %q %+v, %v", p, again, changes2, err)
		}
	})
}
