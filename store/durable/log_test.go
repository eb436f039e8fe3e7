package durable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"pgregory.net/rapid"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

// crashStore is a durable store in sync mode on a crashable in-memory file system,
// which a test can crash at any moment: CrashClone keeps what was fsynced and, at
// random, some of what was not.
type crashStore struct {
	t     *testing.T
	dir   string
	fs    *vfs.MemFS
	d     *durable.Store
	rng   *rand.Rand
	stage string     // crash inside the next fold at this stage ("commit", "committed")
	image *vfs.MemFS // the file system as that crash left it
}

func newCrashStore(t *testing.T, seed uint64) *crashStore {
	c := &crashStore{t: t, dir: t.TempDir(), fs: vfs.NewCrashableMem(), rng: rand.New(rand.NewPCG(seed, 7))}
	c.open()
	return c
}

func (c *crashStore) clone() *vfs.MemFS {
	return c.fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.rng.IntN(101), RNG: c.rng})
}

func (c *crashStore) open() {
	// A fold threshold no test reaches: the log folds when the test says so (and at
	// open and close).
	d, err := durable.OpenTest(durable.Options{Dir: c.dir, Sync: true, MinFreeBytes: 1}, c.fs, 1<<40,
		func(stage string) {
			if stage == c.stage {
				c.image = c.clone()
			}
		})
	if err != nil {
		c.t.Fatalf("open after crash: %v", err)
	}
	c.d = d
	if n, err := d.LogEntries(); err != nil || n != 0 {
		c.t.Fatalf("log entries after open = %d, %v; want all folded", n, err)
	}
}

// crash crashes the store now, or inside its next fold at stage, and opens what the
// crash left.
func (c *crashStore) crash(stage string) {
	var image *vfs.MemFS
	if stage == "" {
		image = c.clone()
	} else {
		c.stage, c.image = stage, nil
		if err := c.d.Fold(); err != nil {
			c.t.Fatalf("Fold: %v", err)
		}
		c.stage = ""
		image = c.image
		if image == nil { // the log was empty: no fold
			image = c.clone()
		}
	}
	_ = c.d.Close() // writes to c.fs only, which the crash left behind
	c.fs = image
	c.open()
}

