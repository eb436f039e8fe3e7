package store

import (
	"context"
	"slices"
)

// compactAfter is how many ops Memory.Compact waits for since the last time before it
// re-lays the sets again: a quiet index is not copied over and over.
const compactAfter = 1 << 16

// compactSlice is how many sets Compact re-lays per hold of the write lock: about
// 3 ms at 30M memberships (600 a set), so the writer and queries wait no longer.
const compactSlice = 512

// Compact re-lays the arrays of every set but the roaring bitmaps at their length, as
// a restart's loader lays them (issue 16). As an index grows, a set's arrays are
// reallocated an eighth larger at a time: the slack of the last growth stays, and the
// heap keeps the holes the earlier copies left in its size classes, spans that a few
// survivors keep from being returned. Copied afresh, the arrays fill those holes and
// the rest is freed: at 30M memberships with ts the resident memory after a load,
// once the free pages were returned, went from 14.7 to 13.1 B a membership. It runs
// when ingest is quiet (cmd/arina's idleReturn), does nothing unless compactAfter ops
// were applied since its last run, and holds the write lock for compactSlice sets at
// a time. It reports how many sets it re-laid.
func (m *Memory) Compact(ctx context.Context) (int, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, ErrClosed
	}
	if m.sinceCompact < compactAfter {
		m.mu.Unlock()
		return 0, nil
	}
	m.sinceCompact = 0
	var sets []*reactionSet
	for _, c := range m.contents {
		sets = append(sets, c.reactions...)
	}
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
		for _, rs := range sets[:k] {
			if rs.members.relay() {
				n++
			}
		}
		m.mu.Unlock()
		clear(sets[:k])
		sets = sets[k:]
	}
	return n, nil
}

// relay copies the set's packed or bitset arrays afresh at their length (append's
// rounding to the allocator's size class aside) and reports whether it did. The
// caller holds the write lock.
func (s *memberSet) relay() bool {
	if s.bigMap() != nil {
		return false
	}
	s.ids = cloneNonEmpty(s.ids)
	s.lo = cloneNonEmpty(s.lo)
	s.ts = cloneNonEmpty(s.ts)
	return true
}

// cloneNonEmpty returns a copy of x, or x if it is empty.
func cloneNonEmpty[T uint16 | uint32](x []T) []T {
	if len(x) == 0 {
		return x
	}
	return slices.Clone(x)
}
