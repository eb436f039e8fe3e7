package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
)

// TestMemory_Compact: re-laying the sets' arrays changes no answer, leaves no slack in
// the packed sets, and the index keeps applying ops exactly as one never compacted;
// Compact does nothing until compactAfter ops came since its last run. With -race,
// ops applied while it runs show it takes the write lock for what it changes.
func TestMemory_Compact(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 6))
	ops := func(n int) []Op {
		out := make([]Op, n)
		for i := range out {
			// 40 contents x 3 reactions; users spread over 0..1M and a dense few, so
			// that packed sets, bitsets and (for the first content) bitmaps all occur.
			c := rng.IntN(40)
			u := rng.IntN(1 << 20)
			if c < 5 {
				u = rng.IntN(3000)
			}
			out[i] = Op{ContentID: fmt.Sprintf("c%d", c), ReactionType: []string{"fire", "yum", "wow"}[rng.IntN(3)],
				UserID: fmt.Sprintf("u%d", u), Action: Add, TS: int64(1 + rng.IntN(1000))}
			if rng.IntN(4) == 0 {
				out[i].Action = Remove
			}
		}
		return out
	}
	m, model := NewMemory(), NewMemory()
	apply := func(batch []Op) {
		t.Helper()
		if err := m.Apply(ctx, batch, make([]Result, len(batch))); err != nil {
			t.Fatal(err)
		}
		if err := model.Apply(ctx, batch, make([]Result, len(batch))); err != nil {
			t.Fatal(err)
		}
	}
	apply(ops(compactAfter / 2))
	if n, err := m.Compact(ctx, -1); n != 0 || err != nil {
		t.Fatalf("Compact after %d ops = %d, %v; want nothing done", compactAfter/2, n, err)
	}
	apply(ops(compactAfter))
	// With too little room for the copy it re-lays nothing, and says so.
	if n, err := m.Compact(ctx, 100); n != 0 || !errors.Is(err, ErrCompactRoom) || m.sinceCompact == 0 {
		t.Fatalf("Compact with room for 100 bytes = %d, %v (ops since %d); want ErrCompactRoom and nothing done", n, err, m.sinceCompact)
	}
	before := snapshot(m)
	// Ops applied by another goroutine while it runs (to m only: the model gets the
	// same ones after).
	during := ops(4096)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < len(during); i += 64 {
			if err := m.Apply(ctx, during[i:i+64], make([]Result, 64)); err != nil {
				t.Error(err)
			}
		}
	}()
	n, err := m.Compact(ctx, -1)
	wg.Wait()
	if err != nil || n == 0 {
		t.Fatalf("Compact = %d, %v; want sets re-laid", n, err)
	}
	if err := model.Apply(ctx, during, make([]Result, len(during))); err != nil {
		t.Fatal(err)
	}
	if got, want := snapshot(m), snapshot(model); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Compact the index differs from one never compacted")
	}
	if reflect.DeepEqual(before, snapshot(model)) {
		t.Fatal("the ops applied during Compact changed nothing: the test proves little")
	}
	// No slack is left in the packed sets (a compaction with no ops coming meanwhile).
	apply(ops(compactAfter))
	if _, err := m.Compact(ctx, -1); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.contents {
		for _, rs := range c.reactions {
			s := &rs.members
			// At its length exactly: its part of a slab, which a set that grows
			// again must leave rather than write into the next set's part (the
			// comparison with the model below).
			if s.bigMap() == nil && (cap(s.lo) != len(s.lo) || cap(s.ts) != len(s.ts) || cap(s.ids) != len(s.ids)) {
				t.Fatalf("set of %d entries (%d words) has capacities %d, %d, %d after Compact, want its lengths",
					len(s.lo), len(s.ids), cap(s.lo), cap(s.ts), cap(s.ids))
			}
		}
	}
	// The entries it laid are counted, and a large index waits for ops as many as an
	// eighth of them.
	var entries uint64
	for _, c := range m.contents {
		for _, rs := range c.reactions {
			if s := &rs.members; s.bigMap() == nil {
				entries += uint64(len(s.ids) + len(s.lo))
			}
		}
	}
	if m.laidEntries != entries {
		t.Fatalf("Compact counted %d entries laid, want %d", m.laidEntries, entries)
	}
	// (By now most sets are roaring bitmaps, which it leaves: whether it ran shows in
	// its count of ops since, reset when it does.)
	m.laidEntries = 16 * compactAfter // as if the index were 16 times larger
	apply(ops(compactAfter + 1))
	if _, err := m.Compact(ctx, -1); m.sinceCompact == 0 || err != nil {
		t.Fatalf("Compact ran after %d ops with %d entries laid (%v); want it to wait for %d", compactAfter+1, m.laidEntries, err, 2*compactAfter)
	}
	more := ops(compactAfter)
	apply(more)
	if _, err := m.Compact(ctx, -1); m.sinceCompact != 0 || err != nil {
		t.Fatalf("Compact did not run after %d ops with %d entries laid (%v)", 2*compactAfter+1, 16*compactAfter, err)
	}
	if got, want := snapshot(m), snapshot(model); !reflect.DeepEqual(got, want) {
		t.Fatalf("after more ops the compacted index differs from one never compacted")
	}
	m.Close()
	if _, err := m.Compact(ctx, -1); err != ErrClosed {
		t.Fatalf("Compact after Close: %v, want ErrClosed", err)
	}
}
