package broker

import (
	"regexp"
	"testing"
)

// TestObjectID: discovery object ids use only [a-zA-Z0-9_-], are the plain
// arina_<content>_<reaction> when that can be read back, and pairs that would map alike
// stay apart.
func TestObjectID(t *testing.T) {
	t.Parallel()
	safe := regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	for _, tc := range []struct{ content, reaction, want string }{
		{"Stew", "fire", "arina_Stew_fire"},
		{"range-2", "gas_on", "arina_range-2_gas_on"},
	} {
		if got := ObjectID(tc.content, tc.reaction); got != tc.want {
			t.Errorf("ObjectID(%q, %q) = %q, want %q", tc.content, tc.reaction, got, tc.want)
		}
	}
	pairs := [][2]string{{"a_b", "c"}, {"a", "b_c"}, {"a b", "c"}, {"a.b", "c"}, {"a", "b c"}, {"a", "b.c"},
		{"Crème", "fire"}, {"Cr\u00e8me", "fire!"}, {"é", "x"}, {"è", "x"}, {"a", "b"}, {"a_", "b"}, {"a", "_b"}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		id := ObjectID(p[0], p[1])
		if !safe.MatchString(id) {
			t.Errorf("ObjectID(%q, %q) = %q: characters outside [a-zA-Z0-9_-]", p[0], p[1], id)
		}
		if other, ok := seen[id]; ok {
			t.Errorf("ObjectID(%q, %q) = ObjectID(%q, %q) = %q", p[0], p[1], other[0], other[1], id)
		}
		seen[id] = p
		if ObjectID(p[0], p[1]) != id {
			t.Errorf("ObjectID(%q, %q) not deterministic", p[0], p[1])
		}
	}
	if a, b := SafeTopicID("line 1"), SafeTopicID("line_1"); a == b || !safe.MatchString(a) || b != "line_1" {
		t.Errorf("SafeTopicID: %q, %q", a, b)
	}
	if id := SafeTopicID(""); !safe.MatchString(id) {
		t.Errorf("SafeTopicID(\"\") = %q", id)
	}
}
