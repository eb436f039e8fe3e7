package store

import (
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"
)

// smallSetMax is the most members a set holds in a sorted slice before it moves them to
// a roaring bitmap: below it a slice takes 4 bytes a member and an insert moves at most
// 4 KiB; a bitmap's per-container overhead only pays once a set is large.
const smallSetMax = 1024

// memberSet holds the members of one (content, reaction): their interned user ids, and
// the expiry of those members that have one, which most do not. The count is kept as
// members come and go, so reading it is O(1). The ids are held in one of three forms:
//
//   - a sorted slice while the set is small: 4 bytes a member;
//   - a plain bitset over ids 0 to the largest member, once that takes no more room
//     than the slice (a set holding more than one id in 32 of that range, as when a
//     few hundred staff share a station): one memory access per lookup instead of a
//     binary search's several cache misses;
//   - a roaring bitmap once a sparse set outgrows smallSetMax (a bitmap stays compact
//     whether a set holds thousands of users spread over a million ids or all of them).
//
// The zero value is an empty set.
type memberSet struct {
	ids   []uint32         // while big is nil: the members sorted, or if dense a bitset (bit uid%32 of word uid/32)
	big   *roaring.Bitmap  // the members once the set outgrew smallSetMax
	exp   map[uint32]int64 // members with an expiry (unix ms); nil while there are none
	n     atomic.Uint32    // members (a set of uint32 ids cannot hold more); atomic: Memory.Counts reads it without the lock
	dense bool
}

// get returns the member's expiry (0: none) and whether uid is a member.
func (s *memberSet) get(uid uint32) (exp int64, ok bool) {
	if !s.has(uid) {
		return 0, false
	}
	return s.exp[uid], true
}

// has reports whether uid is a member.
func (s *memberSet) has(uid uint32) bool {
	switch {
	case s.big != nil:
		return s.big.Contains(uid)
	case s.dense:
		w := int(uid / 32)
		return w < len(s.ids) && s.ids[w]&(1<<(uid%32)) != 0
	}
	_, ok := slices.BinarySearch(s.ids, uid)
	return ok
}

// add inserts uid and reports whether it was not a member.
func (s *memberSet) add(uid uint32) bool {
	switch {
	case s.big != nil:
		return s.big.CheckedAdd(uid)
	case s.dense:
		return s.addDense(uid)
	}
	i, ok := slices.BinarySearch(s.ids, uid)
	if ok {
		return false
	}
	if len(s.ids) == cap(s.ids) && s.densify(uid) {
		return s.addDense(uid)
	}
	if len(s.ids) == smallSetMax {
		s.big = roaring.BitmapOf(s.ids...)
		s.ids = nil
		return s.big.CheckedAdd(uid)
	}
	if len(s.ids) == cap(s.ids) {
		// Grow by a quarter, not by append's doubling: the slack of a set that has
		// stopped growing is then at most a fifth of it rather than up to half.
		s.ids = append(make([]uint32, 0, len(s.ids)+max(4, len(s.ids)/4)), s.ids...)
	}
	s.ids = slices.Insert(s.ids, i, uid)
	return true
}

// densify turns the sorted ids into a bitset, before uid is added, if the bitset would
// take no more room than the sorted slice would with uid, and reports whether it did.
func (s *memberSet) densify(uid uint32) bool {
	top := uid
	if len(s.ids) > 0 {
		top = max(top, s.ids[len(s.ids)-1])
	}
	words := int(top/32) + 1
	if words > len(s.ids)+1 {
		return false
	}
	set := make([]uint32, words)
	for _, m := range s.ids {
		set[m/32] |= 1 << (m % 32)
	}
	s.ids, s.dense = set, true
	return true
}

// addDense adds uid to the bitset, growing it to uid if that keeps it within 8 bytes a
// member (twice the sorted slice), else moving the members to a roaring bitmap.
func (s *memberSet) addDense(uid uint32) bool {
	w := int(uid / 32)
	if w >= len(s.ids) {
		if w+1 > 2*(s.len()+1) {
			big := roaring.New()
			s.each(func(m uint32, _ int64) { big.Add(m) })
			s.ids, s.dense, s.big = nil, false, big
			return s.big.CheckedAdd(uid)
		}
		s.ids = append(s.ids, make([]uint32, w+1-len(s.ids))...)
	}
	bit := uint32(1) << (uid % 32)
	if s.ids[w]&bit != 0 {
		return false
	}
	s.ids[w] |= bit
	return true
}

// remove deletes uid and reports whether it was a member.
func (s *memberSet) remove(uid uint32) bool {
	switch {
	case s.big != nil:
		return s.big.CheckedRemove(uid)
	case s.dense:
		w := int(uid / 32)
		bit := uint32(1) << (uid % 32)
		if w >= len(s.ids) || s.ids[w]&bit == 0 {
			return false
		}
		s.ids[w] &^= bit
		return true
	}
	i, ok := slices.BinarySearch(s.ids, uid)
	if ok {
		s.ids = slices.Delete(s.ids, i, i+1)
	}
	return ok
}

// put makes uid a member with the given expiry (0: none) and returns its expiry
// before (0: none) and whether it was a member already.
func (s *memberSet) put(uid uint32, exp int64) (prev int64, was bool) {
	if s.add(uid) {
		s.n.Add(1)
	} else {
		was = true
		prev = s.exp[uid]
	}
	switch {
	case exp != 0:
		if s.exp == nil {
			s.exp = make(map[uint32]int64)
		}
		s.exp[uid] = exp
	case prev != 0:
		s.forgetExpiry(uid)
	}
	return prev, was
}

// del removes uid and returns its expiry (0: none) and whether it was a member.
func (s *memberSet) del(uid uint32) (exp int64, was bool) {
	if !s.remove(uid) {
		return 0, false
	}
	s.n.Add(^uint32(0))
	if s.exp != nil {
		exp = s.exp[uid]
		if exp != 0 {
			s.forgetExpiry(uid)
		}
	}
	return exp, true
}

func (s *memberSet) forgetExpiry(uid uint32) {
	delete(s.exp, uid)
	if len(s.exp) == 0 {
		s.exp = nil
	}
}

// len returns the number of members.
func (s *memberSet) len() int { return int(s.n.Load()) }

// each calls fn for every member in id order.
func (s *memberSet) each(fn func(uid uint32, exp int64)) {
	if s.big != nil {
		s.big.Iterate(func(uid uint32) bool {
			fn(uid, s.exp[uid])
			return true
		})
		return
	}
	if s.dense {
		for w, word := range s.ids {
			for word != 0 {
				uid := uint32(w*32 + bits.TrailingZeros32(word))
				fn(uid, s.exp[uid])
				word &= word - 1
			}
		}
		return
	}
	for _, uid := range s.ids {
		fn(uid, s.exp[uid])
	}
}

// expiring calls fn for every member that has an expiry.
func (s *memberSet) expiring(fn func(uid uint32, exp int64)) {
	for uid, exp := range s.exp {
		fn(uid, exp)
	}
}
