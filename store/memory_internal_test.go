package store

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// memSnapshot is the state of a Memory by names: content -> reaction sets in order.
type memSnapshot struct {
	contents map[string][]setSnapshot
	orphans  map[setKey]map[string]int64
}

type setSnapshot struct {
	reaction string
	members  map[string]int64
	stamps   map[string]int64 // nil when none
}

func snapshot(m *Memory) memSnapshot {
	byName := func(ids map[uint32]int64) map[string]int64 {
		if len(ids) == 0 {
			return nil
		}
		out := make(map[string]int64, len(ids))
		for uid, v := range ids {
			out[m.users.name(uid)] = v
		}
		return out
	}
	s := memSnapshot{contents: map[string][]setSnapshot{}, orphans: map[setKey]map[string]int64{}}
	for cid, c := range m.contents {
		for i, rs := range c.reactions {
			s.contents[cid] = append(s.contents[cid], setSnapshot{c.names[i], byName(memberMap(&rs.members)), byName(rs.members.stampMap())})
		}
	}
	for k, stamps := range m.orphans {
		if len(stamps) > 0 {
			s.orphans[k] = byName(stamps)
		}
	}
	return s
}

// TestMemory_Undo: undoing a batch in reverse order restores the sets, their expiries
// and remembered TS exactly (store/durable does so when a commit fails).
func TestMemory_Undo(t *testing.T) {
	opGen := rapid.Custom(func(t *rapid.T) Op {
		return Op{
			ContentID:    rapid.SampledFrom([]string{"c1", "c2"}).Draw(t, "c"),
			ReactionType: rapid.SampledFrom([]string{"fire", "yum"}).Draw(t, "r"),
			UserID:       rapid.SampledFrom([]string{"u1", "u2", "u3"}).Draw(t, "u"),
			Action:       rapid.SampledFrom([]Action{Add, Remove, Expire}).Draw(t, "a"),
			TS:           rapid.Int64Range(0, 8).Draw(t, "ts"),
			ExpiresAt:    rapid.Int64Range(0, 8).Draw(t, "exp"),
		}
	})
	rapid.Check(t, func(rt *rapid.T) {
		m := NewMemory()
		setup := rapid.SliceOfN(opGen, 0, 30).Draw(rt, "setup")
		if err := m.Apply(context.Background(), setup, make([]Result, len(setup))); err != nil {
			rt.Fatal(err)
		}
		if rapid.Bool().Draw(rt, "purge") {
			if _, err := m.PurgeTombstones(context.Background(), rapid.Int64Range(0, 9).Draw(rt, "before")); err != nil {
				rt.Fatal(err)
			}
		}
		before := snapshot(m)
		batch := rapid.SliceOfN(opGen, 1, 20).Draw(rt, "batch")
		res := make([]Result, len(batch))
		ap := make([]Applied, len(batch))
		m.mu.Lock()
		for i := range batch {
			if batch[i].Action == Add {
				ap[i] = m.add(&batch[i], &res[i])
			} else {
				ap[i] = m.remove(&batch[i], &res[i])
			}
		}
		for i := len(batch) - 1; i >= 0; i-- {
			m.undo(&batch[i], res[i], ap[i])
		}
		m.mu.Unlock()
		if after := snapshot(m); !reflect.DeepEqual(before, after) {
			rt.Fatalf("after apply and undo of %+v:\n got %+v\nwant %+v", batch, after, before)
		}
	})
}

// memberMap returns a set's members as user id -> expiry.
func memberMap(s *memberSet) map[uint32]int64 {
	out := make(map[uint32]int64, s.len())
	s.each(func(uid uint32, exp int64) { out[uid] = exp })
	return out
}

