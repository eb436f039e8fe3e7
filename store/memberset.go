package store

import "github.com/RoaringBitmap/roaring/v2"

// memberSet holds the members of one (content, reaction): their interned user ids in a
// roaring bitmap, which stays small whether a set holds a dozen users spread over a
// million ids or all of them, and the expiry of those members that have one, which
// most do not. The count is kept as members come and go, so reading it is O(1).
//
// The zero value is an empty set.
type memberSet struct {
	ids roaring.Bitmap
	n   int
	exp map[uint32]int64 // members with an expiry (unix ms); nil while there are none
}

// get returns the member's expiry (0: none) and whether uid is a member.
func (s *memberSet) get(uid uint32) (exp int64, ok bool) {
	if !s.ids.Contains(uid) {
		return 0, false
	}
	return s.exp[uid], true
}

// has reports whether uid is a member.
func (s *memberSet) has(uid uint32) bool { return s.ids.Contains(uid) }

// put makes uid a member with the given expiry (0: none) and returns its expiry
// before (0: none) and whether it was a member already.
func (s *memberSet) put(uid uint32, exp int64) (prev int64, was bool) {
	if s.ids.CheckedAdd(uid) {
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
	if !s.ids.CheckedRemove(uid) {
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
	s.ids.Iterate(func(uid uint32) bool {
		fn(uid, s.exp[uid])
		return true
	})
}

// expiring calls fn for every member that has an expiry.
func (s *memberSet) expiring(fn func(uid uint32, exp int64)) {
	for uid, exp := range s.exp {
		fn(uid, exp)
	}
}
