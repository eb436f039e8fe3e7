package store

import (
	"cmp"
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/RoaringBitmap/roaring/v2"
)

// smallSetMax is the most members a set holds in its packed form before it moves them
// to a roaring bitmap: below it a member takes about 2 bytes and an insert moves at
// most 2 KiB; a bitmap's per-container overhead only pays once a set is large. It also
// keeps the positions in lo within the 16 bits the bucket words give them.
const smallSetMax = 1024

// memberSet holds the members of one (content, reaction): their interned user ids, and
// the expiry of those members that have one, which most do not. The count is kept as
// members come and go, so reading it is O(1). The ids are held in one of three forms:
//
//   - packed while the set is small: the ids split by their high 16 bits into buckets,
//     a 4-byte word per bucket and 2 bytes per member, the low 16 bits (with a million
//     users, 200 members take 464 bytes where a sorted []uint32 took 800). The packed
//     entries hold the set's tombstones too (users no longer members whose TS the set
//     remembers), flagged beside their TS (setstamps.go): a tombstone costs what a
//     member with a TS does, 6 bytes, and is found by the same search;
//   - a plain bitset over ids 0 to the largest member, once that takes no more room
//     than the packed form (a set holding more than one id in 16 of that range, as
//     when a few hundred staff share a station): one memory access per lookup instead
//     of two binary searches;
//   - a roaring bitmap once a sparse set outgrows smallSetMax (a bitmap stays compact
//     whether a set holds thousands of users spread over a million ids or all of them).
//
// A set that removes leave in a form four times the room it needs or more moves back
// (shrink): a bitmap down to a quarter of smallSetMax, a bitset down to a quarter of
// the packed form's size, and the packed form's slices to fit.
//
// The zero value is an empty set.
type memberSet struct {
	// Packed (not dense, big nil): a word per bucket in order, high<<16 | the index in
	// lo of the bucket's first entry. Dense: the bitset (bit uid%32 of word uid/32).
	ids []uint32
	// lo, packed: the low 16 bits of the entries (members and tombstones), bucket after
	// bucket, each sorted.
	lo []uint16
	// ts, packed only: beside lo, each entry's remembered TS (see setstamps.go) as its
	// delta from tsBase plus one, and tombBit if the entry is a tombstone; 0: a member
	// whose TS is not here (in tab, or none). nil until an entry gets a TS.
	ts     []uint32
	more   *setMore // what few sets need; nil while none does
	tsBase int64
	n      atomic.Uint32 // members (a set of uint32 ids cannot hold more); atomic: Memory.Counts reads it without the lock
	dense  bool
}

// setMore holds the parts of a memberSet that most sets do not need, so that those
// cost a pointer, not three (a set's header is 96 bytes, issue 16).
type setMore struct {
	big *roaring.Bitmap  // the members once the set outgrew smallSetMax
	exp map[uint32]int64 // members with an expiry (unix ms); nil while there are none
	tab *stampTable      // the other remembered TS (setstamps.go); nil while none
}

// bigMap returns the roaring bitmap of the members, nil unless the set is in that form.
func (s *memberSet) bigMap() *roaring.Bitmap {
	if s.more == nil {
		return nil
	}
	return s.more.big
}

// expMap returns the members' expiries, nil while none has one.
func (s *memberSet) expMap() map[uint32]int64 {
	if s.more == nil {
		return nil
	}
	return s.more.exp
}

// table returns the table of the TS not beside the packed ids, nil while there are none.
func (s *memberSet) table() *stampTable {
	if s.more == nil {
		return nil
	}
	return s.more.tab
}

// moreOf returns s.more, made if need be.
func (s *memberSet) moreOf() *setMore {
	if s.more == nil {
		s.more = &setMore{}
	}
	return s.more
}

// tidy drops s.more once it holds nothing.
func (s *memberSet) tidy() {
	if m := s.more; m != nil && m.big == nil && m.exp == nil && m.tab == nil {
		s.more = nil
	}
}

// get returns the member's expiry (0: none) and whether uid is a member.
func (s *memberSet) get(uid uint32) (exp int64, ok bool) {
	if !s.has(uid) {
		return 0, false
	}
	return s.expMap()[uid], true
}

