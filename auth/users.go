package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// ErrInvalidFile is wrapped by every error about the contents of a users or tokens
// file.
var ErrInvalidFile = errors.New("invalid auth file")

// fileError is a problem with a file's contents; it wraps ErrInvalidFile and its
// cause without repeating ErrInvalidFile's text.
type fileError struct{ err error }

func (e *fileError) Error() string   { return e.err.Error() }
func (e *fileError) Unwrap() []error { return []error{ErrInvalidFile, e.err} }

func invalidf(format string, args ...any) error {
	return &fileError{err: fmt.Errorf(format, args...)}
}

// ErrEmptyPassword is returned by HashPassword for an empty password.
var ErrEmptyPassword = errors.New("empty password")

// maxFileSize bounds what LoadUsers and LoadTokens read.
const maxFileSize = 16 << 20

// maxUsernameLen is the longest username MQTT can carry.
const maxUsernameLen = 65535

// verifiedCacheSize bounds the cache of recent successful password checks.
const verifiedCacheSize = 1024

// Users is a parsed users file: who may connect, and their ACLs. It is immutable once
// parsed and safe for concurrent use.
type Users struct {
	byName   map[string]*user
	maxCost  int // highest bcrypt cost in the file: what checking an unknown user costs
	dummy    []byte
	dummyOne sync.Once
	verified verifiedCache
}

type user struct {
	name  string
	hash  []byte
	rules []rule
}

// usersDoc is the YAML schema of a users file.
type usersDoc struct {
	Users *[]userEntry `yaml:"users"`
}

type userEntry struct {
	Username     string `yaml:"username"`
	PasswordHash string `yaml:"password_hash"`
	// CertificateOnly users have no password: they log in with a TLS client
	// certificate whose common name is the username (mqtt.tls.client_ca_file).
	CertificateOnly bool       `yaml:"certificate_only"`
	ACL             []aclEntry `yaml:"acl"`
}

type aclEntry struct {
	Topic  string `yaml:"topic"`
	Access string `yaml:"access"`
}

// LoadUsers reads and parses the users file at path. Errors name the file and the
// entry at fault.
func LoadUsers(path string) (*Users, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return parseUsers(data, path)
}

// ParseUsers parses a users file (see the package doc): strict YAML where an unknown
// field is an error, unique non-empty usernames, well-formed bcrypt hashes, ACL topics
// that are valid MQTT filters and access read, write, readwrite or deny. Every problem
// is reported (errors.Join), each wrapping ErrInvalidFile.
func ParseUsers(data []byte) (*Users, error) {
	return parseUsers(data, "users file")
}

