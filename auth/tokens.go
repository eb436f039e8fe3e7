package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Scopes are what a bearer token may do over HTTP, as a set.
type Scopes uint8

// Scopes a token can have.
const (
	ScopeRead  Scopes = 1 << iota // GET routes and /metrics
	ScopeWrite                    // POST routes
)

// Has reports whether s holds every scope in want.
func (s Scopes) Has(want Scopes) bool { return s&want == want }

// String lists the scopes, e.g. "read,write".
func (s Scopes) String() string {
	var names []string
	if s.Has(ScopeRead) {
		names = append(names, "read")
	}
	if s.Has(ScopeWrite) {
		names = append(names, "write")
	}
	if rest := s &^ (ScopeRead | ScopeWrite); rest != 0 {
		names = append(names, fmt.Sprintf("scope(%d)", uint8(rest)))
	}
	return strings.Join(names, ",")
}

// ParseScope returns the scope named "read" or "write".
func ParseScope(name string) (Scopes, error) {
	switch name {
	case "read":
		return ScopeRead, nil
	case "write":
		return ScopeWrite, nil
	}
	return 0, fmt.Errorf("scope %q is not read or write", name)
}

// maxTokenNameLen bounds a token's name, which appears in logs.
const maxTokenNameLen = 128

// Tokens is a parsed tokens file. It is immutable once parsed and safe for concurrent
// use.
type Tokens struct {
	entries []token
}

type token struct {
	name   string
	sum    [sha256.Size]byte
	scopes Scopes
}

// tokensDoc is the YAML schema of a tokens file.
type tokensDoc struct {
	Tokens *[]tokenEntry `yaml:"tokens"`
}

type tokenEntry struct {
	Name   string   `yaml:"name"`
	SHA256 string   `yaml:"sha256"`
	Scopes []string `yaml:"scopes"`
}

// emptySum is the SHA-256 of the empty string: no token hashes to it.
var emptySum = sha256.Sum256(nil)

// LoadTokens reads and parses the tokens file at path. Errors name the file and the
// entry at fault.
func LoadTokens(path string) (*Tokens, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseTokens(data, path)
}

// ParseTokens parses a tokens file (see the package doc): strict YAML where an unknown
// field is an error, unique non-empty names, unique SHA-256 hashes as 64 hex digits,
// and at least one scope, each read or write. Every problem is reported
// (errors.Join), each wrapping ErrInvalidFile.
func ParseTokens(data []byte) (*Tokens, error) {
	return parseTokens(data, "tokens file")
}

func parseTokens(data []byte, name string) (*Tokens, error) {
	var doc tokensDoc
	if err := decodeStrict(data, &doc); err != nil {
		return nil, invalidf("%s: %w", name, err)
	}
	if doc.Tokens == nil {
		return nil, invalidf("%s: no tokens list (write \"tokens: []\" to let no one in)", name)
	}
	ts := &Tokens{entries: make([]token, 0, len(*doc.Tokens))}
	names := make(map[string]bool, len(*doc.Tokens))
	sums := make(map[[sha256.Size]byte]bool, len(*doc.Tokens))
	var errs []error
	for i, e := range *doc.Tokens {
		fail := func(format string, args ...any) {
			who := ""
			if validTokenName(e.Name) {
				who = fmt.Sprintf(" (%q)", e.Name)
			}
			errs = append(errs, invalidf("%s: tokens[%d]%s: %s", name, i, who, fmt.Sprintf(format, args...)))
		}
		ok := true
		switch {
		case e.Name == "":
			fail("name is required")
			ok = false
		case !validTokenName(e.Name):
			fail("name must be printable UTF-8, at most %d bytes", maxTokenNameLen)
			ok = false
		case names[e.Name]:
			fail("name is listed twice")
			ok = false
		}
		names[e.Name] = true
		t := token{name: e.Name}
		if b, err := hex.DecodeString(e.SHA256); err != nil || len(b) != sha256.Size {
			fail("sha256 must be 64 hex digits (`arina token` prints a token and its hash)")
			ok = false
		} else {
			copy(t.sum[:], b)
			switch {
			case t.sum == emptySum:
				fail("sha256 is the hash of the empty string")
				ok = false
			case sums[t.sum]:
				fail("sha256 is listed twice")
				ok = false
			}
			sums[t.sum] = true
		}
		if len(e.Scopes) == 0 {
			fail("scopes are required (read, write)")
			ok = false
		}
		for _, s := range e.Scopes {
			sc, err := ParseScope(s)
			if err != nil {
				fail("%v", err)
				ok = false
			}
			t.scopes |= sc
		}
		if ok {
			ts.entries = append(ts.entries, t)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ts, nil
}

func validTokenName(s string) bool {
	if s == "" || len(s) > maxTokenNameLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Len returns the number of tokens.
func (ts *Tokens) Len() int {
	if ts == nil {
		return 0
	}
	return len(ts.entries)
}

// Check returns the name and scopes of the entry whose hash is the SHA-256 of bearer.
// Every entry is compared, in constant time, whatever matched: how long Check takes
// says nothing about which hash, or how much of one, a token came close to.
func (ts *Tokens) Check(bearer string) (name string, scopes Scopes, ok bool) {
	if ts == nil {
		return "", 0, false
	}
	sum := sha256.Sum256([]byte(bearer))
	found := -1
	for i := range ts.entries {
		eq := subtle.ConstantTimeCompare(sum[:], ts.entries[i].sum[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", 0, false
	}
	t := &ts.entries[found]
	return t.name, t.scopes, true
}

// NewToken returns a new random bearer token (32 bytes from crypto/rand, base64url
// without padding) and the hex SHA-256 that goes in the tokens file.
func NewToken() (tok, sha256hex string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("generating token: %w", err)
	}
	tok = base64.RawURLEncoding.EncodeToString(b)
	return tok, HashToken(tok), nil
}

// HashToken returns the hex SHA-256 of a token, as a tokens file holds it.
func HashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}
