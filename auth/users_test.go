package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// testHash is the bcrypt hash of "s3cret" at the minimum cost, so tests stay fast.
const testHash = "$2a$04$7Uc0EM5m0T/wGCtuOe/YUO0tioSewqtlftWu5nX.MsZEl2Q0OX/U6"

const testUsersYAML = `
users:
  - username: badge-reader-1
    password_hash: "` + testHash + `"
    acl:
      - topic: "kitchen/+/active"
        access: write
      - topic: "arina/counts/#"
        access: read
  - username: dash
    password_hash: "` + testHash + `"
    acl: []
  - username: nobody
    password_hash: "` + testHash + `"
`

// MustParseUsers parses a users file or fails the test.
func MustParseUsers(tb testing.TB, yaml string) *Users {
	tb.Helper()
	us, err := ParseUsers([]byte(yaml))
	if err != nil {
		tb.Fatalf("ParseUsers: %v", err)
	}
	return us
}

// usersWithRules is a users file with one user "u" (password s3cret) and the given
// rules, each "access topic".
func usersWithRules(rules ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "users:\n  - username: u\n    password_hash: %q\n    acl:\n", testHash)
	for _, r := range rules {
		access, topic, _ := strings.Cut(r, " ")
		fmt.Fprintf(&b, "      - {topic: %q, access: %s}\n", topic, access)
	}
	return b.String()
}

func TestParseUsers_OK(t *testing.T) {
	us := MustParseUsers(t, testUsersYAML)
	if got := us.Len(); got != 3 {
		t.Fatalf("Len = %d, want 3", got)
	}
	if !us.Allow("badge-reader-1", "c1", "kitchen/stove-3/active", Write) {
		t.Error("badge-reader-1 may not write kitchen/stove-3/active")
	}
	if us.Allow("badge-reader-1", "c1", "kitchen/stove-3/active", Read) {
		t.Error("badge-reader-1 may read kitchen/stove-3/active, a write-only rule")
	}
	if us.Allow("dash", "c1", "arina/counts/x", Read) {
		t.Error("dash, with no rules, may read")
	}
}

func TestParseUsers_Empty(t *testing.T) {
	t.Parallel() // a bcrypt check at the default cost
	us := MustParseUsers(t, "users: []\n")
	if us.Len() != 0 || us.Authenticate("x", []byte("y")) || us.Allow("x", "c", "t", Read) {
		t.Fatal("an empty users list lets someone in")
	}
}

