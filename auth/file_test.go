package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// MustWriteFile writes data to name in dir and returns its path.
func MustWriteFile(tb testing.TB, dir, name, data string) string {
	tb.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestUsersFile_Reload(t *testing.T) {
	dir := t.TempDir()
	path := MustWriteFile(t, dir, "users.yaml", usersWithRules("write a"))
	f, err := OpenUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != path || f.Users().Len() != 1 {
		t.Fatalf("Path %q, %d users", f.Path(), f.Users().Len())
	}
	if !f.Authenticate("u", []byte("s3cret")) || !f.Allow("u", "c", "a", Write) || f.Allow("u", "c", "b", Write) {
		t.Fatal("first version not in force")
	}

	t.Run("NewRules", func(t *testing.T) {
		MustWriteFile(t, dir, "users.yaml", usersWithRules("write b"))
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
		if f.Allow("u", "c", "a", Write) || !f.Allow("u", "c", "b", Write) {
			t.Fatal("reloaded rules not in force")
		}
	})
	t.Run("BrokenFileKeepsOld", func(t *testing.T) {
		MustWriteFile(t, dir, "users.yaml", usersWithRules("write b/#/c"))
		err := f.Reload()
		if !errors.Is(err, ErrInvalidFile) {
			t.Fatalf("Reload of a broken file = %v", err)
		}
		if !f.Allow("u", "c", "b", Write) {
			t.Fatal("the previous version was dropped")
		}
	})
	t.Run("MissingFileKeepsOld", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := f.Reload(); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Reload of a missing file = %v", err)
		}
		if !f.Allow("u", "c", "b", Write) {
			t.Fatal("the previous version was dropped")
		}
	})
	t.Run("PasswordChangeEndsCache", func(t *testing.T) {
		MustWriteFile(t, dir, "users.yaml", usersWithRules("write b"))
		if err := f.Reload(); err != nil || !f.Authenticate("u", []byte("s3cret")) {
			t.Fatalf("reload: %v", err)
		}
		MustWriteFile(t, dir, "users.yaml", "users:\n  - {username: u, password_hash: '$2a$04$"+"ZZZZZZZZZZZZZZZZZZZZZ."+"ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ'}\n")
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
		if f.Authenticate("u", []byte("s3cret")) {
			t.Fatal("the old password still works after the reload (cached)")
		}
	})
}

func TestOpenUsersFile_Invalid(t *testing.T) {
	path := MustWriteFile(t, t.TempDir(), "users.yaml", "users: [")
	if f, err := OpenUsersFile(path); err == nil || f != nil {
		t.Fatalf("OpenUsersFile of bad YAML = %v, %v", f, err)
	}
}

func TestTokensFile_Reload(t *testing.T) {
	dir := t.TempDir()
	entry := func(name, tok string) string {
		return fmt.Sprintf("tokens:\n  - {name: %s, sha256: %s, scopes: [read]}\n", name, sha256Hex(tok))
	}
	path := MustWriteFile(t, dir, "tokens.yaml", entry("a", "one"))
	f, err := OpenTokensFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if name, _, ok := f.Check("one"); !ok || name != "a" || f.Path() != path || f.Tokens().Len() != 1 {
		t.Fatalf("Check(one) = %q, %v", name, ok)
	}
	MustWriteFile(t, dir, "tokens.yaml", entry("b", "two"))
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Check("one"); ok {
		t.Fatal("revoked token still accepted")
	}
	if name, _, ok := f.Check("two"); !ok || name != "b" {
		t.Fatalf("Check(two) = %q, %v", name, ok)
	}
	MustWriteFile(t, dir, "tokens.yaml", "tokens: [{name: c}]\n")
	if err := f.Reload(); !errors.Is(err, ErrInvalidFile) {
		t.Fatalf("Reload of a broken file = %v", err)
	}
	if _, _, ok := f.Check("two"); !ok {
		t.Fatal("the previous version was dropped")
	}
	if _, err := OpenTokensFile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenTokensFile of a missing file = %v", err)
	}
}

// TestUsersFile_ConcurrentReload: decisions and reloads race freely (run with -race).
func TestUsersFile_ConcurrentReload(t *testing.T) {
	dir := t.TempDir()
	path := MustWriteFile(t, dir, "users.yaml", usersWithRules("write a"))
	f, err := OpenUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.Allow("u", "c", "a", Write)
				f.Authenticate("u", []byte("s3cret"))
			}
		})
	}
	for range 20 {
		if err := f.Reload(); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}
