package store

import (
	"context"
	"errors"
	"fmt"
)

// compactAfter is how many ops Memory.Compact waits for since the last time before it
// re-lays the sets again, at least: a quiet index is not copied over and over. A large
// index waits for ops as many as an eighth of the entries it re-laid last time (5M at
// 30M memberships with 10M tombstones, whose re-laying takes ~0.35 s of CPU), so that
// a trickle of events does not have it copied every minute.
const compactAfter = 1 << 16

// compactSlice is how many sets Compact re-lays per hold of the write lock: about
// 3 ms at 30M memberships (600 a set), so the writer and queries wait no longer.
const compactSlice = 512

// Compact re-lays the arrays of every set but the roaring bitmaps at their length,
// end to end in slabs (relaySlab; issue 16). As an index grows, a set's arrays are
// reallocated an eighth larger at a time: the slack of the last growth stays, and the
// heap keeps the holes the earlier copies left in its size classes, spans that a few
// survivors keep from being returned. Laid afresh, the old arrays are all freed: at
// 30M memberships with ts the resident memory after a load, once the free pages were
// returned, went from 14.7 to 11.3 B a membership. It runs when ingest is quiet
// (cmd/arina's idleReturn), does nothing unless enough ops were applied since its
// last run (compactAfter), and holds the write lock for compactSlice sets at a time.
// It reports how many sets it re-laid.
//
// The new slabs are taken before the arrays they replace free their spans (each span
// holds arrays of many sets): after a 30M load, 509 -> 590 MiB for a moment. room
// bounds that: if the arrays to copy come to more than room bytes, Compact re-lays
// nothing and returns ErrCompactRoom (it tries again next time). room < 0: no bound.
func (m *Memory) Compact(ctx context.Context, room int64) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, ErrClosed
	}
	if m.sinceCompact < max(compactAfter, m.laidEntries/8) {
		m.mu.Unlock()
		return 0, nil
	}
	var sets []*reactionSet
	var size int64
	for _, c := range m.contents {
		for _, rs := range c.reactions {
			sets = append(sets, rs)
			if s := &rs.members; s.bigMap() == nil {
				size += int64(4*len(s.ids) + 2*len(s.lo) + 4*len(s.ts))
			}
		}
	}
	if room >= 0 && size > room {
		m.mu.Unlock()
		return 0, fmt.Errorf("%w: %d bytes to re-lay, room for %d", ErrCompactRoom, size, room)
	}
	m.sinceCompact, m.laidEntries = 0, 0
	m.mu.Unlock()
	n := 0
	for len(sets) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k := min(len(sets), compactSlice)
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return n, ErrClosed
		}
		// A set dropped from the index since it was listed is copied for nothing:
		// harmless, it is garbage.
		sk, entries := relaySlab(sets[:k])
		n += sk
		m.laidEntries += uint64(entries)
		m.mu.Unlock()
		clear(sets[:k])
		sets = sets[k:]
	}
	return n, nil
}

// ErrCompactRoom is Compact's refusal to re-lay an index whose arrays come to more than
// the room it was given.
var ErrCompactRoom = errors.New("store: no room to re-lay the index")

// relaySlab copies the packed and bitset arrays of the sets (all but the roaring
// bitmaps) into one array of each element type, laid end to end, each set's part
// capped at its length, and reports how many sets it re-laid. Copied one by one,
// the arrays would fall into the holes earlier copies left in the allocator's size
// classes and leave as many new ones (at 3M memberships 19 MB of spans held for 95 MB
// of objects after a copy one by one, 37 MB before); a slab is one large object, with
// no size-class rounding and no slack, freed whole once its last set has moved out. A
// set that grows again reallocates (its part is full), so no set writes into another's.
// It also reports the entries (packed ids and bitset words) it laid. The caller holds
// the write lock.
func relaySlab(sets []*reactionSet) (n, entries int) {
	var nids, nlo, nts int
	for _, rs := range sets {
		s := &rs.members
		if s.bigMap() == nil {
			nids, nlo, nts = nids+len(s.ids), nlo+len(s.lo), nts+len(s.ts)
		}
	}
	ids := make([]uint32, 0, nids)
	lo := make([]uint16, 0, nlo)
	ts := make([]uint32, 0, nts)
	for _, rs := range sets {
		s := &rs.members
		if s.bigMap() != nil {
			continue
		}
		ids, s.ids = carve(ids, s.ids)
		lo, s.lo = carve(lo, s.lo)
		ts, s.ts = carve(ts, s.ts)
		n++
	}
	return n, nids + nlo
}

// carve appends x to slab and returns the slab and x's copy in it, capped at its
// length; an empty x is returned as it is.
func carve[T uint16 | uint32](slab, x []T) ([]T, []T) {
	if len(x) == 0 {
		return slab, x
	}
	i := len(slab)
	slab = append(slab, x...)
	return slab, slab[i:len(slab):len(slab)]
}
