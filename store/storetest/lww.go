package storetest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/arina-dev/arina/store"
)

// The last-writer-wins rules of timestamped ops (see store.Op.TS).

func addTS(u string, ts int64) store.Op {
	return store.Op{ContentID: "c", ReactionType: "r", UserID: u, Action: store.Add, TS: ts}
}

func addTSExp(u string, ts, exp int64) store.Op {
	op := addTS(u, ts)
	op.ExpiresAt = exp
	return op
}

func removeTS(u string, ts int64) store.Op {
	return store.Op{ContentID: "c", ReactionType: "r", UserID: u, Action: store.Remove, TS: ts}
}

func expireAt(u string, now int64) store.Op {
	return store.Op{ContentID: "c", ReactionType: "r", UserID: u, Action: store.Expire, ExpiresAt: now}
}

type lwwStep struct {
	op   store.Op
	want store.Result
}

// live is a unix ms of these years, day one day in ms, maxTS the largest TS the suite
// uses: 2^53-1, the largest integer a float64 holds exactly (Redis keeps TS as
// sorted-set scores); the ingest refuses a ts more than a minute ahead of the clock.
const (
	live  = int64(1_780_000_000_000)
	day   = int64(24 * 3600 * 1000)
	maxTS = int64(1<<53 - 1)
)

