package auth

import (
	"sync"
	"sync/atomic"
)

// reloadable holds the current parse of a file and replaces it on Reload.
type reloadable[T any] struct {
	path string
	load func(path string) (*T, error)
	mu   sync.Mutex // serialises reloads
	cur  atomic.Pointer[T]
}

func (r *reloadable[T]) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.load(r.path)
	if err != nil {
		return err
	}
	r.cur.Store(v)
	return nil
}

// UsersFile is a users file kept for hot reload: every decision reads the version
// current at that moment. It is safe for concurrent use.
type UsersFile struct {
	r reloadable[Users]
}

// OpenUsersFile loads the users file at path (see LoadUsers).
func OpenUsersFile(path string) (*UsersFile, error) {
	f := &UsersFile{r: reloadable[Users]{path: path, load: LoadUsers}}
	if err := f.r.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *UsersFile) Path() string { return f.r.path }

// Reload reads the file again. On any error the version in force stays in force and
// the error says why; otherwise the new version applies to the next decision,
// including those about connections already open.
func (f *UsersFile) Reload() error { return f.r.reload() }

// Users returns the version in force.
func (f *UsersFile) Users() *Users { return f.r.cur.Load() }

// Authenticate is Users.Authenticate on the version in force.
func (f *UsersFile) Authenticate(username string, password []byte) bool {
	return f.Users().Authenticate(username, password)
}

// Has is Users.Has on the version in force.
func (f *UsersFile) Has(username string) bool { return f.Users().Has(username) }

// Allow is Users.Allow on the version in force.
func (f *UsersFile) Allow(username, clientID, topic string, access Access) bool {
	return f.Users().Allow(username, clientID, topic, access)
}

// TokensFile is a tokens file kept for hot reload: every check reads the version
// current at that moment. It is safe for concurrent use.
type TokensFile struct {
	r reloadable[Tokens]
}

// OpenTokensFile loads the tokens file at path (see LoadTokens).
func OpenTokensFile(path string) (*TokensFile, error) {
	f := &TokensFile{r: reloadable[Tokens]{path: path, load: LoadTokens}}
	if err := f.r.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Path returns the file's path.
func (f *TokensFile) Path() string { return f.r.path }

// Reload reads the file again. On any error the version in force stays in force and
// the error says why; otherwise the new version applies to the next request.
func (f *TokensFile) Reload() error { return f.r.reload() }

// Tokens returns the version in force.
func (f *TokensFile) Tokens() *Tokens { return f.r.cur.Load() }

// Check is Tokens.Check on the version in force.
func (f *TokensFile) Check(bearer string) (name string, scopes Scopes, ok bool) {
	return f.Tokens().Check(bearer)
}