func TestParseUsers_Errors(t *testing.T) {
	user := func(name, hash, acl string) string {
		return fmt.Sprintf("users:\n  - username: %s\n    password_hash: %q\n    acl: %s\n", name, hash, acl)
	}
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"EmptyFile", "", []string{"empty file"}},
		{"NoUsersKey", "{}\n", []string{"no users list"}},
		{"NullUsers", "users:\n", []string{"no users list"}},
		{"UnknownTopLevel", "users: []\ngroups: []\n", []string{"field groups not found"}},
		{"UnknownUserField", "users:\n  - username: a\n    password: x\n", []string{"field password not found"}},
		{"UnknownACLField", user("a", testHash, "[{topic: a, access: read, qos: 1}]"), []string{"field qos not found"}},
		{"WrongType", "users: {a: b}\n", []string{"cannot unmarshal"}},
		{"TwoDocuments", "users: []\n---\nusers: []\n", []string{"more than one YAML document"}},
		{"EmptyUsername", user(`""`, testHash, "[]"), []string{"users[0]", "username is required"}},
		{"DuplicateUsername", "users:\n  - {username: a, password_hash: '" + testHash + "'}\n  - {username: a, password_hash: '" + testHash + "'}\n",
			[]string{`users[1] ("a")`, "listed twice"}},
		{"MissingHash", "users:\n  - username: a\n", []string{`users[0] ("a")`, "password_hash: is required"}},
		{"CertificateOnlyWithHash", "users:\n  - username: a\n    certificate_only: true\n    password_hash: \"$2a$10$" + strings.Repeat("a", 53) + "\"\n", []string{"a certificate_only user has none"}},
		{"PlaintextPassword", user("a", "s3cret", "[]"), []string{"not a bcrypt hash"}},
		{"ShortHash", user("a", testHash[:59], "[]"), []string{"not a bcrypt hash"}},
		{"BadVersion", user("a", "$2x"+testHash[3:], "[]"), []string{"not a bcrypt hash"}},
		{"BadCost", user("a", "$2a$99"+testHash[6:], "[]"), []string{"not a valid bcrypt hash"}},
		{"BadAlphabet", user("a", testHash[:10]+"!"+testHash[11:], "[]"), []string{"not a bcrypt hash"}},
		{"HashInMiddle", user("a", "#"+testHash[:59], "[]"), []string{"not a bcrypt hash"}},
		{"EmptyTopic", user("a", testHash, `[{topic: "", access: read}]`), []string{"acl[0]", "topic is required"}},
		{"HashNotLast", user("a", testHash, `[{topic: "a/#/b", access: read}]`), []string{`acl[0]: topic "a/#/b"`, "last level"}},
		{"PlusInLevel", user("a", testHash, `[{topic: "a/b+", access: read}]`), []string{"whole level"}},
		{"HashInLevel", user("a", testHash, `[{topic: "a/b#", access: read}]`), []string{"whole level"}},
		{"UnknownPlaceholder", user("a", testHash, `[{topic: "a/%x", access: read}]`), []string{"%u (username) or %c"}},
		{"TrailingPercent", user("a", testHash, `[{topic: "a/b%", access: read}]`), []string{"%u (username) or %c"}},
		{"SharedFilter", user("a", testHash, `[{topic: "$share/g/a", access: read}]`), []string{"$share"}},
		{"NulInTopic", user("a", testHash, `[{topic: "a\0b", access: read}]`), []string{"NUL"}},
		{"MissingAccess", user("a", testHash, `[{topic: "a"}]`), []string{"acl[0]", "access is required"}},
		{"BadAccess", user("a", testHash, `[{topic: "a", access: all}]`), []string{`access "all" is not one of`}},
		{"AccessCase", user("a", testHash, `[{topic: "a", access: Read}]`), []string{`access "Read"`}},
		{"UnsafeUsernameWithU", user(`"a/b"`, testHash, `[{topic: "%u/x", access: read}]`), []string{"uses %u"}},
		{"DollarUsernameWithU", user(`"$a"`, testHash, `[{topic: "%u/x", access: read}]`), []string{"uses %u"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, ParseUsers, tt.yaml, tt.want) })
	}
}

