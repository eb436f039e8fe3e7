package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sha256Hex is the hex SHA-256 of s.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

var testTokensYAML = fmt.Sprintf(`
tokens:
  - name: line-app
    sha256: %q
    scopes: [write, read]
  - name: board
    sha256: %q
    scopes: [read]
  - name: poster
    sha256: %q
    scopes: [write]
`, sha256Hex("line-secret"), strings.ToUpper(sha256Hex("board-secret")), sha256Hex("poster-secret"))

// MustParseTokens parses a tokens file or fails the test.
func MustParseTokens(tb testing.TB, yaml string) *Tokens {
	tb.Helper()
	ts, err := ParseTokens([]byte(yaml))
	if err != nil {
		tb.Fatalf("ParseTokens: %v", err)
	}
	return ts
}

func TestTokens_Check(t *testing.T) {
	ts := MustParseTokens(t, testTokensYAML)
	if ts.Len() != 3 {
		t.Fatalf("Len = %d, want 3", ts.Len())
	}
	tests := []struct {
		bearer, name string
		scopes       Scopes
		ok           bool
	}{
		{"line-secret", "line-app", ScopeRead | ScopeWrite, true},
		{"board-secret", "board", ScopeRead, true}, // the file's hex was upper case
		{"poster-secret", "poster", ScopeWrite, true},
		{"line-secret ", "", 0, false},
		{"LINE-SECRET", "", 0, false},
		{"", "", 0, false},
		{sha256Hex("line-secret"), "", 0, false}, // the hash is not the token
	}
	for _, tt := range tests {
		name, scopes, ok := ts.Check(tt.bearer)
		if name != tt.name || scopes != tt.scopes || ok != tt.ok {
			t.Errorf("Check(%q) = %q, %v, %v; want %q, %v, %v", tt.bearer, name, scopes, ok, tt.name, tt.scopes, tt.ok)
		}
	}
	var nilTokens *Tokens
	if _, _, ok := nilTokens.Check("line-secret"); ok {
		t.Error("nil Tokens accepts a token")
	}
}

func TestScopes(t *testing.T) {
	both := ScopeRead | ScopeWrite
	if !both.Has(ScopeRead) || !both.Has(ScopeWrite) || !both.Has(both) || ScopeRead.Has(ScopeWrite) || ScopeRead.Has(both) {
		t.Fatal("Has is wrong")
	}
	for s, want := range map[Scopes]string{ScopeRead: "read", ScopeWrite: "write", both: "read,write", 0: "", 4: "scope(4)"} {
		if got := s.String(); got != want {
			t.Errorf("Scopes(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestParseTokens_Errors(t *testing.T) {
	h := sha256Hex("x")
	entry := func(name, sum, scopes string) string {
		return fmt.Sprintf("tokens:\n  - name: %s\n    sha256: %q\n    scopes: %s\n", name, sum, scopes)
	}
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"Empty", "", []string{"empty file"}},
		{"NoTokensKey", "{}\n", []string{"no tokens list"}},
		{"UnknownField", "tokens:\n  - {name: a, sha256: '" + h + "', scopes: [read], token: x}\n", []string{"field token not found"}},
		{"UnknownTopLevel", "tokens: []\nusers: []\n", []string{"field users not found"}},
		{"MissingName", entry(`""`, h, "[read]"), []string{"tokens[0]", "name is required"}},
		{"ControlInName", entry(`"a\tb"`, h, "[read]"), []string{"printable"}},
		{"DuplicateName", entry("a", h, "[read]") + "  - {name: a, sha256: '" + sha256Hex("y") + "', scopes: [read]}\n", []string{`tokens[1] ("a")`, "name is listed twice"}},
		{"DuplicateHash", entry("a", h, "[read]") + "  - {name: b, sha256: '" + h + "', scopes: [read]}\n", []string{`tokens[1] ("b")`, "sha256 is listed twice"}},
		{"ShortHash", entry("a", h[:63], "[read]"), []string{"64 hex digits"}},
		{"LongHash", entry("a", h+"00", "[read]"), []string{"64 hex digits"}},
		{"NotHex", entry("a", strings.Repeat("g", 64), "[read]"), []string{"64 hex digits"}},
		{"PlainToken", entry("a", "my-secret-token", "[read]"), []string{"64 hex digits"}},
		{"EmptyStringHash", entry("a", sha256Hex(""), "[read]"), []string{"empty string"}},
		{"NoScopes", entry("a", h, "[]"), []string{"scopes are required"}},
		{"MissingScopes", "tokens:\n  - {name: a, sha256: '" + h + "'}\n", []string{"scopes are required"}},
		{"BadScope", entry("a", h, "[read, admin]"), []string{`scope "admin" is not read or write`}},
		{"ScopesNotList", entry("a", h, "read"), []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, ParseTokens, tt.yaml, tt.want) })
	}
}

func TestLoadTokens_NamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte("tokens:\n  - {name: a, sha256: nope, scopes: [read]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadTokens(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+`: tokens[0] ("a"): sha256`) {
		t.Fatalf("LoadTokens error = %v", err)
	}
}

func TestNewToken(t *testing.T) {
	tok, sum, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token %q is not 32 bytes of base64url: %v", tok, err)
	}
	if sum != sha256Hex(tok) || HashToken(tok) != sum {
		t.Fatalf("hash %s is not the SHA-256 of the token", sum)
	}
	tok2, _, err := NewToken()
	if err != nil || tok2 == tok {
		t.Fatalf("two tokens alike: %q, %v", tok2, err)
	}
	ts := MustParseTokens(t, fmt.Sprintf("tokens:\n  - {name: new, sha256: %s, scopes: [read]}\n", sum))
	if name, scopes, ok := ts.Check(tok); !ok || name != "new" || scopes != ScopeRead {
		t.Fatalf("Check(new token) = %q, %v, %v", name, scopes, ok)
	}
}