// TestMemory_CountsFallback: a Counts that cannot read a content's counts from one
// moment (here it is allowed no try) waits for the batch being applied and reads them
// under the read lock, without holding the lock the writer needs to attach a set.
func TestMemory_CountsFallback(t *testing.T) {
	defer func(n int) { countTries = n }(countTries)
	countTries = 0
	ctx := context.Background()
	m := NewMemory()
	add := func(c, r, u string) Op { return Op{ContentID: c, ReactionType: r, UserID: u, Action: Add} }
	if err := m.Apply(ctx, []Op{add("c", "b", "u1")}, make([]Result, 1)); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock() // a batch being applied
	got := make(chan []ReactionCount, 1)
	go func() {
		counts, err := m.Counts(ctx, "c")
		if err != nil {
			t.Error(err)
		}
		got <- counts
	}()
	waitBlocked(t, "store.(*Memory).Counts", "[sync.RWMutex.RLock")
	var res Result
	for _, op := range []Op{add("c", "a", "u2"), add("c", "b", "u3")} { // a new set, then a member
		m.add(&op, &res)
	}
	m.mu.Unlock()
	want := []ReactionCount{{ReactionType: "a", Count: 1}, {ReactionType: "b", Count: 2}}
	if counts := <-got; !reflect.DeepEqual(counts, want) {
		t.Fatalf("counts = %+v, want %+v (the state after the batch)", counts, want)
	}
	if _, err := m.Counts(ctx, "unknown"); err != ErrNotFound {
		t.Fatalf("counts of an unknown content: err = %v, want ErrNotFound", err)
	}
}

// waitBlocked polls the goroutine dump until a goroutine whose stack holds fn is in the
// given wait state.
func waitBlocked(t *testing.T, fn, state string) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, state) && strings.Contains(g, fn) {
				return
			}
		}
	}
	t.Fatalf("no goroutine in %s is blocked (%s)", fn, state)
}

// TestMemory_OrphansPacked: the tombstones a set never held gathered (timestamped
// removes) are packed beside its members once an add creates it, not kept in a table
// of their own, and still decide what is stale.
func TestMemory_OrphansPacked(t *testing.T) {
	m := NewMemory()
	ops := []Op{
		{ContentID: "c", ReactionType: "r", UserID: "a", Action: Remove, TS: 10},
		{ContentID: "c", ReactionType: "r", UserID: "b", Action: Remove, TS: 20},
		{ContentID: "c", ReactionType: "r", UserID: "c", Action: Add, TS: 5},
		{ContentID: "c", ReactionType: "r", UserID: "b", Action: Add, TS: 15},
	}
	out := make([]Result, len(ops))
	if err := m.Apply(context.Background(), ops, out); err != nil {
		t.Fatal(err)
	}
	if !out[2].Changed || !out[3].Stale {
		t.Fatalf("results %+v: want c added, b's add stale", out)
	}
	s := &m.contents["c"].find("r").members
	if s.table() != nil || !s.packed() || len(s.lo) != 3 {
		t.Fatalf("table %v, packed %v, %d entries: want the tombstones packed beside the member", s.table() != nil, s.packed(), len(s.lo))
	}
	if tombs, _ := m.ListTombstones(100); len(tombs) != 2 {
		t.Fatalf("tombstones %+v, want a and b", tombs)
	}
}

// TestLoader_ExactRoom: a set the loader fills with spread users gets its packed room
// in one allocation, exactly (memberSet.reserve), instead of growing an eighth at a
// time; a set that a bitset holds in less room still becomes one.
func TestLoader_ExactRoom(t *testing.T) {
	m := NewMemory()
	defer m.Close()
	for i := range 100_000 {
		m.users.intern(fmt.Sprintf("u%d", i))
	}
	l := m.Load()
	spread, close := l.Set("c", "spread"), l.Set("c", "close")
	var (
		sets  []LoadSet
		users [][]byte
	)
	for i := range 200 {
		sets = append(sets, spread)
		users = append(users, fmt.Appendf(nil, "u%d", i*499))
	}
	for i := range 200 {
		sets = append(sets, close)
		users = append(users, fmt.Appendf(nil, "u%d", i))
	}
	zeros := make([]int64, len(users))
	l.Members(sets, users, zeros, zeros)
	l.Done()
	if s := &spread.rs.members; !s.packed() || s.len() != 200 || cap(s.lo) != 200 {
		t.Fatalf("spread set: packed %v, %d members in room for %d; want packed, 200 in 200", s.packed(), s.len(), cap(s.lo))
	}
	if s := &close.rs.members; !s.dense || s.len() != 200 {
		t.Fatalf("close set: bitset %v, %d members; want a bitset of 200", s.dense, s.len())
	}
}