// TestDurable_CrashModel applies random batches (adds, removes, expiries, with and
// without TS, and purges) to a durable store in sync mode and to a memory store; it
// folds the log and crashes the durable store at random, before a fold, inside one
// (before its commit or after it, unsynced) or after it, keeping at random some of
// what was not fsynced. Every batch was acknowledged (Apply returned), so after every
// crash the recovered store must equal the memory store: every result, member,
// expiry, remembered TS and tombstone.
func TestDurable_CrashModel(t *testing.T) {
	contents, reactions, users := []string{"c1", "c2"}, []string{"fire", "yum"}, []string{"u1", "u2", "u3"}
	rapid.Check(t, func(rt *rapid.T) {
		c := newCrashStore(t, rapid.Uint64().Draw(rt, "seed"))
		defer func() { c.d.Close() }()
		mem := store.NewMemory()
		opGen := rapid.Custom(func(t *rapid.T) store.Op {
			return store.Op{
				ContentID:    rapid.SampledFrom(contents).Draw(t, "c"),
				ReactionType: rapid.SampledFrom(reactions).Draw(t, "r"),
				UserID:       rapid.SampledFrom(users).Draw(t, "u"),
				Action:       rapid.SampledFrom([]store.Action{store.Add, store.Remove, store.Expire}).Draw(t, "a"),
				TS:           rapid.Int64Range(0, 8).Draw(t, "ts"),
				ExpiresAt:    rapid.Int64Range(0, 8).Draw(t, "exp"),
			}
		})
		for range rapid.IntRange(1, 12).Draw(rt, "steps") {
			switch step := rapid.IntRange(0, 9).Draw(rt, "step"); step {
			case 0:
				c.crash("")
				checkSame(rt, c.d, mem, contents, reactions, users)
			case 1:
				c.crash(rapid.SampledFrom([]string{"commit", "committed"}).Draw(rt, "stage"))
				checkSame(rt, c.d, mem, contents, reactions, users)
			case 2:
				if err := c.d.Fold(); err != nil {
					rt.Fatalf("Fold: %v", err)
				}
			case 3:
				before := rapid.Int64Range(0, 9).Draw(rt, "before")
				nd, errD := c.d.PurgeTombstones(context.Background(), before)
				nm, errM := mem.PurgeTombstones(context.Background(), before)
				if errD != nil || errM != nil || nd != nm {
					rt.Fatalf("PurgeTombstones(%d): durable %d, %v; memory %d, %v", before, nd, errD, nm, errM)
				}
			default:
				ops := rapid.SliceOfN(opGen, 1, 10).Draw(rt, "ops")
				gotD, gotM := make([]store.Result, len(ops)), make([]store.Result, len(ops))
				if err := c.d.Apply(context.Background(), ops, gotD); err != nil {
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
		c.crash("")
		checkSame(rt, c.d, mem, contents, reactions, users)
		probeSame(rt, c.d, mem, contents, reactions, users)
	})
}

// checkSame fails unless d and mem hold the same counts, members (with expiries) and
// tombstones.
func checkSame(rt interface{ Fatalf(string, ...any) }, d *durable.Store, mem *store.Memory, contents, reactions, users []string) {
	ctx := context.Background()
	if n, err := d.DiskTombstones(); err != nil || n != memTombstones(mem) {
		rt.Fatalf("tombstone keys on disk = %d, %v; want %d", n, err, memTombstones(mem))
	}
	for _, c := range contents {
		cd, errD := d.Counts(ctx, c)
		cm, errM := mem.Counts(ctx, c)
		if !slices.Equal(cd, cm) || !errors.Is(errD, errM) {
			rt.Fatalf("Counts(%s): durable %+v, %v; memory %+v, %v", c, cd, errD, cm, errM)
		}
		for _, r := range reactions {
			md, _ := d.Members(ctx, c, r, "", 0)
			mm, _ := mem.Members(ctx, c, r, "", 0)
			if !slices.Equal(md, mm) {
				rt.Fatalf("Members(%s, %s): durable %+v, memory %+v", c, r, md, mm)
			}
		}
	}
}

// probeSame applies removes at rising TS to every key of both stores: each is stale up
// to the remembered TS, then applies; the stores must agree on every one.
func probeSame(rt interface{ Fatalf(string, ...any) }, d *durable.Store, mem *store.Memory, contents, reactions, users []string) {
	var probe []store.Op
	for _, c := range contents {
		for _, r := range reactions {
			for _, u := range users {
				for ts := range int64(10) {
					probe = append(probe, store.Op{ContentID: c, ReactionType: r, UserID: u, Action: store.Remove, TS: ts + 1})
				}
			}
		}
	}
	gotD, gotM := make([]store.Result, len(probe)), make([]store.Result, len(probe))
	if err := d.Apply(context.Background(), probe, gotD); err != nil {
		rt.Fatalf("Apply: %v", err)
	}
	if err := mem.Apply(context.Background(), probe, gotM); err != nil {
		rt.Fatalf("Apply: %v", err)
	}
	for i := range probe {
		if gotD[i] != gotM[i] {
			rt.Fatalf("probe %+v: durable %+v, memory %+v", probe[i], gotD[i], gotM[i])
		}
	}
}

// TestDurable_FoldInBackground: with a small fold threshold the background goroutine
// folds the log while batches keep coming (each fold large enough for the engine to
// queue it whole, as with the real threshold), and a crash at the end, with or without
// what was not fsynced, recovers exactly what was applied.
func TestDurable_FoldInBackground(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewCrashableMem()
	const foldAt = 256 << 10
	folds := make(chan struct{}, 1000)
	d, err := durable.OpenTest(durable.Options{Dir: dir, Sync: true, MinFreeBytes: 1, MemTableSize: 2 * foldAt}, fs, foldAt,
		func(stage string) {
			if stage == "committed" {
				folds <- struct{}{}
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close() }()
	mem := store.NewMemory()
	var contents []string
	for i := range 20 {
		contents = append(contents, fmt.Sprintf("content-%d", i))
	}
	reactions, users := []string{"fire", "yum"}, []string{}
	for i := range 300 {
		users = append(users, fmt.Sprintf("user-%d", i))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ops := make([]store.Op, 256)
	outD, outM := make([]store.Result, len(ops)), make([]store.Result, len(ops))
	ts := int64(1)
	for b := 0; len(folds) < 3 || b < 100; b++ {
		if b > 20000 {
			t.Fatalf("%d folds after %d batches", len(folds), b)
		}
		for i := range ops {
			ops[i] = store.Op{ContentID: contents[rng.IntN(len(contents))], ReactionType: reactions[rng.IntN(2)],
				UserID: users[rng.IntN(len(users))], Action: store.Add}
			switch rng.IntN(4) {
			case 0:
				ops[i].Action = store.Remove
			case 1:
				ops[i].ExpiresAt = 1 << 50
			}
			if rng.IntN(2) == 0 {
				ops[i].TS = ts
				ts++
			}
		}
		if err := d.Apply(context.Background(), ops, outD); err != nil {
			t.Fatal(err)
		}
		_ = mem.Apply(context.Background(), ops, outM)
		if !slices.Equal(outD, outM) {
			t.Fatalf("batch %d: results differ", b)
		}
		if b%50 == 0 {
			if _, err := d.PurgeTombstones(context.Background(), ts/2); err != nil {
				t.Fatal(err)
			}
			_, _ = mem.PurgeTombstones(context.Background(), ts/2)
		}
	}
	for _, keep := range []int{0, 100} {
		image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: keep, RNG: rng})
		r, err := durable.OpenTest(durable.Options{Dir: dir, Sync: true, MinFreeBytes: 1}, image, 0, nil)
		if err != nil {
			t.Fatalf("open after crash (unsynced kept: %d%%): %v", keep, err)
		}
		checkSame(t, r, mem, contents, reactions, users)
		r.Close()
	}
	t.Logf("%d folds in the background", len(folds))
}

// TestDurable_FoldLeavesNoRangeDeletions: a fold deletes the entries it folded one by
// one. A range deletion in every table a fold flushed made each step of the
// recovery's iterator consult it: opening 1M memberships took 0.62-0.68 s of CPU
// instead of 0.46-0.49 s.
func TestDurable_FoldLeavesNoRangeDeletions(t *testing.T) {
	d, err := durable.OpenTest(durable.Options{Dir: t.TempDir(), MinFreeBytes: 1}, nil, 1<<40, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i := range 10 {
		storetest.MustApply(t, d, store.Op{ContentID: "c", ReactionType: "r", UserID: fmt.Sprintf("u%d", i), Action: store.Add})
	}
	if err := d.Fold(); err != nil {
		t.Fatal(err)
	}
	if n, err := d.LogEntries(); err != nil || n != 0 {
		t.Fatalf("log entries after the fold = %d, %v; want 0", n, err)
	}
	if n, err := d.RangeDeletions(); err != nil || n != 0 {
		t.Fatalf("range deletions in the tables = %d, %v; want 0", n, err)
	}
}

// TestDurable_FoldBuffersReleasedWhenIdle: once no fold has come for a while the
// folder lets its buffers go, and the next fold, with buffers made anew, folds
// correctly: after a crash the store holds what was applied.
func TestDurable_FoldBuffersReleasedWhenIdle(t *testing.T) {
	dir := t.TempDir()
	fs := vfs.NewCrashableMem()
	const foldAt = 64 << 10
	stages := make(chan string, 1000)
	d, err := durable.OpenTest(durable.Options{Dir: dir, Sync: true, MinFreeBytes: 1, MemTableSize: 2 * foldAt}, fs, foldAt,
		func(stage string) {
			if stage == "committed" || stage == "released" {
				stages <- stage
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { d.Close() }()
	mem := store.NewMemory()
	ops := make([]store.Op, 128)
	outD, outM := make([]store.Result, len(ops)), make([]store.Result, len(ops))
	rng := rand.New(rand.NewPCG(3, 4))
	n := 0 // ops applied
	// wait applies batches until the background goroutine reports stage.
	wait := func(stage string, apply bool) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case s := <-stages:
				if s == stage {
					return
				}
				continue
			case <-deadline:
				ents, _ := d.LogEntries()
				t.Fatalf("no %q from the background goroutine (n %d, log entries %d)", stage, n, ents)
			default:
			}
			if !apply {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for i := range ops {
				n++
				ops[i] = store.Op{ContentID: fmt.Sprintf("c%d", rng.IntN(17)), ReactionType: "fire", UserID: fmt.Sprintf("u%d", rng.IntN(501)), Action: store.Add}
				if rng.IntN(3) == 0 {
					ops[i].Action = store.Remove
				}
			}
			if err := d.Apply(context.Background(), ops, outD); err != nil {
				t.Fatal(err)
			}
			if err := mem.Apply(context.Background(), ops, outM); err != nil {
				t.Fatal(err)
			}
		}
	}
	wait("committed", true) // a fold made the buffers
	wait("released", false) // idle: let go
	wait("committed", true) // a fold with new ones
	var contents, users []string
	for c := range 17 {
		contents = append(contents, fmt.Sprintf("c%d", c))
	}
	for u := range 501 {
		users = append(users, fmt.Sprintf("u%d", u))
	}
	image := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 2))})
	r, err := durable.OpenTest(durable.Options{Dir: dir, Sync: true, MinFreeBytes: 1}, image, 0, nil)
	if err != nil {
		t.Fatalf("open after crash: %v", err)
	}
	defer r.Close()
	checkSame(t, r, mem, contents, []string{"fire"}, users)
}