// lwwCases apply to (c, r); members is the set at the end.
var lwwCases = []struct {
	name    string
	steps   []lwwStep
	members []string
}{
	{"NewerAddIsDuplicate", []lwwStep{
		{addTS("u", 10), store.Result{Changed: true, Count: 1}},
		{addTS("u", 20), store.Result{Count: 1}},
		{removeTS("u", 15), store.Result{Count: 1, Stale: true}}, // the add at 20 is remembered
	}, []string{"u"}},
	{"OlderAddIsStale", []lwwStep{
		{addTS("u", 20), store.Result{Changed: true, Count: 1}},
		{addTS("u", 10), store.Result{Count: 1, Stale: true}},
	}, []string{"u"}},
	{"OlderRemoveIsStale", []lwwStep{
		{addTS("u", 20), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 10), store.Result{Count: 1, Stale: true}},
	}, []string{"u"}},
	{"NewerRemoveApplies", []lwwStep{
		{addTS("u", 10), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 20), store.Result{Changed: true}},
		{addTS("u", 15), store.Result{Stale: true}}, // the tombstone at 20
		{removeTS("u", 5), store.Result{Stale: true}},
		{addTS("u", 21), store.Result{Changed: true, Count: 1}},
	}, []string{"u"}},
	{"TieRemoveWins", []lwwStep{
		{addTS("u", 10), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 10), store.Result{Changed: true}},
	}, []string{}},
	{"TieAddAfterRemoveIsStale", []lwwStep{
		{addTS("v", 1), store.Result{Changed: true, Count: 1}},
		{addTS("u", 5), store.Result{Changed: true, Count: 2}},
		{removeTS("u", 10), store.Result{Changed: true, Count: 1}},
		{addTS("u", 10), store.Result{Count: 1, Stale: true}}, // the count is v's
	}, []string{"v"}},
	{"TieRemoveOfNonMemberApplies", []lwwStep{
		{addTS("v", 1), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 10), store.Result{Count: 1}}, // never added: remembered all the same
		{addTS("u", 9), store.Result{Count: 1, Stale: true}},
		{removeTS("u", 10), store.Result{Count: 1}},
		{addTS("u", 11), store.Result{Changed: true, Count: 2}},
	}, []string{"u", "v"}},
	{"TieAddOfMemberRefreshes", []lwwStep{
		{addTSExp("u", 10, 100), store.Result{Changed: true, Count: 1, Expiry: 100}},
		{addTSExp("u", 10, 200), store.Result{Count: 1, Expiry: 200, PrevExpiry: 100}},
	}, []string{"u"}},
	{"StaleAddDoesNotRefresh", []lwwStep{
		{addTSExp("u", 10, 100), store.Result{Changed: true, Count: 1, Expiry: 100}},
		{addTSExp("u", 5, 200), store.Result{Count: 1, Expiry: 100, PrevExpiry: 100, Stale: true}},
		{removeTS("u", 9), store.Result{Count: 1, Expiry: 100, PrevExpiry: 100, Stale: true}},
	}, []string{"u"}},
	{"RemoveBeforeAdd", []lwwStep{
		{removeTS("u", 10), store.Result{}},
		{addTS("u", 5), store.Result{Stale: true}},
		{addTS("u", 10), store.Result{Stale: true}},
		{addTS("v", 1), store.Result{Changed: true, Count: 1}}, // other users are not held back
		{addTS("u", 9), store.Result{Count: 1, Stale: true}},   // nor is u's tombstone lost
		{addTS("u", 11), store.Result{Changed: true, Count: 2}},
	}, []string{"u", "v"}},
	{"TSZeroIsArrivalOrder", []lwwStep{
		{addTS("u", 0), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 5), store.Result{Changed: true}}, // nothing was remembered
		{addTS("u", 0), store.Result{Changed: true, Count: 1}},
		{removeTS("u", 4), store.Result{Count: 1, Stale: true}}, // 5 is still remembered
		{removeTS("u", 0), store.Result{Changed: true}},
		{addTS("u", 5), store.Result{Stale: true}}, // the tombstone is still 5
		{addTS("u", 6), store.Result{Changed: true, Count: 1}},
	}, []string{"u"}},
	{"TSZeroKeepsMemberTS", []lwwStep{
		{addTS("u", 10), store.Result{Changed: true, Count: 1}},
		{addTSExp("u", 0, 50), store.Result{Count: 1, Expiry: 50}},
		{removeTS("u", 9), store.Result{Count: 1, Expiry: 50, PrevExpiry: 50, Stale: true}},
		{removeTS("u", 10), store.Result{Changed: true, PrevExpiry: 50}},
	}, []string{}},
	// TS far apart (a store may keep them relative to a base, issue 16): live unix ms,
	// 100 days later, 1 ms, the largest the suite uses; each compared exactly.
	{"FarApartTS", []lwwStep{
		{addTS("u", live), store.Result{Changed: true, Count: 1}},
		{removeTS("v", 1), store.Result{Count: 1}},                        // far older than u's
		{addTS("w", live+100*day), store.Result{Changed: true, Count: 2}}, // far newer
		{removeTS("u", live-1), store.Result{Count: 2, Stale: true}},
		{addTS("v", 1), store.Result{Count: 2, Stale: true}}, // the tombstone at 1
		{removeTS("w", live+100*day-1), store.Result{Count: 2, Stale: true}},
		{addTS("x", maxTS), store.Result{Changed: true, Count: 3}},
		{removeTS("x", maxTS-1), store.Result{Count: 3, Stale: true}},
		{removeTS("u", live), store.Result{Changed: true, Count: 2}}, // a tie: remove wins
		{addTS("u", live), store.Result{Count: 2, Stale: true}},
		{addTS("v", 2), store.Result{Changed: true, Count: 3}},
		{addTS("u", live+1), store.Result{Changed: true, Count: 4}},
		{removeTS("x", maxTS), store.Result{Changed: true, Count: 3}},
	}, []string{"u", "v", "w"}},
	// One ms apart across 2^32 ms (49.7 days) from the first TS, both ways.
	{"MillisecondsAcross2e32", []lwwStep{
		{addTS("u", live), store.Result{Changed: true, Count: 1}},
		{addTS("v", live+1<<32), store.Result{Changed: true, Count: 2}},
		{addTS("w", live-1<<32), store.Result{Changed: true, Count: 3}},
		{removeTS("v", live+1<<32-1), store.Result{Count: 3, Stale: true}},
		{removeTS("w", live-1<<32-1), store.Result{Count: 3, Stale: true}},
		{removeTS("u", live-1), store.Result{Count: 3, Stale: true}},
		{removeTS("v", live+1<<32), store.Result{Changed: true, Count: 2}},
		{removeTS("w", live-1<<32), store.Result{Changed: true, Count: 1}},
		{addTS("w", live-1<<32+1), store.Result{Changed: true, Count: 2}},
	}, []string{"u", "w"}},
	{"ExpireIgnoresTS", []lwwStep{
		{addTSExp("u", 10, 100), store.Result{Changed: true, Count: 1, Expiry: 100}},
		{expireAt("u", 150), store.Result{Changed: true, PrevExpiry: 100}},
		{addTS("u", 10), store.Result{Stale: true}}, // the TS stays as a tombstone
		{addTS("u", 11), store.Result{Changed: true, Count: 1}},
	}, []string{"u"}},
}

