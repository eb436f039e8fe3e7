package durable_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"pgregory.net/rapid"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

// memTombstones returns how many remembered TS of users not in their set m holds.
func memTombstones(m *store.Memory) int {
	tombs, err := m.ListTombstones(math.MaxInt64)
	if err != nil {
		panic(err)
	}
	return len(tombs)
}

// MustOpenDurable opens a durable store in dir, failing the test on error.
func MustOpenDurable(tb testing.TB, dir string, sync bool) *durable.Store {
	tb.Helper()
	d, err := durable.Open(durable.Options{Dir: dir, Sync: sync, MinFreeBytes: 1})
	if err != nil {
		tb.Fatalf("durable.Open(%s): %v", dir, err)
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
		_, err := durable.Open(durable.Options{Dir: dir})
		if !errors.Is(err, durable.ErrLocked) {
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
		_, err = durable.Open(durable.Options{Dir: dir})
		if !errors.Is(err, durable.ErrFormat) || !strings.Contains(err.Error(), dir) {
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
		if _, err := durable.Open(durable.Options{Dir: dir}); !errors.Is(err, durable.ErrFormat) {
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
		_, err := durable.Open(durable.Options{Dir: dir})
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

// TestDurable_LWWReopen: remembered TS of members and tombstones, including those of
// sets never held, survive a reopen: after it, the store answers as one that never
// stopped.
func TestDurable_LWWReopen(t *testing.T) {
	op := func(c, u string, a store.Action, ts, exp int64) store.Op {
		return store.Op{ContentID: c, ReactionType: "r", UserID: u, Action: a, TS: ts, ExpiresAt: exp}
	}
	setup := []store.Op{
		op("c", "u", store.Add, 10, 0),                                    // member, TS 10
		op("c", "v", store.Add, 15, 0), op("c", "v", store.Remove, 20, 0), // tombstone 20
		op("ghost", "w", store.Remove, 30, 0),                          // tombstone of a set never held
		op("c", "x", store.Add, 0, 500),                                // member without TS (the old 8-byte value)
		op("c", "y", store.Add, 5, 0), op("c", "y", store.Add, 0, 700), // member, TS 5, expiry 700
		op("c", "z", store.Add, 0, 0), op("c", "z", store.Remove, 40, 0), // tombstone 40
		op("c", "e", store.Add, 7, 100), op("c", "e", store.Expire, 0, 150), // expired: tombstone 7
		op("c", "k", store.Remove, 50, 0), op("c", "k", store.Add, 0, 0), // member by arrival order, TS 50
	}
	probes := []struct {
		op   store.Op
		want store.Result
	}{
		{op("c", "u", store.Add, 9, 0), store.Result{Count: 4, Stale: true}},
		{op("c", "u", store.Remove, 9, 0), store.Result{Count: 4, Stale: true}},
		{op("c", "v", store.Add, 20, 0), store.Result{Count: 4, Stale: true}},
		{op("ghost", "w", store.Add, 29, 0), store.Result{Stale: true}},
		{op("c", "y", store.Remove, 4, 0), store.Result{Count: 4, Expiry: 700, PrevExpiry: 700, Stale: true}},
		{op("c", "z", store.Add, 40, 0), store.Result{Count: 4, Stale: true}},
		{op("c", "e", store.Add, 7, 0), store.Result{Count: 4, Stale: true}},
		{op("c", "k", store.Remove, 49, 0), store.Result{Count: 4, Stale: true}},
		{op("c", "x", store.Remove, 1, 0), store.Result{Changed: true, Count: 3, PrevExpiry: 500}}, // nothing remembered
		{op("c", "x", store.Add, 1, 0), store.Result{Count: 3, Stale: true}},                       // tie with its remove
		{op("c", "v", store.Add, 21, 0), store.Result{Changed: true, Count: 4}},
		{op("ghost", "w", store.Add, 31, 0), store.Result{Changed: true, Count: 1}},
	}
	for _, sync := range []bool{true, false} {
		t.Run(map[bool]string{true: "Sync", false: "Async"}[sync], func(t *testing.T) {
			dir := t.TempDir()
			s := MustOpenDurable(t, dir, sync)
			storetest.MustApply(t, s, setup...)
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s = MustOpenDurable(t, dir, sync)
			defer s.Close()
			if _, err := s.Counts(context.Background(), "ghost"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Counts(ghost) after reopen error = %v, want ErrNotFound", err)
			}
			for _, p := range probes {
				if got := storetest.MustApply(t, s, p.op)[0]; got != p.want {
					t.Errorf("%s %s/%s ts=%d after reopen = %+v, want %+v", p.op.Action, p.op.ContentID, p.op.UserID, p.op.TS, got, p.want)
				}
			}
			ms, err := s.Members(context.Background(), "c", "r", "", 0)
			want := []store.Member{{UserID: "k"}, {UserID: "u"}, {UserID: "v"}, {UserID: "y", ExpiresAt: 700}}
			if err != nil || !slices.Equal(ms, want) {
				t.Fatalf("members = %+v, %v; want %+v", ms, err, want)
			}
		})
	}
}

// TestDurable_PurgeReopen: purged tombstones are gone from disk too.
func TestDurable_PurgeReopen(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, true)
	storetest.MustApply(t, s,
		store.Op{ContentID: "c", ReactionType: "r", UserID: "u", Action: store.Remove, TS: 10},
		store.Op{ContentID: "ghost", ReactionType: "r", UserID: "u", Action: store.Remove, TS: 10},
		store.Op{ContentID: "c", ReactionType: "r", UserID: "v", Action: store.Add, TS: 10},
		store.Op{ContentID: "c", ReactionType: "r", UserID: "w", Action: store.Remove, TS: 30},
	)
	if n, err := s.PurgeTombstones(context.Background(), 20); err != nil || n != 2 {
		t.Fatalf("PurgeTombstones = %d, %v; want 2", n, err)
	}
	s.Close()
	s = MustOpenDurable(t, dir, true)
	defer s.Close()
	got := storetest.MustApply(t, s,
		store.Op{ContentID: "c", ReactionType: "r", UserID: "u", Action: store.Add, TS: 5},
		store.Op{ContentID: "ghost", ReactionType: "r", UserID: "u", Action: store.Add, TS: 5},
		store.Op{ContentID: "c", ReactionType: "r", UserID: "w", Action: store.Add, TS: 29},
	)
	want := []store.Result{{Changed: true, Count: 2}, {Changed: true, Count: 1}, {Count: 2, Stale: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("after purge and reopen:\n got %+v\nwant %+v", got, want)
	}
	if n, err := s.PurgeTombstones(context.Background(), 100); err != nil || n != 1 {
		t.Fatalf("PurgeTombstones after reopen = %d, %v; want 1 (w's)", n, err)
	}
}

// TestDurable_OpensFormat1WithoutTS: a data directory written before timestamps were
// remembered (member values of 0 or 8 bytes, no tombstones) opens as it is, and takes
// timestamped ops.
func TestDurable_OpensFormat1WithoutTS(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	exp := make([]byte, 8)
	exp[7] = 200 // expiry 200
	for _, kv := range [][2]string{
		{"\x00format", "arina-store/1"},
		{"mc\x00fire\x00ann", ""},
		{"mc\x00fire\x00sam", string(exp)},
		{"rc\x00fire", ""},
		{"rc\x00yum", ""},
	} {
		if err := db.Set([]byte(kv[0]), []byte(kv[1]), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := MustOpenDurable(t, dir, true)
	ms, err := s.Members(context.Background(), "c", "fire", "", 0)
	if want := []store.Member{{UserID: "ann"}, {UserID: "sam", ExpiresAt: 200}}; err != nil || !slices.Equal(ms, want) {
		t.Fatalf("members = %+v, %v; want %+v", ms, err, want)
	}
	if got, want := storetest.MustCounts(t, s, "c"), []store.ReactionCount{{ReactionType: "fire", Count: 2}, {ReactionType: "yum", Count: 0}}; !slices.Equal(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
	storetest.MustApply(t, s,
		store.Op{ContentID: "c", ReactionType: "fire", UserID: "sam", Action: store.Remove, TS: 10},
		store.Op{ContentID: "c", ReactionType: "fire", UserID: "ann", Action: store.Add, TS: 10},
	)
	s.Close()
	s = MustOpenDurable(t, dir, true)
	defer s.Close()
	got := storetest.MustApply(t, s,
		store.Op{ContentID: "c", ReactionType: "fire", UserID: "sam", Action: store.Add, TS: 9},
		store.Op{ContentID: "c", ReactionType: "fire", UserID: "ann", Action: store.Remove, TS: 9},
	)
	if want := []store.Result{{Count: 1, Stale: true}, {Count: 1, Stale: true}}; !slices.Equal(got, want) {
		t.Fatalf("after timestamped ops and a reopen:\n got %+v\nwant %+v", got, want)
	}
}

// TestDurable_ReopenModel applies random batches (adds, removes, expiries, with and
// without TS, and purges) to a durable store, reopening it at random, and to a memory
// store that never stops: every result and the final state must agree.
func TestDurable_ReopenModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		d := MustOpenDurable(t, dir, false)
		defer func() { d.Close() }()
		mem := store.NewMemory()
		contents := []string{"c1", "c2"}
		users := []string{"u1", "u2", "u3"}
		opGen := rapid.Custom(func(t *rapid.T) store.Op {
			return store.Op{
				ContentID:    rapid.SampledFrom(contents).Draw(t, "c"),
				ReactionType: rapid.SampledFrom([]string{"fire", "yum"}).Draw(t, "r"),
				UserID:       rapid.SampledFrom(users).Draw(t, "u"),
				Action:       rapid.SampledFrom([]store.Action{store.Add, store.Remove, store.Expire}).Draw(t, "a"),
				TS:           rapid.Int64Range(0, 8).Draw(t, "ts"),
				ExpiresAt:    rapid.Int64Range(0, 8).Draw(t, "exp"),
			}
		})
		for range rapid.IntRange(1, 10).Draw(rt, "steps") {
			switch rapid.IntRange(0, 5).Draw(rt, "step") {
			case 0:
				if err := d.Close(); err != nil {
					rt.Fatalf("Close: %v", err)
				}
				d = MustOpenDurable(t, dir, false)
			case 1:
				before := rapid.Int64Range(0, 9).Draw(rt, "before")
				nd, errD := d.PurgeTombstones(context.Background(), before)
				nm, errM := mem.PurgeTombstones(context.Background(), before)
				if errD != nil || errM != nil || nd != nm {
					rt.Fatalf("PurgeTombstones(%d): durable %d, %v; memory %d, %v", before, nd, errD, nm, errM)
				}
			default:
				ops := rapid.SliceOfN(opGen, 1, 10).Draw(rt, "ops")
				gotD, gotM := make([]store.Result, len(ops)), make([]store.Result, len(ops))
				if err := d.Apply(context.Background(), ops, gotD); err != nil {
					rt.Fatalf("Apply: %v", err)
				}
				if err := mem.Apply(context.Background(), ops, gotM); err != nil {
					rt.Fatalf("Apply: %v", err)
				}
				if !slices.Equal(gotD, gotM) {
					rt.Fatalf("results of %+v:\ndurable %+v\n memory %+v", ops, gotD, gotM)
				}
			}
		}
		if err := d.Close(); err != nil {
			rt.Fatalf("Close: %v", err)
		}
		d = MustOpenDurable(t, dir, false)
		if n, err := d.DiskTombstones(); err != nil || n != memTombstones(mem) {
			rt.Fatalf("tombstone keys on disk = %d, %v; want %d", n, err, memTombstones(mem))
		}
		for _, c := range contents {
			cd, errD := d.Counts(context.Background(), c)
			cm, errM := mem.Counts(context.Background(), c)
			if !slices.Equal(cd, cm) || !errors.Is(errD, errM) {
				rt.Fatalf("Counts(%s): durable %+v, %v; memory %+v, %v", c, cd, errD, cm, errM)
			}
			for _, r := range []string{"fire", "yum"} {
				md, _ := d.Members(context.Background(), c, r, "", 0)
				mm, _ := mem.Members(context.Background(), c, r, "", 0)
				if !slices.Equal(md, mm) {
					rt.Fatalf("Members(%s, %s): durable %+v, memory %+v", c, r, md, mm)
				}
			}
		}
		probeSame(rt, d, mem, contents, []string{"fire", "yum"}, users)
	})
}
