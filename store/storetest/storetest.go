// Package storetest is the conformance suite that every store.Store implementation runs.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/arina-dev/arina/store"
)

// NewFunc returns a new, empty store for one test. The suite closes it.
type NewFunc func(t testing.TB) store.Store

// Run runs the conformance suite against the stores made by newStore.
func Run(t *testing.T, newStore NewFunc) {
	t.Run("UnknownContent", func(t *testing.T) { testUnknownContent(t, newStore) })
	t.Run("SetSemantics", func(t *testing.T) { testSetSemantics(t, newStore) })
	t.Run("RemoveBeforeAdd", func(t *testing.T) { testRemoveBeforeAdd(t, newStore) })
	t.Run("OrderWithinBatch", func(t *testing.T) { testOrderWithinBatch(t, newStore) })
	t.Run("ConcurrentReaders", func(t *testing.T) { testConcurrentReaders(t, newStore) })
	t.Run("NewSetsNeverEmpty", func(t *testing.T) { testNewSetsNeverEmpty(t, newStore) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, newStore) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, newStore) })
	t.Run("Members", func(t *testing.T) { testMembers(t, newStore) })
	t.Run("Model", func(t *testing.T) { testModel(t, newStore) })
	t.Run("LWW", func(t *testing.T) { testLWW(t, newStore) })
	t.Run("TombstonesHidden", func(t *testing.T) { testTombstonesHidden(t, newStore) })
	t.Run("PurgeTombstones", func(t *testing.T) { testPurgeTombstones(t, newStore) })
	t.Run("LWWModel", func(t *testing.T) { testLWWModel(t, newStore) })
	t.Run("LWWOrderFree", func(t *testing.T) { testLWWOrderFree(t, newStore) })
}

func add(c, r, u string) store.Op {
	return store.Op{ContentID: c, ReactionType: r, UserID: u, Action: store.Add}
}
func remove(c, r, u string) store.Op {
	return store.Op{ContentID: c, ReactionType: r, UserID: u, Action: store.Remove}
}

// MustApply applies ops and returns their results, failing the test on error.
func MustApply(tb testing.TB, s store.Store, ops ...store.Op) []store.Result {
	tb.Helper()
	out := make([]store.Result, len(ops))
	if err := s.Apply(context.Background(), ops, out); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
	return out
}

// MustCounts returns the counts of a content, failing the test on error.
func MustCounts(tb testing.TB, s store.Store, content string) []store.ReactionCount {
	tb.Helper()
	c, err := s.Counts(context.Background(), content)
	if err != nil {
		tb.Fatalf("Counts(%q): %v", content, err)
	}
	return c
}

// CountsMap returns the counts of a content as reaction -> count, or nil for a content
// never seen, failing the test on any other error.
func CountsMap(tb testing.TB, s store.Store, content string) map[string]int64 {
	tb.Helper()
	counts, err := s.Counts(context.Background(), content)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		tb.Fatalf("Counts(%q): %v", content, err)
	}
	m := make(map[string]int64, len(counts))
	for _, c := range counts {
		m[c.ReactionType] = c.Count
	}
	return m
}