// testLWW runs every case with all its ops in one batch and with one batch per op.
func testLWW(t *testing.T, newStore NewFunc) {
	for _, tc := range lwwCases {
		t.Run(tc.name, func(t *testing.T) {
			ops := make([]store.Op, len(tc.steps))
			want := make([]store.Result, len(tc.steps))
			for i, s := range tc.steps {
				ops[i], want[i] = s.op, s.want
			}
			check := func(t *testing.T, s store.Store, got []store.Result) {
				t.Helper()
				for i := range got {
					if got[i] != want[i] {
						t.Errorf("op %d %s %s ts=%d: got %+v, want %+v", i, ops[i].Action, ops[i].UserID, ops[i].TS, got[i], want[i])
					}
				}
				if ms := memberIDs(t, s, "c", "r"); !slices.Equal(ms, tc.members) {
					t.Errorf("members = %v, want %v", ms, tc.members)
				}
			}
			t.Run("OneBatch", func(t *testing.T) {
				s := open(t, newStore)
				check(t, s, MustApply(t, s, ops...))
			})
			t.Run("BatchPerOp", func(t *testing.T) {
				s := open(t, newStore)
				got := make([]store.Result, len(ops))
				for i := range ops {
					got[i] = MustApply(t, s, ops[i])[0]
				}
				check(t, s, got)
			})
		})
	}
}

// fataler is what both *testing.T and *rapid.T offer.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// memberIDs returns the user ids in (content, reaction), empty for an unknown content.
func memberIDs(tb fataler, s store.Store, content, reaction string) []string {
	tb.Helper()
	ms, err := s.Members(context.Background(), content, reaction, "", 0)
	if errors.Is(err, store.ErrNotFound) {
		return []string{}
	}
	if err != nil {
		tb.Fatalf("Members(%q, %q): %v", content, reaction, err)
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.UserID
	}
	return ids
}

// testTombstonesHidden: no query shows a tombstone, and a timestamped remove of a set
// never held leaves the content unknown, as an untimestamped one does.
func testTombstonesHidden(t *testing.T, newStore NewFunc) {
	ctx := context.Background()
	s := open(t, newStore)
	ghost := store.Op{ContentID: "ghost", ReactionType: "r", UserID: "u", Action: store.Remove, TS: 10}
	if got := MustApply(t, s, ghost)[0]; got != (store.Result{}) {
		t.Fatalf("remove of a set never held = %+v, want no change", got)
	}
	ghost.Action, ghost.TS = store.Add, 5
	if got := MustApply(t, s, ghost)[0]; got != (store.Result{Stale: true}) {
		t.Fatalf("older add after it = %+v, want stale", got)
	}
	if _, err := s.Counts(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Counts(ghost) error = %v, want ErrNotFound: a tombstone shows", err)
	}
	if _, err := s.Members(ctx, "ghost", "r", "", 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Members(ghost) error = %v, want ErrNotFound: a tombstone shows", err)
	}

	MustApply(t, s, addTSExp("u", 1, 500), removeTS("u", 2), addTS("v", 0), removeTS("v", 3))
	if got, want := MustCounts(t, s, "c"), []store.ReactionCount{{ReactionType: "r", Count: 0}}; !slices.Equal(got, want) {
		t.Fatalf("counts = %+v, want %+v", got, want)
	}
	if ms := memberIDs(t, s, "c", "r"); len(ms) != 0 {
		t.Fatalf("members = %v, want none", ms)
	}
	for _, u := range []string{"u", "v"} {
		if ms, err := s.UserMemberships(ctx, u); err != nil || len(ms) != 0 {
			t.Fatalf("UserMemberships(%s) = %v, %v; want none", u, ms, err)
		}
	}
	if ids, err := s.Contents(ctx, "", "", 0); err != nil || !slices.Equal(ids, []string{"c"}) {
		t.Fatalf("Contents = %v, %v; want [c]", ids, err)
	}
	s.Expiring(func(c, r, u string, at int64) { t.Errorf("Expiring saw %s/%s/%s at %d, a removed user", c, r, u, at) })
}

