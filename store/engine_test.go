package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

// TestLoader: a Memory filled by a Loader (more memberships than one interned batch,
// in several sets, with expiries and remembered TS, then tombstones of a set that
// exists and of one that does not) answers as a Memory that applied the same.
func TestLoader(t *testing.T) {
	m := store.NewMemory()
	defer m.Close()
	l := m.Load()
	var (
		sets  []store.LoadSet
		users [][]byte
		exps  []int64
		tss   []int64
	)
	a, b := l.Set("c", "a"), l.Set("c", "b")
	l.Set("d", "empty")
	n := store.LoadBatchMax + 44
	for i := range n {
		set := a
		if i >= n/2 {
			set = b
		}
		sets = append(sets, set)
		users = append(users, fmt.Appendf(nil, "u%04d", i))
		exps = append(exps, int64(i%3)*1000)
		tss = append(tss, int64(i%2)*50)
	}
	l.Members(sets, users, exps, tss)
	l.Tombstone([]byte("c"), []byte("a"), []byte("gone"), 70)
	l.Tombstone([]byte("ghost"), []byte("a"), []byte("u0001"), 90)
	l.Done()

	ctx := context.Background()
	counts := storetest.MustCounts(t, m, "c")
	want := []store.ReactionCount{{ReactionType: "a", Count: int64(n / 2)}, {ReactionType: "b", Count: int64(n - n/2)}}
	if !slices.Equal(counts, want) {
		t.Fatalf("counts = %+v, want %+v", counts, want)
	}
	if got := storetest.MustCounts(t, m, "d"); !slices.Equal(got, []store.ReactionCount{{ReactionType: "empty"}}) {
		t.Fatalf("d counts = %+v, want empty listed at 0", got)
	}
	members, err := m.Members(ctx, "c", "a", "", 0)
	if err != nil || len(members) != n/2 || members[5] != (store.Member{UserID: "u0005", ExpiresAt: 2000}) {
		t.Fatalf("members = %d, %v (5th %+v)", len(members), err, members[min(5, len(members)-1)])
	}
	if _, err := m.Counts(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a tombstone of a set never held made it known: %v", err)
	}
	tombs, err := m.ListTombstones(math.MaxInt64)
	if err != nil || len(tombs) != 2 {
		t.Fatalf("tombstones = %+v, %v; want 2", tombs, err)
	}
	// The loaded TS decide as applied ones do.
	res := storetest.MustApply(t, m,
		store.Op{ContentID: "c", ReactionType: "a", UserID: "u0001", Action: store.Remove, TS: 40}, // member's TS 50
		store.Op{ContentID: "c", ReactionType: "a", UserID: "gone", Action: store.Add, TS: 60},     // tombstone at 70
		store.Op{ContentID: "ghost", ReactionType: "a", UserID: "u0001", Action: store.Add, TS: 80},
	)
	for i, r := range res {
		if !r.Stale {
			t.Fatalf("op %d = %+v, want stale", i, r)
		}
	}
}

// TestMemory_ApplyTrackedUndo: ApplyTracked reports what each op did, and Undo of
// the batch leaves the Memory as before it.
func TestMemory_ApplyTrackedUndo(t *testing.T) {
	m := store.NewMemory()
	defer m.Close()
	storetest.MustApply(t, m, store.Op{ContentID: "c", ReactionType: "a", UserID: "sam", Action: store.Add, TS: 5})
	ops := []store.Op{
		{ContentID: "c", ReactionType: "a", UserID: "sam", Action: store.Remove, TS: 9},
		{ContentID: "c", ReactionType: "b", UserID: "ann", Action: store.Add},
	}
	out := make([]store.Result, len(ops))
	ap := make([]store.Applied, len(ops))
	if err := m.ApplyTracked(ops, out, ap); err != nil {
		t.Fatal(err)
	}
	if !ap[0].WasMember() || ap[0].IsMember() || ap[0].PrevTS() != 5 || ap[0].TS() != 9 || ap[0].CreatedReaction() {
		t.Fatalf("remove: %+v", ap[0])
	}
	if ap[1].WasMember() || !ap[1].IsMember() || !ap[1].CreatedReaction() {
		t.Fatalf("add: %+v", ap[1])
	}
	m.Undo(ops, out, ap)
	if got := storetest.MustCounts(t, m, "c"); !slices.Equal(got, []store.ReactionCount{{ReactionType: "a", Count: 1}}) {
		t.Fatalf("after undo counts = %+v", got)
	}
	if tombs, _ := m.ListTombstones(math.MaxInt64); len(tombs) != 0 {
		t.Fatalf("after undo tombstones = %+v", tombs)
	}
	// sam's TS is 5 again: a remove at 7 applies.
	if r := storetest.MustApply(t, m, store.Op{ContentID: "c", ReactionType: "a", UserID: "sam", Action: store.Remove, TS: 7}); !r[0].Changed {
		t.Fatalf("remove at 7 after undo = %+v, want applied", r[0])
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.ApplyTracked(ops, out, ap); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("ApplyTracked after Close = %v, want ErrClosed", err)
	}
}