func open(t *testing.T, newStore NewFunc) store.Store {
	s := newStore(t)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testUnknownContent(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	if _, err := s.Counts(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Counts(unknown) error = %v, want ErrNotFound", err)
	}
}

func testSetSemantics(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	got := MustApply(t, s,
		add("Stew", "fire", "Sam"),
		add("Stew", "fire", "Ann"),
		add("Stew", "fire", "Sam"), // duplicate
		add("Stew", "yum", "Sam"),
		remove("Stew", "fire", "Bob"), // never added
		remove("Stew", "fire", "Ann"),
		remove("Stew", "fire", "Ann"), // already removed
		remove("Stew", "yum", "Sam"),
	)
	want := []store.Result{
		{Changed: true, Count: 1},
		{Changed: true, Count: 2},
		{Changed: false, Count: 2},
		{Changed: true, Count: 1},
		{Changed: false, Count: 2},
		{Changed: true, Count: 1},
		{Changed: false, Count: 1},
		{Changed: true, Count: 0},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results:\n got %+v\nwant %+v", got, want)
	}
	counts := MustCounts(t, s, "Stew")
	wantCounts := []store.ReactionCount{{ReactionType: "fire", Count: 1}, {ReactionType: "yum", Count: 0}}
	if !slices.Equal(counts, wantCounts) {
		t.Fatalf("counts = %+v, want %+v (a reaction whose users left stays with 0)", counts, wantCounts)
	}
}

func testRemoveBeforeAdd(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	got := MustApply(t, s, remove("Soup", "fire", "Sam"))
	if got[0] != (store.Result{}) {
		t.Fatalf("remove of absent = %+v, want no change and count 0", got[0])
	}
	if _, err := s.Counts(context.Background(), "Soup"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a remove-before-add left something behind: Counts error = %v", err)
	}
	MustApply(t, s, add("Soup", "yum", "Sam"), remove("Soup", "fire", "Sam"))
	counts := MustCounts(t, s, "Soup")
	if want := []store.ReactionCount{{ReactionType: "yum", Count: 1}}; !slices.Equal(counts, want) {
		t.Fatalf("counts = %+v, want %+v", counts, want)
	}
}

func testOrderWithinBatch(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	MustApply(t, s, add("c", "r", "u"), remove("c", "r", "u"), add("c", "r", "v"))
	if got, want := MustCounts(t, s, "c"), []store.ReactionCount{{ReactionType: "r", Count: 1}}; !slices.Equal(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
	MustApply(t, s, remove("c", "r", "v"), add("c", "r", "v"))
	if got, want := MustCounts(t, s, "c"), []store.ReactionCount{{ReactionType: "r", Count: 1}}; !slices.Equal(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
}

// testConcurrentReaders checks, under -race, that queries may run while the writer
// applies, and that a reader sees a content's counts as they were between two ops: it
// may see part of a batch, but never the counts of two moments mixed.
func testConcurrentReaders(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	const batches = 2000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				counts, err := s.Counts(ctx, "c")
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						return // cancelled at the end of the test: a store may say so
					}
					errc <- err
					return
				}
				// Every batch adds one user to a, then the same user to b: between two
				// ops a holds as many users as b or one more. Counts read at two
				// moments could show b ahead.
				if len(counts) == 2 && (counts[0].Count < counts[1].Count || counts[0].Count > counts[1].Count+1) {
					errc <- fmt.Errorf("saw counts of two moments mixed: %+v", counts)
					return
				}
			}
		})
	}
	for i := range batches {
		u := fmt.Sprint("u", i)
		MustApply(t, s, add("c", "a", u), add("c", "b", u))
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	want := []store.ReactionCount{{ReactionType: "a", Count: batches}, {ReactionType: "b", Count: batches}}
	if got := MustCounts(t, s, "c"); !slices.Equal(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
}

// testNewSetsNeverEmpty checks that a reader never sees a set, or a content, that an
// add is creating before it holds its member: nothing is ever removed here, so a count
// of 0 could only be such a set.
func testNewSetsNeverEmpty(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	const batches = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var newest atomic.Int64 // the last content being created
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				// Half the readers read the content that gains a reaction per batch, half
				// the one being created.
				content := "c"
				if r%2 == 1 {
					content = fmt.Sprint("n", newest.Load())
				}
				counts, err := s.Counts(ctx, content)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					errc <- err
					return
				}
				for _, c := range counts {
					if c.Count != 1 {
						errc <- fmt.Errorf("content %s: saw %+v, want every count 1 (a set seen before it held its member)", content, counts)
						return
					}
				}
			}
		})
	}
	for i := range batches {
		newest.Store(int64(i))
		MustApply(t, s, add("c", fmt.Sprint("r", i), "u"), add(fmt.Sprint("n", i), "r", "u"))
	}
	cancel()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if got := len(MustCounts(t, s, "c")); got != batches {
		t.Fatalf("content c has %d reactions, want %d", got, batches)
	}
}