// testPurgeTombstones: PurgeTombstones forgets the TS of users not in their set that is
// older than the bound, and only those; a forgotten tombstone no longer holds back an
// older add (which is why the writer refuses events older than what it purges).
func testPurgeTombstones(t *testing.T, newStore NewFunc) {
	ctx := context.Background()
	s := open(t, newStore)
	purge := func(before int64, want int) {
		t.Helper()
		n, err := s.PurgeTombstones(ctx, before)
		if err != nil || n != want {
			t.Fatalf("PurgeTombstones(%d) = %d, %v; want %d", before, n, err, want)
		}
	}
	purge(100, 0) // an empty store
	ghost := func(a store.Action, ts int64) store.Op {
		return store.Op{ContentID: "ghost", ReactionType: "r", UserID: "g", Action: a, TS: ts}
	}
	MustApply(t, s,
		addTS("a", 5),                    // a member: its TS is not a tombstone
		addTS("b", 5), removeTS("b", 10), // a tombstone at 10
		removeTS("d", 30),               // a tombstone at 30 of a user never added
		addTS("e", 0), removeTS("e", 0), // nothing remembered
		ghost(store.Remove, 10), // a tombstone at 10 of a set never held
		store.Op{ContentID: "c", ReactionType: "r2", UserID: "b", Action: store.Remove, TS: 10}, // another set, never held
	)
	purge(10, 0) // strictly before
	purge(20, 3)
	purge(20, 0)
	got := MustApply(t, s,
		addTS("b", 6), ghost(store.Add, 6), // old adds apply again
		addTS("d", 29), removeTS("a", 4), // still held back
	)
	want := []store.Result{{Changed: true, Count: 2}, {Changed: true, Count: 1}, {Count: 2, Stale: true}, {Count: 2, Stale: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("after the purge:\n got %+v\nwant %+v", got, want)
	}
	if ms := memberIDs(t, s, "c", "r"); !slices.Equal(ms, []string{"a", "b"}) {
		t.Fatalf("members = %v, want [a b]", ms)
	}
	purge(1000, 1) // d's; members keep theirs
	if got := MustApply(t, s, removeTS("b", 5))[0]; got != (store.Result{Count: 2, Stale: true}) {
		t.Fatalf("older remove of a member after the purge = %+v, want stale", got)
	}
}

// lwwKey is one (content, reaction, user).
type lwwKey struct{ c, r, u string }

// lwwModel is the reference of the rules of store.Op.TS, with plain maps.
type lwwModel struct {
	member map[lwwKey]bool
	ts     map[lwwKey]int64 // remembered; absent: none
	held   map[[2]string]bool
}

func newLWWModel() *lwwModel {
	return &lwwModel{member: map[lwwKey]bool{}, ts: map[lwwKey]int64{}, held: map[[2]string]bool{}}
}

func (m *lwwModel) count(c, r string) int64 {
	var n int64
	for k, in := range m.member {
		if in && k.c == c && k.r == r {
			n++
		}
	}
	return n
}

func (m *lwwModel) apply(op store.Op) store.Result {
	k := lwwKey{op.ContentID, op.ReactionType, op.UserID}
	in := m.member[k]
	prev, remembered := m.ts[k]
	if op.TS != 0 && remembered && (op.TS < prev || (op.TS == prev && op.Action == store.Add && !in)) {
		return store.Result{Count: m.count(op.ContentID, op.ReactionType), Stale: true}
	}
	if op.TS != 0 {
		m.ts[k] = op.TS
	}
	if op.Action == store.Add {
		m.member[k] = true
		m.held[[2]string{op.ContentID, op.ReactionType}] = true
	} else {
		delete(m.member, k)
	}
	return store.Result{Changed: in != (op.Action == store.Add), Count: m.count(op.ContentID, op.ReactionType)}
}

func (m *lwwModel) purge(before int64) int {
	n := 0
	for k, ts := range m.ts {
		if ts < before && !m.member[k] {
			delete(m.ts, k)
			n++
		}
	}
	return n
}

// testLWWModel applies random batches of adds and removes, with and without TS, and
// purges, and compares every result, count and member with lwwModel.
func testLWWModel(t *testing.T, newStore NewFunc) {
	t.Run("Near", func(t *testing.T) { testLWWModelTS(t, newStore, rapid.Int64Range(0, 10)) })
	// TS spread over centuries and to the largest, a few ms apart at each place, so
	// that a store keeping them relative to a base meets every edge (issue 16).
	t.Run("Wide", func(t *testing.T) { testLWWModelTS(t, newStore, wideTS()) })
}

// wideTS draws 0 (none) or a TS from clusters a few ms wide far apart.
func wideTS() *rapid.Generator[int64] {
	return rapid.Custom(func(t *rapid.T) int64 {
		at := rapid.SampledFrom([]int64{0, 1, 1 << 32, live - 1<<32, live, live + 1<<31, live + 1<<32, live + 400*day, maxTS - 3}).Draw(t, "at")
		if at == 0 {
			return 0
		}
		return at + rapid.Int64Range(0, 3).Draw(t, "ms")
	})
}

// testLWWModelTS is testLWWModel with TS (and purge bounds) drawn from ts.
func testLWWModelTS(t *testing.T, newStore NewFunc, ts *rapid.Generator[int64]) {
	contents := []string{"c1", "c2"}
	reactions := []string{"fire", "yum"}
	users := []string{"u1", "u2", "u3"}
	rapid.Check(t, func(rt *rapid.T) {
		s := newStore(t)
		defer s.Close()
		model := newLWWModel()
		for range rapid.IntRange(1, 12).Draw(rt, "batches") {
			if rapid.IntRange(0, 4).Draw(rt, "purge?") == 0 {
				before := ts.Draw(rt, "before") + rapid.Int64Range(0, 2).Draw(rt, "after")
				n, err := s.PurgeTombstones(context.Background(), before)
				if err != nil {
					rt.Fatalf("PurgeTombstones: %v", err)
				}
				if want := model.purge(before); n != want {
					rt.Fatalf("PurgeTombstones(%d) = %d, want %d", before, n, want)
				}
			}
			ops := rapid.SliceOfN(lwwOpGenTS(contents, reactions, users, ts), 1, 12).Draw(rt, "ops")
			want := make([]store.Result, len(ops))
			for i, op := range ops {
				want[i] = model.apply(op)
			}
			got := make([]store.Result, len(ops))
			if err := s.Apply(context.Background(), ops, got); err != nil {
				rt.Fatalf("Apply: %v", err)
			}
			for i := range ops {
				if got[i] != want[i] {
					rt.Fatalf("op %d %+v:\n got %+v\nwant %+v", i, ops[i], got[i], want[i])
				}
			}
		}
		checkLWWState(rt, s, model, contents, reactions, users, true)
	})
}

// lwwOpGen draws an add or remove of few contents, reactions and users, so that they
// collide, with a TS in [minTS, maxTS] (0: none).
func lwwOpGen(contents, reactions, users []string, minTS, maxTS int64) *rapid.Generator[store.Op] {
	return lwwOpGenTS(contents, reactions, users, rapid.Int64Range(minTS, maxTS))
}

// lwwOpGenTS is lwwOpGen with the TS drawn from ts.
func lwwOpGenTS(contents, reactions, users []string, ts *rapid.Generator[int64]) *rapid.Generator[store.Op] {
	return rapid.Custom(func(t *rapid.T) store.Op {
		return store.Op{
			ContentID:    rapid.SampledFrom(contents).Draw(t, "c"),
			ReactionType: rapid.SampledFrom(reactions).Draw(t, "r"),
			UserID:       rapid.SampledFrom(users).Draw(t, "u"),
			Action:       rapid.SampledFrom([]store.Action{store.Add, store.Remove}).Draw(t, "a"),
			TS:           ts.Draw(t, "ts"),
		}
	})
}

// checkLWWState compares s with the model: counts (with the reactions listed at 0 too
// if exactZeros), members and memberships.
func checkLWWState(t *rapid.T, s store.Store, model *lwwModel, contents, reactions, users []string, exactZeros bool) {
	ctx := context.Background()
	for _, c := range contents {
		got := map[string]int64{}
		counts, err := s.Counts(ctx, c)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Counts(%q): %v", c, err)
		}
		for _, rc := range counts {
			if exactZeros || rc.Count != 0 {
				got[rc.ReactionType] = rc.Count
			}
		}
		want := map[string]int64{}
		for _, r := range reactions {
			if n := model.count(c, r); n != 0 || (exactZeros && model.held[[2]string{c, r}]) {
				want[r] = n
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("Counts(%q) = %v, want %v", c, got, want)
		}
		for _, r := range reactions {
			var wantM []string
			for _, u := range users {
				if model.member[lwwKey{c, r, u}] {
					wantM = append(wantM, u)
				}
			}
			if gotM := memberIDs(t, s, c, r); !slices.Equal(gotM, wantM) {
				t.Fatalf("Members(%q, %q) = %v, want %v", c, r, gotM, wantM)
			}
		}
	}
	for _, u := range users {
		ms, err := s.UserMemberships(ctx, u)
		if err != nil {
			t.Fatalf("UserMemberships(%q): %v", u, err)
		}
		var want []store.Membership
		for _, c := range contents {
			for _, r := range reactions {
				if model.member[lwwKey{c, r, u}] {
					want = append(want, store.Membership{ContentID: c, ReactionType: r})
				}
			}
		}
		if !slices.Equal(ms, want) {
			t.Fatalf("UserMemberships(%q) = %v, want %v", u, ms, want)
		}
	}
}

// testLWWOrderFree: any permutation and duplication of a set of timestamped adds and
// removes, applied in any split into batches, ends in the same counts and members: those
// where, per (content, reaction, user), the newest events decide, and a remove among
// them wins. (Which reactions are listed at count 0 does depend on the order: a set
// is listed once an add applied to it.)
func testLWWOrderFree(t *testing.T, newStore NewFunc) {
	contents := []string{"c1", "c2"}
	reactions := []string{"fire", "yum"}
	users := []string{"u1", "u2", "u3"}
	rapid.Check(t, func(rt *rapid.T) {
		events := rapid.SliceOfN(lwwOpGen(contents, reactions, users, 1, 6), 1, 24).Draw(rt, "events")
		dups := rapid.SliceOfN(rapid.SampledFrom(events), 0, 8).Draw(rt, "duplicates")
		seq := rapid.Permutation(append(slices.Clone(events), dups...)).Draw(rt, "order")

		// The expected sets: per key, the newest TS and whether a remove has it.
		type newest struct {
			ts     int64
			remove bool
		}
		win := map[lwwKey]newest{}
		for _, op := range events {
			k := lwwKey{op.ContentID, op.ReactionType, op.UserID}
			w, ok := win[k]
			switch {
			case !ok || op.TS > w.ts:
				win[k] = newest{op.TS, op.Action == store.Remove}
			case op.TS == w.ts && op.Action == store.Remove:
				w.remove = true
				win[k] = w
			}
		}
		model := newLWWModel()
		for k, w := range win {
			if !w.remove {
				model.member[k] = true
			}
		}

		s := newStore(t)
		defer s.Close()
		for pos := 0; pos < len(seq); {
			n := rapid.IntRange(1, len(seq)-pos).Draw(rt, "batch")
			out := make([]store.Result, n)
			if err := s.Apply(context.Background(), seq[pos:pos+n], out); err != nil {
				rt.Fatalf("Apply: %v", err)
			}
			pos += n
		}
		checkLWWState(rt, s, model, contents, reactions, users, false)
	})
}