// has reports whether uid is a member.
func (s *memberSet) has(uid uint32) bool {
	switch {
	case s.bigMap() != nil:
		return s.bigMap().Contains(uid)
	case s.dense:
		w := int(uid / 32)
		return w < len(s.ids) && s.ids[w]&(1<<(uid%32)) != 0
	}
	_, i, ok := s.find(uid)
	return ok && !s.tomb(i)
}

// find locates uid's entry in the packed form: the index of its bucket in ids and its
// place in lo, where they are or would go, and whether uid has an entry (a member or a
// tombstone: see tomb).
func (s *memberSet) find(uid uint32) (b, i int, ok bool) {
	hi := uid >> 16
	if len(s.ids) <= 16 { // a million users make 16 buckets: a scan beats a search
		for b < len(s.ids) && s.ids[b]>>16 < hi {
			b++
		}
		ok = b < len(s.ids) && s.ids[b]>>16 == hi
	} else {
		b, ok = slices.BinarySearchFunc(s.ids, hi, func(w, hi uint32) int { return cmp.Compare(w>>16, hi) })
	}
	if !ok {
		if b < len(s.ids) {
			return b, int(s.ids[b] & 0xffff), false
		}
		return b, len(s.lo), false
	}
	start, end := s.span(b)
	j, ok := slices.BinarySearch(s.lo[start:end], uint16(uid))
	return b, start + j, ok
}

// span returns the part of lo that bucket b holds.
func (s *memberSet) span(b int) (start, end int) {
	start, end = int(s.ids[b]&0xffff), len(s.lo)
	if b+1 < len(s.ids) {
		end = int(s.ids[b+1] & 0xffff)
	}
	return start, end
}

// add inserts uid and reports whether it was not a member, and, if the set is packed
// after it, uid's place in lo (else -1).
func (s *memberSet) add(uid uint32) (at int, added bool) {
	switch {
	case s.bigMap() != nil:
		return -1, s.bigMap().CheckedAdd(uid)
	case s.dense:
		return -1, s.addDense(uid)
	}
	b, i, ok := s.find(uid)
	if ok {
		if s.tomb(i) { // a member again, its TS where it is
			s.ts[i] &^= tombBit
			return i, true
		}
		return i, false
	}
	if len(s.lo) == smallSetMax && s.spillTombstones() {
		b, i, _ = s.find(uid)
	}
	if len(s.lo) == cap(s.lo) && s.densify(uid) {
		return -1, s.addDense(uid)
	}
	if len(s.lo) == smallSetMax {
		s.toBitmap()
		return -1, s.bigMap().CheckedAdd(uid)
	}
	s.insertAt(b, i, uid)
	return i, true
}

// reserve makes room in the packed form for n more members, top the largest of them,
// in one allocation and no slack, as the loader puts a set's members in (engine.go's setRun):
// growing an eighth at a time took some thirty copies to reach 200 members. It does
// nothing if they would not stay packed, or if a bitset would take less room.
func (s *memberSet) reserve(n int, top uint32) {
	if !s.packed() || len(s.lo)+n > smallSetMax || cap(s.lo)-len(s.lo) >= n {
		return
	}
	if words := int(top/32) + 1; 4*words <= 2*(s.len()+n)+4*(len(s.ids)+1) {
		return // densify's choice, made as the set fills
	}
	s.lo = append(make([]uint16, 0, len(s.lo)+n), s.lo...) // exact: a loaded set is done growing, as a rule
	if s.ts != nil {
		s.ts = fitTo(s.ts, cap(s.lo))
	}
}

// insertAt inserts an entry for uid, with no TS, at bucket b and place i in the packed
// form, where find says it goes.
func (s *memberSet) insertAt(b, i int, uid uint32) {
	if len(s.lo) == cap(s.lo) {
		s.lo = withSlack(s.lo, 0)
	}
	s.lo = slices.Insert(s.lo, i, uint16(uid))
	if s.ts != nil {
		if len(s.ts) == cap(s.ts) {
			s.ts = fitTo(s.ts, cap(s.lo))
		}
		s.ts = slices.Insert(s.ts, i, 0)
	}
	if b == len(s.ids) || s.ids[b]>>16 != uid>>16 {
		s.ids = slices.Insert(s.ids, b, uid>>16<<16|uint32(i))
	}
	for b++; b < len(s.ids); b++ { // the later buckets start one further
		s.ids[b]++
	}
}

