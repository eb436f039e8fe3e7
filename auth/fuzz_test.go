package auth

import (
	"errors"
	"strings"
	"testing"
)

// The committed seeds are in testdata/fuzz/<FuzzName>/; the tables of the unit tests
// are added here too. CI runs each target briefly: go test -fuzz=FuzzAllow -fuzztime=30s.

func FuzzParseUsers(f *testing.F) {
	f.Add([]byte(testUsersYAML))
	f.Add([]byte(usersWithRules("write devices/%c/state", "deny kitchen/secret/#", "read $SYS/+/x")))
	f.Add([]byte("users: []\n"))
	f.Add([]byte("users:\n  - username: a\n    password_hash: x\n    acl: [{topic: a/#/b, access: all}]\n"))
	f.Add([]byte("users: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		us, err := ParseUsers(data)
		if err != nil {
			if us != nil {
				t.Fatal("users returned with an error")
			}
			if !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("error %v does not wrap ErrInvalidFile", err)
			}
			return
		}
		for name := range us.byName {
			for _, topic := range []string{"a", "kitchen/x/active", "#", "$SYS/x", "devices/c/state", "a/+/b"} {
				us.Allow(name, "c", topic, Read)
				us.Allow(name, "c", topic, Write)
			}
		}
	})
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte(testTokensYAML))
	f.Add([]byte("tokens: []\n"))
	f.Add([]byte("tokens:\n  - {name: a, sha256: '" + sha256Hex("x") + "', scopes: [read, admin]}\n"))
	f.Add([]byte("tokens: [{name: a, sha256: 00, scopes: read}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ParseTokens(data)
		if err != nil {
			if ts != nil {
				t.Fatal("tokens returned with an error")
			}
			if !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("error %v does not wrap ErrInvalidFile", err)
			}
			return
		}
		for _, tok := range []string{"", "x", "line-secret"} {
			if name, _, ok := ts.Check(tok); ok && name == "" {
				t.Fatal("a token matched an entry without a name")
			}
		}
	})
}

// FuzzAllow checks Allow against refAllow, a plain matcher, on topics, and on filters
// checks that a granted subscription only covers topics some granting rule matches.
// rules holds one "access topic" rule per line.
func FuzzAllow(f *testing.F) {
	for _, tt := range allowCases {
		f.Add(strings.Join(tt.rules, "\n"), "u", tt.clientID, tt.topic, tt.access == Read)
	}
	f.Fuzz(func(t *testing.T, rules, username, clientID, topic string, read bool) {
		us, lines := fuzzUsers(username, rules)
		access := Write
		if read {
			access = Read
		}
		got := us.Allow(username, clientID, topic, access)
		if !strings.ContainsAny(topic, "+#") {
			if want := refAllow(lines, username, clientID, topic, access); got != want {
				t.Fatalf("rules %q: Allow(%q, %q, %q, %v) = %v, reference says %v", lines, username, clientID, topic, access, got, want)
			}
			return
		}
		if !got {
			return
		}
		if !read || !validTopic(topic, true) {
			t.Fatalf("Allow granted %v on filter %q", access, topic)
		}
		// Every topic the filter matches must be matched by a granting rule.
		for _, tt := range filterSamples(topic) {
			if !refGranted(lines, username, clientID, tt) {
				t.Fatalf("rules %q: %q may subscribe to %q, but no rule grants read on %q", lines, username, topic, tt)
			}
		}
	})
}

// filterSamples returns topics the valid filter f matches: '+' filled with "x" or an
// empty level, and for a trailing '#' its parent and one and two levels below.
func filterSamples(f string) []string {
	var out []string
	for _, fill := range []string{"x", ""} {
		levels := strings.Split(f, "/")
		for i, lv := range levels {
			if lv == "+" {
				levels[i] = fill
			}
		}
		if levels[len(levels)-1] != "#" {
			out = append(out, strings.Join(levels, "/"))
			continue
		}
		base := levels[:len(levels)-1]
		if len(base) > 0 {
			out = append(out, strings.Join(base, "/"))
		}
		out = append(out, strings.Join(append(base, "x"), "/"), strings.Join(append(base, "x", fill), "/"))
	}
	return out
}

// fuzzUsers builds Users with one user holding the valid rules among lines, skipping
// the YAML (whose quoting the fuzzer would mostly exercise instead).
func fuzzUsers(username, rules string) (*Users, []string) {
	u := &user{name: username}
	var kept []string
	for line := range strings.SplitSeq(rules, "\n") {
		a, topic, _ := strings.Cut(line, " ")
		levels, usesU, usesC, err := compileFilter(topic)
		if err != nil {
			continue
		}
		grant, deny, err := parseAccess(a)
		if err != nil {
			continue
		}
		u.rules = append(u.rules, rule{topic: topic, levels: levels, grant: grant, deny: deny, usesU: usesU, usesC: usesC})
		kept = append(kept, line)
	}
	return &Users{byName: map[string]*user{username: u}}, kept
}

// refGranted reports whether a rule granting read matches topic, deny rules aside.
func refGranted(rules []string, user, client, topic string) bool {
	for _, r := range rules {
		a, filter, _ := strings.Cut(r, " ")
		grant, _, err := parseAccess(a)
		if err != nil || grant&Read == 0 {
			continue
		}
		if (strings.Contains(filter, "%u") && unsafeValue(user)) || (strings.Contains(filter, "%c") && unsafeValue(client)) {
			continue
		}
		filter = strings.ReplaceAll(strings.ReplaceAll(filter, "%u", user), "%c", client)
		if refMatch(filter, topic) {
			return true
		}
	}
	return false
}