// checkRefused checks that parse refuses yaml with an ErrInvalidFile error that
// mentions each of want, and returns no value with it.
func checkRefused[T any](t *testing.T, parse func([]byte) (*T, error), yaml string, want []string) {
	t.Helper()
	v, err := parse([]byte(yaml))
	if err == nil {
		t.Fatalf("accepted:\n%s", yaml)
	}
	if v != nil {
		t.Error("returned a value with an error")
	}
	if !errors.Is(err, ErrInvalidFile) {
		t.Errorf("error %v does not wrap ErrInvalidFile", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TestParseUsers_EveryProblem: all problems are reported at once, each naming its entry.
func TestParseUsers_EveryProblem(t *testing.T) {
	yaml := "users:\n" +
		"  - {username: a, password_hash: nope}\n" +
		"  - {username: b, password_hash: '" + testHash + "', acl: [{topic: 'x/#/y', access: read}, {topic: ok, access: maybe}]}\n"
	_, err := ParseUsers([]byte(yaml))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{`users[0] ("a"): password_hash`, `users[1] ("b"): acl[0]`, `users[1] ("b"): acl[1]`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(dir, "users.yaml")
		if err := os.WriteFile(path, []byte(testUsersYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		us, err := LoadUsers(path)
		if err != nil || us.Len() != 3 {
			t.Fatalf("LoadUsers = %v users, %v", us.Len(), err)
		}
	})
	t.Run("NamesTheFile", func(t *testing.T) {
		path := filepath.Join(dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(usersWithRules("read a/#/b")), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadUsers(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+`: users[0] ("u"): acl[0]`) || !errors.Is(err, ErrInvalidFile) {
			t.Fatalf("LoadUsers error = %v", err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		_, err := LoadUsers(filepath.Join(dir, "missing.yaml"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("LoadUsers of a missing file = %v", err)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		path := filepath.Join(dir, "big.yaml")
		if err := os.WriteFile(path, make([]byte, maxFileSize+1), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadUsers(path); !errors.Is(err, ErrInvalidFile) {
			t.Fatalf("LoadUsers of a huge file = %v", err)
		}
	})
}

func TestUsers_Authenticate(t *testing.T) {
	us := MustParseUsers(t, testUsersYAML)
	tests := []struct {
		name, user, pw string
		want           bool
	}{
		{"Good", "badge-reader-1", "s3cret", true},
		{"GoodAgainFromCache", "badge-reader-1", "s3cret", true},
		{"WrongPassword", "badge-reader-1", "s3cret!", false},
		{"EmptyPassword", "badge-reader-1", "", false},
		{"UnknownUser", "badge-reader-9", "s3cret", false},
		{"EmptyUser", "", "s3cret", false},
		{"OtherUserSamePassword", "dash", "s3cret", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := us.Authenticate(tt.user, []byte(tt.pw)); got != tt.want {
				t.Fatalf("Authenticate(%q, %q) = %v, want %v", tt.user, tt.pw, got, tt.want)
			}
		})
	}
	var nilUsers *Users
	if nilUsers.Authenticate("a", []byte("b")) {
		t.Error("nil Users authenticates")
	}
}

// TestUsers_AuthenticateCacheIsPerUser: a cached success for one user is no success for
// another with the same password bytes split differently.
func TestUsers_AuthenticateCacheIsPerUser(t *testing.T) {
	us := MustParseUsers(t, "users:\n  - {username: ab, password_hash: '"+testHash+"'}\n  - {username: a, password_hash: '"+testHash+"'}\n")
	if !us.Authenticate("ab", []byte("s3cret")) {
		t.Fatal("ab not authenticated")
	}
	if us.Authenticate("a", []byte("bs3cret")) {
		t.Fatal("a authenticated with ab's cached credentials")
	}
	if us.verified.keyOf("ab", []byte("s3cret")) == us.verified.keyOf("a", []byte("bs3cret")) {
		t.Fatal("cache keys collide")
	}
}

func TestVerifiedCache_Bounded(t *testing.T) {
	var c verifiedCache
	for i := range verifiedCacheSize * 3 {
		c.add(c.keyOf(fmt.Sprint(i), nil))
	}
	if n := len(c.seen); n != verifiedCacheSize {
		t.Fatalf("cache holds %d entries, want %d", n, verifiedCacheSize)
	}
	last := c.keyOf(fmt.Sprint(verifiedCacheSize*3-1), nil)
	if !c.has(last) {
		t.Fatal("the newest entry was evicted")
	}
}

// TestUsers_DummyHashCost: an unknown user's check costs what the dearest known one
// does, so a username cannot be probed by timing.
func TestUsers_DummyHashCost(t *testing.T) {
	hash5, err := bcrypt.GenerateFromPassword([]byte("x"), 5)
	if err != nil {
		t.Fatal(err)
	}
	us := MustParseUsers(t, "users:\n  - {username: a, password_hash: '"+testHash+"'}\n  - {username: b, password_hash: '"+string(hash5)+"'}\n")
	if us.Authenticate("zed", []byte("x")) {
		t.Fatal("unknown user authenticated")
	}
	if cost, err := bcrypt.Cost(us.dummyHash()); err != nil || cost != 5 {
		t.Fatalf("dummy hash cost = %d, %v; want 5", cost, err)
	}
	if none := MustParseUsers(t, "users: []\n"); none.maxCost != bcrypt.DefaultCost {
		t.Fatalf("dummy cost without users = %d, want the default %d", none.maxCost, bcrypt.DefaultCost)
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel() // bcrypt at the default cost
	h, err := HashPassword([]byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := checkBcryptHash(h); err != nil || cost != bcrypt.DefaultCost {
		t.Fatalf("hash %q: cost %d, %v", h, cost, err)
	}
	us := MustParseUsers(t, fmt.Sprintf("users:\n  - {username: a, password_hash: %q}\n", h))
	if !us.Authenticate("a", []byte("correct horse")) || us.Authenticate("a", []byte("correct horse ")) {
		t.Fatal("the printed hash does not authenticate its password (only)")
	}
	if _, err := HashPassword(nil); !errors.Is(err, ErrEmptyPassword) {
		t.Errorf("HashPassword(empty) = %v", err)
	}
	if _, err := HashPassword(make([]byte, 73)); !errors.Is(err, bcrypt.ErrPasswordTooLong) {
		t.Errorf("HashPassword(73 bytes) = %v", err)
	}
}