// deleteAt deletes the entry at bucket b and place i of the packed form.
func (s *memberSet) deleteAt(b, i int) {
	if s.ts != nil {
		s.ts = slices.Delete(s.ts, i, i+1)
	}
	if start, end := s.span(b); end-start == 1 {
		s.ids = slices.Delete(s.ids, b, b+1) // its last entry: the bucket goes
	} else {
		b++
	}
	s.lo = slices.Delete(s.lo, i, i+1)
	for ; b < len(s.ids); b++ { // the later buckets start one earlier
		s.ids[b]--
	}
}

// densify turns the packed ids into a bitset, before uid is added, if the bitset would
// take no more room than the packed form would with uid, and reports whether it did.
func (s *memberSet) densify(uid uint32) bool {
	top := uid
	if last := len(s.ids) - 1; last >= 0 {
		top = max(top, s.ids[last]>>16<<16|uint32(s.lo[len(s.lo)-1]))
	}
	words := int(top/32) + 1
	if 4*words > 2*(s.len()+1)+4*(len(s.ids)+1) { // the members' room: tombstones go to tab
		return false
	}
	set := make([]uint32, words)
	s.each(func(m uint32, _ int64) { set[m/32] |= 1 << (m % 32) })
	s.spillStamps()
	s.ids, s.lo, s.dense = set, nil, true
	return true
}