func parseUsers(data []byte, name string) (*Users, error) {
	var doc usersDoc
	if err := decodeStrict(data, &doc); err != nil {
		return nil, invalidf("%s: %w", name, err)
	}
	if doc.Users == nil {
		return nil, invalidf("%s: no users list (write \"users: []\" to let no one in)", name)
	}
	us := &Users{byName: make(map[string]*user, len(*doc.Users))}
	var errs []error
	bad := func(i int, e userEntry, format string, args ...any) {
		who := ""
		if e.Username != "" && utf8.ValidString(e.Username) && len(e.Username) <= 64 {
			who = fmt.Sprintf(" (%q)", e.Username)
		}
		errs = append(errs, invalidf("%s: users[%d]%s: %s", name, i, who, fmt.Sprintf(format, args...)))
	}
	for i, e := range *doc.Users {
		switch {
		case e.Username == "":
			bad(i, e, "username is required")
		case len(e.Username) > maxUsernameLen || !utf8.ValidString(e.Username) || strings.ContainsRune(e.Username, 0):
			bad(i, e, "username must be valid UTF-8 without NUL, at most %d bytes", maxUsernameLen)
		case us.byName[e.Username] != nil:
			bad(i, e, "username is listed twice")
		}
		cost := 0
		if e.PasswordHash == "" && !e.CertificateOnly {
			bad(i, e, "password_hash: is required (`arina passwd` prints one), unless certificate_only: true")
		} else if e.PasswordHash != "" && e.CertificateOnly {
			bad(i, e, "password_hash: a certificate_only user has none")
		} else if e.PasswordHash != "" {
			var err error
			if cost, err = checkBcryptHash(e.PasswordHash); err != nil {
				bad(i, e, "password_hash: %v", err)
			}
		}
		u := &user{name: e.Username, hash: []byte(e.PasswordHash), rules: make([]rule, 0, len(e.ACL))}
		for j, a := range e.ACL {
			levels, usesU, usesC, err := compileFilter(a.Topic)
			if err != nil {
				bad(i, e, "acl[%d]: topic %q: %v", j, a.Topic, err)
				continue
			}
			grant, deny, err := parseAccess(a.Access)
			if err != nil {
				bad(i, e, "acl[%d]: %v", j, err)
				continue
			}
			if usesU && unsafeValue(e.Username) {
				bad(i, e, "acl[%d]: topic %q uses %%u, but the username starts with '$' or contains '+', '#' or '/', so the rule could never match", j, a.Topic)
				continue
			}
			u.rules = append(u.rules, rule{topic: a.Topic, levels: levels, grant: grant, deny: deny, usesU: usesU, usesC: usesC})
		}
		if _, dup := us.byName[e.Username]; !dup && e.Username != "" {
			us.byName[e.Username] = u
		}
		us.maxCost = max(us.maxCost, cost)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if us.maxCost == 0 {
		us.maxCost = bcrypt.DefaultCost // no users: what `arina passwd` would make
	}
	if _, err := rand.Read(us.verified.key[:]); err != nil {
		return nil, fmt.Errorf("%s: seeding the password cache: %w", name, err)
	}
	return us, nil
}

// bcryptHash is the modular crypt form of a bcrypt hash: version, two-digit cost,
// 22 characters of salt and 31 of hash in bcrypt's base64 alphabet.
var bcryptHash = regexp.MustCompile(`^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// checkBcryptHash validates a bcrypt hash and returns its cost.
func checkBcryptHash(h string) (int, error) {
	if h == "" {
		return 0, errors.New("is required (`arina passwd` prints one)")
	}
	if !bcryptHash.MatchString(h) {
		return 0, errors.New("is not a bcrypt hash ($2a$, $2b$ or $2y$, cost, 53 characters of salt and hash)")
	}
	cost, err := bcrypt.Cost([]byte(h))
	if err != nil {
		return 0, fmt.Errorf("is not a valid bcrypt hash: %v", err)
	}
	return cost, nil
}

// Has reports whether the users file lists username. A client whose verified TLS
// certificate names a listed user (its common name) is that user, password or not.
func (us *Users) Has(username string) bool {
	return us != nil && us.byName[username] != nil
}

// Len returns the number of users.
func (us *Users) Len() int {
	if us == nil {
		return 0
	}
	return len(us.byName)
}

// Authenticate reports whether password is the password of username. An unknown user
// costs as much as a known one (a bcrypt check against a dummy hash of the file's
// highest cost), so usernames cannot be probed by timing.
//
// Successful checks are remembered in a small cache (at most 1024 entries, keyed by
// an HMAC of username and password under a random per-parse key, never the password
// itself), so that a fleet reconnecting at once after an outage does not spend a
// bcrypt check per connection. A reload parses a new Users with an empty cache, so a
// changed or removed password stops working at once.
func (us *Users) Authenticate(username string, password []byte) bool {
	if us == nil {
		return false
	}
	u := us.byName[username]
	if u == nil || len(u.hash) == 0 { // unknown, or certificate only
		_ = bcrypt.CompareHashAndPassword(us.dummyHash(), password)
		return false
	}
	key := us.verified.keyOf(username, password)
	if us.verified.has(key) {
		return true
	}
	if bcrypt.CompareHashAndPassword(u.hash, password) != nil {
		return false
	}
	us.verified.add(key)
	return true
}

// dummyHash returns a hash of a random password at the file's highest cost, made on
// first use (a bcrypt run) so that parsing stays cheap.
func (us *Users) dummyHash() []byte {
	us.dummyOne.Do(func() {
		pw := make([]byte, 16)
		_, _ = rand.Read(pw)
		h, err := bcrypt.GenerateFromPassword(pw, us.maxCost)
		if err != nil {
			// Cannot happen with a cost from a parsed hash; a hash that can never
			// match keeps Authenticate correct (only its timing would differ).
			h = []byte("$2a$10$" + strings.Repeat(".", 53))
		}
		us.dummy = h
	})
	return us.dummy
}

// verifiedCache remembers recent successful password checks, bounded: when full, an
// arbitrary entry makes room.
type verifiedCache struct {
	key  [32]byte // HMAC key, random per Users
	mu   sync.Mutex
	seen map[[32]byte]struct{}
}

func (c *verifiedCache) keyOf(username string, password []byte) [32]byte {
	m := hmac.New(sha256.New, c.key[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(username)))
	m.Write(n[:])
	io.WriteString(m, username)
	m.Write(password)
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (c *verifiedCache) has(k [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[k]
	return ok
}

func (c *verifiedCache) add(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[[32]byte]struct{})
	}
	if len(c.seen) >= verifiedCacheSize {
		for old := range c.seen {
			delete(c.seen, old)
			break
		}
	}
	c.seen[k] = struct{}{}
}

// HashPassword returns the bcrypt hash (default cost) of password for a users file.
// Passwords longer than 72 bytes are refused: bcrypt would ignore the rest.
func HashPassword(password []byte) (string, error) {
	if len(password) == 0 {
		return "", ErrEmptyPassword
	}
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(h), nil
}

// readFile reads a credentials file, refusing one over maxFileSize.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, invalidf("%s: larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// decodeStrict decodes exactly one YAML document into v, refusing unknown fields.
func decodeStrict(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed YAML (%v)", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty file")
		}
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}
