package store

import (
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
)

// smallSetMax is the most members a set holds in a sorted slice before it moves them to
// a roaring bitmap: below it a slice takes 4 bytes a member and an insert moves at most
// 4 KiB; a bitmap's per-container overhead only pays once a set is large.
const smallSetMax = 1024

// memberSet holds the members of one (content, reaction): their interned user ids, in a
// sorted slice while the set is small and in a roaring bitmap once it is not (a
// bitmap stays compact whether a set holds thousands of users spread over a million
// ids or all of them), and the expiry of those members that have one, which most do
// not. The count is kept as members come and go, so reading it is O(1).
//
// The zero value is an empty set.
type memberSet struct {
	small []uint32        // sorted; the members while big is nil
	big   *roaring.Bitmap // the members once the set outgrew smallSetMax
	n     int
	exp   map[uint32]int64 // members with an expiry (unix ms); nil while there are none
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
	if s.big != nil {
		return s.big.Contains(uid)
	}
	_, ok := slices.BinarySearch(s.small, uid)
	return ok
}

// add inserts uid and reports whether it was not a member.
func (s *memberSet) add(uid uint32) bool {
	if s.big != nil {
		return s.big.CheckedAdd(uid)
	}
	i, ok := slices.BinarySearch(s.small, uid)
	if ok {
		return false
	}
	if len(s.small) == smallSetMax {
		s.big = roaring.BitmapOf(s.small...)
		s.small = nil
		return s.big.CheckedAdd(uid)
	}
	if len(s.small) == cap(s.small) {
		// Grow by a quarter, not by append's doubling: the slack of a set that has
		// stopped growing is then at most a fifth of it rather than up to half.
		s.small = append(make([]uint32, 0, len(s.small)+max(4, len(s.small)/4)), s.small...)
	}
	s.small = slices.Insert(s.small, i, uid)
	return true
}

// remove deletes uid and reports whether it was a member.
func (s *memberSet) remove(uid uint32) bool {
	if s.big != nil {
		return s.big.CheckedRemove(uid)
	}
	i, ok := slices.BinarySearch(s.small, uid)
	if ok {
		s.small = slices.Delete(s.small, i, i+1)
	}
	return ok
}

// put makes uid a member with the given expiry (0: none) and returns its expiry
// before (0: none) and whether it was a member already.
func (s *memberSet) put(uid uint32, exp int64) (prev int64, was bool) {
	if s.add(uid) {
		s.n++
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
	s.n--
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
func (s *memberSet) len() int { return s.n }

// each calls fn for every member in id order.
func (s *memberSet) each(fn func(uid uint32, exp int64)) {
	if s.big != nil {
		s.big.Iterate(func(uid uint32) bool {
			fn(uid, s.exp[uid])
			return true
		})
		return
	}
	for _, uid := range s.small {
		fn(uid, s.exp[uid])
	}
}

// expiring calls fn for every member that has an expiry.
func (s *memberSet) expiring(fn func(uid uint32, exp int64)) {
	for uid, exp := range s.exp {
		fn(uid, exp)
	}
}
