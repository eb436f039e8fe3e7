package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

// MustOpenDurable opens a durable store in dir, failing the test on error.
func MustOpenDurable(tb testing.TB, dir string, sync bool) *store.Durable {
	tb.Helper()
	d, err := store.OpenDurable(store.DurableOptions{Dir: dir, Sync: sync, MinFreeBytes: 1})
	if err != nil {
		tb.Fatalf("OpenDurable(%s): %v", dir, err)
	}
	return d
}

func TestDurable(t *testing.T) {
	for _, sync := range []bool{true, false} {
		name := map[bool]string{true: "Sync", false: "Async"}[sync]
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(tb testing.TB) store.Store { return MustOpenDurable(tb, tb.TempDir(), sync) })
		})
	}
}

func TestDurable_Reopen(t *testing.T) {
	for _, sync := range []bool{true, false} {
		t.Run(map[bool]string{true: "Sync", false: "Async"}[sync], func(t *testing.T) {
			dir := t.TempDir()
			s := MustOpenDurable(t, dir, sync)
			ops := []store.Op{
				{ContentID: "Stew", ReactionType: "fire", UserID: "Sam", Action: store.Add},
				{ContentID: "Stew", ReactionType: "fire", UserID: "Ann", Action: store.Add},
				{ContentID: "Stew", ReactionType: "yum", UserID: "Sam", Action: store.Add},
				{ContentID: "Stew", ReactionType: "yum", UserID: "Sam", Action: store.Remove},
				{ContentID: "Stew", ReactionType: "fire", UserID: "Ann", Action: store.Remove},
				{ContentID: "Soup", ReactionType: "fire", UserID: "Zed", Action: store.Remove},
				{ContentID: "Pie", ReactionType: "fire", UserID: "Kim", Action: store.Add},
			}
			storetest.MustApply(t, s, ops...)
			before := storetest.MustCounts(t, s, "Stew")
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s = MustOpenDurable(t, dir, sync)
			defer s.Close()
			if got := storetest.MustCounts(t, s, "Stew"); !slices.Equal(got, before) {
				t.Fatalf("after reopen counts = %+v, want %+v", got, before)
			}
			want := []store.ReactionCount{{ReactionType: "fire", Count: 1}, {ReactionType: "yum", Count: 0}}
			if !slices.Equal(before, want) {
				t.Fatalf("counts = %+v, want %+v", before, want)
			}
			if _, err := s.Counts(context.Background(), "Soup"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Soup: a remove-before-add left something on disk: %v", err)
			}
			// Membership really is per user after reopen: re-adding Sam is no change.
			res := storetest.MustApply(t, s, store.Op{ContentID: "Stew", ReactionType: "fire", UserID: "Sam", Action: store.Add})
			if res[0].Changed || res[0].Count != 1 {
				t.Fatalf("re-add after reopen = %+v, want unchanged count 1", res[0])
			}
		})
	}
}

func TestDurable_Refuses(t *testing.T) {
	t.Run("Locked", func(t *testing.T) {
		dir := t.TempDir()
		s := MustOpenDurable(t, dir, true)
		defer s.Close()
		_, err := store.OpenDurable(store.DurableOptions{Dir: dir})
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("second open error = %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("error %q does not name the directory", err)
		}
	})
	t.Run("UnknownFormat", func(t *testing.T) {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set([]byte("\x00format"), []byte("arina-store/99"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = store.OpenDurable(store.DurableOptions{Dir: dir})
		if !errors.Is(err, store.ErrFormat) || !strings.Contains(err.Error(), dir) {
			t.Fatalf("open error = %v, want ErrFormat naming %s", err, dir)
		}
	})
	t.Run("NotArina", func(t *testing.T) {
		dir := t.TempDir()
		db, err := pebble.Open(dir, &pebble.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Set([]byte("other"), []byte("data"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := store.OpenDurable(store.DurableOptions{Dir: dir}); !errors.Is(err, store.ErrFormat) {
			t.Fatalf("open error = %v, want ErrFormat", err)
		}
	})
	t.Run("Corrupt", func(t *testing.T) {
		dir := t.TempDir()
		s := MustOpenDurable(t, dir, true)
		storetest.MustApply(t, s, store.Op{ContentID: "c", ReactionType: "r", UserID: "u", Action: store.Add})
		s.Close()
		manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
		if len(manifests) == 0 {
			t.Fatal("no MANIFEST file to corrupt")
		}
		for _, m := range manifests {
			if err := os.WriteFile(m, []byte("this is not a manifest"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := store.OpenDurable(store.DurableOptions{Dir: dir})
		if err == nil {
			t.Fatal("opened a corrupt directory as if nothing happened")
		}
		if !strings.Contains(err.Error(), dir) {
			t.Fatalf("error %q does not name the directory", err)
		}
		t.Logf("corrupt directory refused: %v", err)
	})
}

// TestDurable_ExpiryReopen: expiries, and refreshes of them, survive a reopen.
func TestDurable_ExpiryReopen(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, true)
	op := func(u string, exp int64) store.Op {
		return store.Op{ContentID: "c", ReactionType: "active", UserID: u, Action: store.Add, ExpiresAt: exp}
	}
	storetest.MustApply(t, s, op("sam", 100), op("ann", 100), op("kim", 0))
	storetest.MustApply(t, s, op("sam", 300)) // refresh
	s.Close()
	s = MustOpenDurable(t, dir, true)
	defer s.Close()
	ms, err := s.Members(context.Background(), "c", "active", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Member{{UserID: "ann", ExpiresAt: 100}, {UserID: "kim"}, {UserID: "sam", ExpiresAt: 300}}
	if !slices.Equal(ms, want) {
		t.Fatalf("members after reopen = %+v, want %+v", ms, want)
	}
}