func testExpiry(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	addAt := func(u string, exp int64) store.Op {
		return store.Op{ContentID: "c", ReactionType: "active", UserID: u, Action: store.Add, ExpiresAt: exp}
	}
	expire := func(u string, now int64) store.Op {
		return store.Op{ContentID: "c", ReactionType: "active", UserID: u, Action: store.Expire, ExpiresAt: now}
	}
	got := MustApply(t, s, addAt("sam", 100), addAt("ann", 100), addAt("kim", 0), addAt("sam", 200))
	want := []store.Result{
		{Changed: true, Count: 1, Expiry: 100},
		{Changed: true, Count: 2, Expiry: 100},
		{Changed: true, Count: 3},
		{Count: 3, Expiry: 200, PrevExpiry: 100}, // a refresh
	}
	if !slices.Equal(got, want) {
		t.Fatalf("adds:\n got %+v\nwant %+v", got, want)
	}
	got = MustApply(t, s, expire("sam", 150), expire("ann", 150), expire("kim", 150), expire("zed", 150), expire("ann", 150))
	want = []store.Result{
		{Count: 3, Expiry: 200, PrevExpiry: 200}, // refreshed: stays
		{Changed: true, Count: 2, PrevExpiry: 100},
		{Count: 2}, // no expiry: stays
		{Count: 2}, // not a member
		{Count: 2}, // already gone
	}
	if !slices.Equal(got, want) {
		t.Fatalf("expires:\n got %+v\nwant %+v", got, want)
	}
	ms, err := s.Members(context.Background(), "c", "active", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if wantM := []store.Member{{UserID: "kim"}, {UserID: "sam", ExpiresAt: 200}}; !slices.Equal(ms, wantM) {
		t.Fatalf("members = %+v, want %+v", ms, wantM)
	}
	seen := map[string]int64{}
	s.Expiring(func(c, r, u string, at int64) { seen[c+"/"+r+"/"+u] = at })
	if len(seen) != 1 || seen["c/active/sam"] != 200 {
		t.Fatalf("Expiring saw %v, want only c/active/sam at 200", seen)
	}
}

func testMembers(t *testing.T, newStore NewFunc) {
	s := open(t, newStore)
	if _, err := s.Members(context.Background(), "none", "r", "", 10); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Members(unknown content) error = %v, want ErrNotFound", err)
	}
	for _, u := range []string{"dan", "ann", "cid", "bob", "eve"} {
		MustApply(t, s, add("c", "r", u))
	}
	MustApply(t, s, remove("c", "r", "cid"))
	var all []string
	after := ""
	for {
		page, err := s.Members(context.Background(), "c", "r", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			all = append(all, m.UserID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].UserID
	}
	if want := []string{"ann", "bob", "dan", "eve"}; !slices.Equal(all, want) {
		t.Fatalf("paged members = %v, want %v", all, want)
	}
	if page, err := s.Members(context.Background(), "c", "other", "", 10); err != nil || len(page) != 0 {
		t.Fatalf("Members(unknown reaction) = %v, %v; want empty", page, err)
	}
	for _, c := range []string{"line/2", "line-1", "line-3", "oven", "line-2"} {
		MustApply(t, s, add(c, "r", "u"))
	}
	MustApply(t, s, remove("line-9", "r", "u")) // never seen: not a content
	ids, err := s.Contents(context.Background(), "line-", "line-1", 10)
	if want := []string{"line-2", "line-3"}; err != nil || !slices.Equal(ids, want) {
		t.Fatalf("Contents(line-, after line-1) = %v, %v; want %v", ids, err, want)
	}
	ms, err := s.UserMemberships(context.Background(), "u")
	wantMs := []store.Membership{{ContentID: "line-1", ReactionType: "r"}, {ContentID: "line-2", ReactionType: "r"},
		{ContentID: "line-3", ReactionType: "r"}, {ContentID: "line/2", ReactionType: "r"}, {ContentID: "oven", ReactionType: "r"}}
	if err != nil || !slices.Equal(ms, wantMs) {
		t.Fatalf("UserMemberships(u) = %v, %v; want %v", ms, err, wantMs)
	}
	if ms, err := s.UserMemberships(context.Background(), "cid"); err != nil || len(ms) != 0 {
		t.Fatalf("UserMemberships(cid, removed) = %v, %v; want none", ms, err)
	}
	ids, err = s.Contents(context.Background(), "", "", 2)
	if want := []string{"c", "line-1"}; err != nil || !slices.Equal(ids, want) {
		t.Fatalf("Contents(first 2) = %v, %v; want %v", ids, err, want)
	}
}

func testClosed(t *testing.T, newStore NewFunc) {
	s := newStore(t)
	MustApply(t, s, add("c", "r", "u"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Apply(context.Background(), []store.Op{add("c", "r", "v")}, make([]store.Result, 1)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Apply after Close error = %v, want ErrClosed", err)
	}
	if _, err := s.PurgeTombstones(context.Background(), 1); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("PurgeTombstones after Close error = %v, want ErrClosed", err)
	}
}

// testModel applies random batches and compares every result and count with a plain
// map-of-sets model.
func testModel(t *testing.T, newStore NewFunc) {
	rapid.Check(t, func(rt *rapid.T) {
		s := newStore(t)
		defer s.Close()
		type key struct{ c, r string }
		model := map[key]map[string]bool{}
		seen := map[string]map[string]bool{} // content -> reactions ever added
		content := rapid.SampledFrom([]string{"c1", "c2", "c3"})
		reaction := rapid.SampledFrom([]string{"fire", "yum", "active"})
		user := rapid.SampledFrom([]string{"u1", "u2", "u3", "u4"})
		for range rapid.IntRange(1, 20).Draw(rt, "batches") {
			n := rapid.IntRange(1, 16).Draw(rt, "n")
			ops := make([]store.Op, n)
			want := make([]store.Result, n)
			for i := range ops {
				op := store.Op{
					ContentID: content.Draw(rt, "c"), ReactionType: reaction.Draw(rt, "r"), UserID: user.Draw(rt, "u"),
					Action: rapid.SampledFrom([]store.Action{store.Add, store.Remove}).Draw(rt, "a"),
				}
				ops[i] = op
				k := key{op.ContentID, op.ReactionType}
				set := model[k]
				if op.Action == store.Add {
					if set == nil {
						set = map[string]bool{}
						model[k] = set
					}
					if seen[op.ContentID] == nil {
						seen[op.ContentID] = map[string]bool{}
					}
					seen[op.ContentID][op.ReactionType] = true
					want[i] = store.Result{Changed: !set[op.UserID], Count: int64(len(set))}
					set[op.UserID] = true
					want[i].Count = int64(len(set))
				} else {
					want[i] = store.Result{Changed: set[op.UserID]}
					delete(set, op.UserID)
					want[i].Count = int64(len(set))
				}
			}
			got := make([]store.Result, n)
			if err := s.Apply(context.Background(), ops, got); err != nil {
				rt.Fatalf("Apply: %v", err)
			}
			if !slices.Equal(got, want) {
				rt.Fatalf("results of %+v:\n got %+v\nwant %+v", ops, got, want)
			}
		}
		for _, c := range []string{"c1", "c2", "c3"} {
			counts, err := s.Counts(context.Background(), c)
			if len(seen[c]) == 0 {
				if !errors.Is(err, store.ErrNotFound) {
					rt.Fatalf("Counts(%q) error = %v, want ErrNotFound", c, err)
				}
				continue
			}
			if err != nil {
				rt.Fatalf("Counts(%q): %v", c, err)
			}
			var want []store.ReactionCount
			for _, r := range []string{"active", "fire", "yum"} {
				if seen[c][r] {
					want = append(want, store.ReactionCount{ReactionType: r, Count: int64(len(model[key{c, r}]))})
				}
			}
			if !slices.Equal(counts, want) {
				rt.Fatalf("Counts(%q) = %+v, want %+v", c, counts, want)
			}
		}
	})
}