// addDense adds uid to the bitset, growing it to uid if that keeps it within 8 bytes a
// member, else moving the members to a roaring bitmap.
func (s *memberSet) addDense(uid uint32) bool {
	w := int(uid / 32)
	if w >= len(s.ids) {
		if w+1 > 2*(s.len()+1) {
			s.toBitmap()
			return s.bigMap().CheckedAdd(uid)
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
	case s.bigMap() != nil:
		return s.bigMap().CheckedRemove(uid)
	case s.dense:
		w := int(uid / 32)
		bit := uint32(1) << (uid % 32)
		if w >= len(s.ids) || s.ids[w]&bit == 0 {
			return false
		}
		s.ids[w] &^= bit
		return true
	}
	b, i, ok := s.find(uid)
	if !ok || s.tomb(i) {
		return false
	}
	if s.ts != nil && s.ts[i] != 0 { // its TS here: the entry stays as the tombstone
		s.ts[i] |= tombBit
		return true
	}
	s.deleteAt(b, i)
	return true
}

// put makes uid a member with the given expiry (0: none) and returns its expiry
// before (0: none) and whether it was a member already.
func (s *memberSet) put(uid uint32, exp int64) (prev int64, was bool) {
	prev, was, _ = s.putStamped(-1, uid, exp, 0)
	return prev, was
}

// putStamped is put that also makes ts uid's remembered TS, unless ts is 0, and
// returns uid's remembered TS before. at is uid's place in lo if lookup found it a
// member of the packed form, else -1.
func (s *memberSet) putStamped(at int, uid uint32, exp, ts int64) (prev int64, was bool, prevTS int64) {
	added := false
	if at < 0 {
		at, added = s.add(uid)
	}
	if added {
		s.n.Add(1)
		if s.ts != nil || s.table() != nil { // a tombstone's TS, beside the id or in tab
			prevTS = s.stampAt(at, uid)
		}
	} else {
		was = true
		prev = s.expMap()[uid]
		if s.ts != nil || s.table() != nil {
			prevTS = s.stampAt(at, uid)
		}
	}
	if ts != 0 {
		if at >= 0 {
			s.setStampAt(at, uid, ts)
		} else {
			s.tabSet(uid, ts)
		}
	}
	switch {
	case exp != 0:
		m := s.moreOf()
		if m.exp == nil {
			m.exp = make(map[uint32]int64)
		}
		m.exp[uid] = exp
	case prev != 0:
		s.forgetExpiry(uid)
	}
	return prev, was, prevTS
}

// del removes uid and returns its expiry (0: none) and whether it was a member.
func (s *memberSet) del(uid uint32) (exp int64, was bool) {
	if !s.remove(uid) {
		return 0, false
	}
	s.n.Add(^uint32(0))
	if s.expMap() != nil {
		exp = s.expMap()[uid]
		if exp != 0 {
			s.forgetExpiry(uid)
		}
	}
	s.shrink()
	return exp, true
}

// shrink gives memory back once removes have left the set in a form four times or more
// the room it needs, so that a set that grew for one shift does not keep that room
// for ever; the factor keeps a set going up and down around one size from moving back
// and forth between forms.
func (s *memberSet) shrink() {
	n := s.len()
	switch {
	case s.bigMap() != nil:
		if n <= smallSetMax/4 {
			s.repack()
		}
	case s.dense:
		// The packed form would take 2 bytes a member and 4 a bucket, one bucket at
		// most for every 2048 words of the bitset.
		if len(s.ids) < 2*n+4*(len(s.ids)/2048+1) {
			return
		}
		if n <= smallSetMax {
			s.repack()
			return
		}
		s.toBitmap()
	default:
		if cap(s.lo) >= 32 && len(s.lo) <= cap(s.lo)/4 {
			s.lo = withSlack(s.lo, 0)
			if s.ts != nil {
				s.ts = fitTo(s.ts, cap(s.lo))
			}
		}
		if cap(s.ids) >= 16 && len(s.ids) <= cap(s.ids)/4 {
			s.ids = withSlack(s.ids, 0)
		}
	}
}

// toBitmap moves the members, in the packed form or a bitset, to a roaring bitmap.
func (s *memberSet) toBitmap() {
	big := roaring.New()
	s.each(func(m uint32, _ int64) { big.Add(m) })
	s.spillStamps()
	s.ids, s.lo, s.dense = nil, nil, false
	s.moreOf().big = big
}

// fitTo returns a copy of x with capacity c (at least len(x)).
func fitTo(x []uint32, c int) []uint32 {
	return append(make([]uint32, 0, max(c, len(x))), x...)
}

// withSlack returns a copy of x with room for an eighth more than len(x)+extra
// (at least 4): grown by an eighth rather than append's doubling, the slack of a set
// that has stopped growing is at most a ninth of it rather than up to half (grown by
// a quarter, it was 11% of the packed entries at 3M memberships; 5% now, issue 16).
// The copy at each growth is small beside the move of the later entries at each insert.
func withSlack[T uint16 | uint32 | uint64](x []T, extra int) []T {
	n := len(x) + extra
	return append(make([]T, 0, n+max(4, n/8)), x...)
}

// repack moves the members of a bitset or roaring bitmap, at most smallSetMax of them,
// to the packed form.
func (s *memberSet) repack() {
	var ids []uint32
	var lo []uint16
	if n := s.len(); n > 0 {
		lo = withSlack(lo, n)
	}
	s.each(func(uid uint32, _ int64) {
		if len(ids) == 0 || ids[len(ids)-1]>>16 != uid>>16 {
			ids = append(ids, uid>>16<<16|uint32(len(lo)))
		}
		lo = append(lo, uint16(uid))
	})
	s.ids, s.lo, s.dense = ids, lo, false
	if s.more != nil {
		s.more.big = nil
		s.tidy()
	}
	s.gatherStamps()
}

func (s *memberSet) forgetExpiry(uid uint32) {
	m := s.more
	delete(m.exp, uid)
	if len(m.exp) == 0 {
		m.exp = nil
		s.tidy()
	}
}

// len returns the number of members.
func (s *memberSet) len() int { return int(s.n.Load()) }

// each calls fn for every member in id order.
func (s *memberSet) each(fn func(uid uint32, exp int64)) {
	if s.bigMap() != nil {
		s.bigMap().Iterate(func(uid uint32) bool {
			fn(uid, s.expMap()[uid])
			return true
		})
		return
	}
	if s.dense {
		for w, word := range s.ids {
			for word != 0 {
				uid := uint32(w*32 + bits.TrailingZeros32(word))
				fn(uid, s.expMap()[uid])
				word &= word - 1
			}
		}
		return
	}
	for b, w := range s.ids {
		start, end := s.span(b)
		for i, l := range s.lo[start:end] {
			if s.ts != nil && s.ts[start+i]&tombBit != 0 {
				continue
			}
			uid := w>>16<<16 | uint32(l)
			fn(uid, s.expMap()[uid])
		}
	}
}

// expiring calls fn for every member that has an expiry.
func (s *memberSet) expiring(fn func(uid uint32, exp int64)) {
	for uid, exp := range s.expMap() {
		fn(uid, exp)
	}
}
