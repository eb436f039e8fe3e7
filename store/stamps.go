package store

import (
	"cmp"
	"math"
	"slices"
)

// stampTable holds remembered TS (see Op.TS) of the users of one set, exactly to the
// millisecond, in about 8 bytes each where a Go map[uint32]int64 took about 30 (issue
// 16): the TS, of members and tombstones, that memberSet does not keep beside its
// packed ids (setstamps.go).
//
// A TS is kept as a 32-bit delta from the table's base: 2^32 ms, 49.7 days. The base
// starts stampBack before the first TS, so that events up to 37 days older and 12
// days newer fit; a TS newer than that moves the base forward (rebase) and the TS that
// then fall before it, and any TS before the base, are kept whole in far, a map that
// stays nil while every TS fits, as with live clocks.
//
// While the table is small the entries are a slice sorted by user, uid<<32 | delta:
// 8 bytes an entry plus at most a ninth of slack (withSlack), a binary search to find
// one and a move of the later ones to insert or delete it. Past stampSmallMax entries
// they move to a map[uint32]uint32 (about 15 bytes an entry), so that an insert into a
// large set stays O(1); back below stampSmallMax/4 they move back.
type stampTable struct {
	base  int64
	small []uint64          // uid<<32 | delta, sorted; nil once large is set
	large map[uint32]uint32 // uid -> delta, past stampSmallMax entries
	far   map[uint32]int64  // whole TS of the users whose TS does not fit the base
}

const (
	stampSmallMax = 2048
	// stampBack is how far before the first TS the base starts: 3 * 2^30 ms, 37 days,
	// leaves 2^30 ms, 12 days, of newer TS before a rebase.
	stampBack = 3 << 30
	stampSpan = math.MaxUint32 // the largest delta
)

// fits reports whether ts can be kept as a delta from the base.
func (t *stampTable) fits(ts int64) bool {
	return ts >= t.base && uint64(ts-t.base) <= stampSpan
}

// len returns the number of users with a TS.
func (t *stampTable) len() int {
	if t == nil {
		return 0
	}
	return len(t.small) + len(t.large) + len(t.far)
}

// find returns uid's place in small and whether it is there.
func (t *stampTable) find(uid uint32) (int, bool) {
	return slices.BinarySearchFunc(t.small, uid, func(e uint64, uid uint32) int { return cmp.Compare(uint32(e>>32), uid) })
}

// get returns uid's TS, 0 if it has none. A nil table has none.
func (t *stampTable) get(uid uint32) int64 {
	if t == nil {
		return 0
	}
	if t.far != nil {
		if ts, ok := t.far[uid]; ok {
			return ts
		}
	}
	if t.large != nil {
		if d, ok := t.large[uid]; ok {
			return t.base + int64(d)
		}
		return 0
	}
	if i, ok := t.find(uid); ok {
		return t.base + int64(uint32(t.small[i]))
	}
	return 0
}

// set makes ts (not 0) uid's TS.
func (t *stampTable) set(uid uint32, ts int64) {
	if t.len() == 0 {
		t.base = ts - stampBack
	}
	if !t.fits(ts) && ts > t.base {
		t.rebase(ts)
	}
	if !t.fits(ts) { // older than the base
		t.delNear(uid)
		if t.far == nil {
			t.far = make(map[uint32]int64)
		}
		t.far[uid] = ts
		return
	}
	if t.far != nil {
		t.delFar(uid)
	}
	d := uint32(ts - t.base)
	if t.large != nil {
		t.large[uid] = d
		return
	}
	e := uint64(uid)<<32 | uint64(d)
	i, ok := t.find(uid)
	if ok {
		t.small[i] = e
		return
	}
	if len(t.small) == stampSmallMax {
		t.toLarge()
		t.large[uid] = d
		return
	}
	if len(t.small) == cap(t.small) {
		t.small = withSlack(t.small, 1)
	}
	t.small = slices.Insert(t.small, i, e)
}

// rebase moves the base forward so that ts, newer than the base allows, fits with room
// for newer ones still; the TS that then fall before the base move to far.
func (t *stampTable) rebase(ts int64) {
	base := ts - stampBack
	shift := base - t.base
	move := func(uid uint32, d uint32) (uint32, bool) {
		if int64(d) < shift {
			if t.far == nil {
				t.far = make(map[uint32]int64)
			}
			t.far[uid] = t.base + int64(d)
			return 0, false
		}
		return uint32(int64(d) - shift), true
	}
	if t.large != nil {
		for uid, d := range t.large {
			if nd, ok := move(uid, d); ok {
				t.large[uid] = nd
			} else {
				delete(t.large, uid)
			}
		}
	} else {
		kept := t.small[:0]
		for _, e := range t.small {
			if nd, ok := move(uint32(e>>32), uint32(e)); ok {
				kept = append(kept, e>>32<<32|uint64(nd))
			}
		}
		t.small = kept
	}
	t.base = base
	// TS in far that fit the new base could move back; they stay: far holds few.
}

// del forgets uid's TS.
func (t *stampTable) del(uid uint32) {
	if t.far != nil && t.delFar(uid) {
		return
	}
	t.delNear(uid)
}

func (t *stampTable) delFar(uid uint32) bool {
	if _, ok := t.far[uid]; !ok {
		return false
	}
	delete(t.far, uid)
	if len(t.far) == 0 {
		t.far = nil
	}
	return true
}

// delNear forgets uid's delta, if it has one.
func (t *stampTable) delNear(uid uint32) {
	if t.large != nil {
		delete(t.large, uid)
		if len(t.large) <= stampSmallMax/4 {
			t.toSmall()
		}
		return
	}
	i, ok := t.find(uid)
	if !ok {
		return
	}
	t.small = slices.Delete(t.small, i, i+1)
	if cap(t.small) >= 32 && len(t.small) <= cap(t.small)/4 {
		t.small = withSlack(t.small, 0)
	}
}

func (t *stampTable) toLarge() {
	t.large = make(map[uint32]uint32, len(t.small)+1)
	for _, e := range t.small {
		t.large[uint32(e>>32)] = uint32(e)
	}
	t.small = nil
}

func (t *stampTable) toSmall() {
	small := make([]uint64, 0, len(t.large)+max(4, len(t.large)/4))
	for uid, d := range t.large {
		small = append(small, uint64(uid)<<32|uint64(d))
	}
	slices.Sort(small)
	t.small, t.large = small, nil
}

// each calls fn for every user with a TS, in no particular order.
func (t *stampTable) each(fn func(uid uint32, ts int64)) {
	if t == nil {
		return
	}
	for _, e := range t.small {
		fn(uint32(e>>32), t.base+int64(uint32(e)))
	}
	for uid, d := range t.large {
		fn(uid, t.base+int64(d))
	}
	for uid, ts := range t.far {
		fn(uid, ts)
	}
}

// toMap returns the table as user -> TS.
func (t *stampTable) toMap() map[uint32]int64 {
	out := make(map[uint32]int64, t.len())
	t.each(func(uid uint32, ts int64) { out[uid] = ts })
	return out
}
