package store

import "slices"

// The remembered TS of a set's users (see Op.TS), kept by its memberSet (issue 16).
//
// While the set is packed, an entry's TS sits beside its id: ts[i] beside lo[i], 4
// bytes, its delta from tsBase plus one in the low 31 bits, so that the search that
// finds an entry finds its TS too. The entries are the members and the tombstones
// (users no longer members whose TS is remembered): a tombstone has tombBit set and
// always a TS beside it. So a tombstone costs what a member with a TS does (6 bytes)
// instead of an entry of the set's table (8 bytes and the table's own). The base
// starts packedBack before the first TS and moves forward (rebaseStamps) when a newer
// one does not fit, as in stampTable.
//
// Every other TS is in tab, a stampTable: the TS of members and tombstones while the
// set is a bitset or a bitmap (members' TS move beside the ids when it is packed
// again), any TS too old for the base, and the tombstones a full packed form spills
// (spillTombstones). A user's TS is in one place only: ts[i] when its low 31 bits are
// not 0, else tab.

const (
	// tombBit flags a packed entry that is a tombstone, not a member.
	tombBit = 1 << 31
	// packedSpan bounds a packed delta: delta+1 fits the 31 bits below tombBit (24.8
	// days).
	packedSpan = tombBit - 1
	// packedBack is how far before the first TS the base starts: 3 * 2^29 ms, 18.6
	// days, leaves 2^29 ms, 6.2 days, of newer TS before a rebase.
	packedBack = 3 << 29
)

// tomb reports whether the packed entry at lo[i] is a tombstone.
func (s *memberSet) tomb(i int) bool { return s.ts != nil && s.ts[i]&tombBit != 0 }

// tsAt returns the TS beside the packed entry at lo[i], 0 if none is there.
func (s *memberSet) tsAt(i int) int64 {
	if s.ts == nil {
		return 0
	}
	if d := s.ts[i] &^ tombBit; d != 0 {
		return s.tsBase + int64(d) - 1
	}
	return 0
}

// eachPacked calls fn with the place in lo and the id of every entry of the packed
// form (members and tombstones), in order.
func (s *memberSet) eachPacked(fn func(i int, uid uint32)) {
	for b, w := range s.ids {
		start, end := s.span(b)
		for i := start; i < end; i++ {
			fn(i, w>>16<<16|uint32(s.lo[i]))
		}
	}
}

// packed reports whether the set is in the packed form.
func (s *memberSet) packed() bool { return s.bigMap() == nil && !s.dense }

// stamp returns uid's remembered TS, 0 if none.
func (s *memberSet) stamp(uid uint32) int64 {
	_, _, ts, _ := s.lookup(uid)
	return ts
}

// lookup returns, in one search, uid's expiry (0: none), whether it is a member, its
// remembered TS (0: none), and, if it is a member of the packed form, its place in lo
// (else -1) for putStamped.
func (s *memberSet) lookup(uid uint32) (exp int64, member bool, ts int64, at int) {
	if !s.packed() {
		exp, member = s.get(uid)
		return exp, member, s.table().get(uid), -1
	}
	_, i, ok := s.find(uid)
	if !ok {
		return 0, false, s.table().get(uid), -1
	}
	if s.tomb(i) {
		return 0, false, s.tsAt(i), -1
	}
	if s.expMap() != nil {
		exp = s.expMap()[uid]
	}
	if ts = s.tsAt(i); ts != 0 {
		return exp, true, ts, i
	}
	return exp, true, s.table().get(uid), i
}

// stampAt returns the remembered TS of uid, the entry at lo[at] of the packed form, or
// of any user if at is -1.
func (s *memberSet) stampAt(at int, uid uint32) int64 {
	if at >= 0 {
		if ts := s.tsAt(at); ts != 0 {
			return ts
		}
	}
	return s.table().get(uid)
}

// setStamp makes ts (not 0) uid's remembered TS, member or not.
func (s *memberSet) setStamp(uid uint32, ts int64) {
	if s.packed() {
		b, i, ok := s.find(uid)
		if ok {
			s.setStampAt(i, uid, ts)
			return
		}
		if len(s.lo) < smallSetMax {
			// A tombstone: an entry beside the members, unless its TS does not fit.
			s.insertAt(b, i, uid)
			if s.ts == nil {
				s.ts = make([]uint32, len(s.lo), cap(s.lo))
				s.tsBase = ts - packedBack
			}
			s.ts[i] = tombBit | 1 // a placeholder that compact keeps
			s.setStampAt(i, uid, ts)
			return
		}
	}
	s.tabSet(uid, ts)
}

// setStampAt makes ts (not 0) the TS of uid, the entry at lo[i]. Entries may move
// (a rebase or a TS that does not fit drops tombstones from the packed form).
func (s *memberSet) setStampAt(i int, uid uint32, ts int64) {
	if s.ts == nil {
		s.ts = make([]uint32, len(s.lo), cap(s.lo))
		s.tsBase = ts - packedBack
	}
	if ts-s.tsBase >= packedSpan && s.rebaseStamps(ts, uid) {
		_, i, _ = s.find(uid)
	}
	if d := ts - s.tsBase; d >= 0 && d < packedSpan {
		s.ts[i] = s.ts[i]&tombBit | uint32(d+1)
		if s.table() != nil {
			s.tabDel(uid)
		}
		return
	}
	// Older than the base: in tab.
	if s.ts[i]&tombBit != 0 {
		s.ts[i] = tombBit // a tombstone with no TS beside it: its entry goes
		s.compact()
	} else {
		s.ts[i] = 0
	}
	s.tabSet(uid, ts)
}

// rebaseStamps moves tsBase forward so that ts fits with room for newer TS still;
// the TS that then fall before it move to tab, and the tombstones among them leave the
// packed form. The entry of keep is left as it is, for the caller to set. It reports
// whether entries left (and so moved).
func (s *memberSet) rebaseStamps(ts int64, keep uint32) bool {
	base := ts - packedBack
	shift := base - s.tsBase
	dropped := false
	s.eachPacked(func(i int, uid uint32) {
		v := s.ts[i]
		flag, d := v&tombBit, int64(v&^tombBit)
		switch {
		case d == 0 || uid == keep:
		case d-1 < shift:
			s.tabSet(uid, s.tsBase+d-1)
			s.ts[i] = flag
			dropped = dropped || flag != 0
		default:
			s.ts[i] = flag | uint32(d-shift)
		}
	})
	s.tsBase = base
	if dropped {
		s.compact()
	}
	return dropped
}

// compact deletes the packed entries that are tombstones without a TS beside them
// (ts[i] == tombBit), marked so by the caller once their TS is in tab.
func (s *memberSet) compact() {
	ids := make([]uint32, 0, cap(s.ids))
	j := 0
	for b, w := range s.ids {
		start, end := s.span(b)
		first := j
		for i := start; i < end; i++ {
			if s.ts[i] == tombBit {
				continue
			}
			s.lo[j], s.ts[j] = s.lo[i], s.ts[i]
			j++
		}
		if j > first {
			ids = append(ids, w>>16<<16|uint32(first))
		}
	}
	s.ids, s.lo, s.ts = ids, s.lo[:j], s.ts[:j]
}

// spillTombstones moves the tombstones of the packed form to tab, so that a full
// packed form has room for members, and reports whether there were any.
func (s *memberSet) spillTombstones() bool {
	if s.ts == nil {
		return false
	}
	if !slices.ContainsFunc(s.ts, func(v uint32) bool { return v&tombBit != 0 }) {
		return false
	}
	s.eachPacked(func(i int, uid uint32) {
		if s.ts[i]&tombBit != 0 {
			s.tabSet(uid, s.tsAt(i))
			s.ts[i] = tombBit
		}
	})
	s.compact()
	return true
}

// forgetStamp forgets uid's remembered TS: a tombstone goes.
func (s *memberSet) forgetStamp(uid uint32) {
	if s.ts != nil {
		if b, i, ok := s.find(uid); ok && s.ts[i] != 0 {
			if s.tomb(i) {
				s.deleteAt(b, i)
				s.shrink()
			} else {
				s.ts[i] = 0
			}
			return
		}
	}
	s.tabDel(uid)
}

func (s *memberSet) tabSet(uid uint32, ts int64) {
	m := s.moreOf()
	if m.tab == nil {
		m.tab = &stampTable{}
	}
	m.tab.set(uid, ts)
}

func (s *memberSet) tabDel(uid uint32) {
	t := s.table()
	if t == nil {
		return
	}
	t.del(uid)
	if t.len() == 0 {
		s.more.tab = nil
		s.tidy()
	}
}

// spillStamps moves the TS beside the packed entries to tab, before the packed form
// goes (with its tombstones: the caller has taken the members).
func (s *memberSet) spillStamps() {
	if s.ts == nil {
		return
	}
	s.eachPacked(func(i int, uid uint32) {
		if ts := s.tsAt(i); ts != 0 {
			s.tabSet(uid, ts)
		}
	})
	s.ts = nil
}

// gatherStamps moves the TS of the members from tab to beside them, once the set is
// packed again.
func (s *memberSet) gatherStamps() {
	if s.table() == nil {
		return
	}
	s.eachPacked(func(i int, uid uint32) {
		if s.table() == nil {
			return
		}
		if ts := s.table().get(uid); ts != 0 {
			s.setStampAt(i, uid, ts)
		}
	})
}

// eachStamp calls fn for every user with a remembered TS, in no particular order.
func (s *memberSet) eachStamp(fn func(uid uint32, ts int64)) {
	if s.ts != nil {
		s.eachPacked(func(i int, uid uint32) {
			if ts := s.tsAt(i); ts != 0 {
				fn(uid, ts)
			}
		})
	}
	s.table().each(fn)
}

// eachTombstone calls fn for every user with a remembered TS who is not a member, in
// no particular order.
func (s *memberSet) eachTombstone(fn func(uid uint32, ts int64)) {
	if s.ts != nil {
		s.eachPacked(func(i int, uid uint32) {
			if s.tomb(i) {
				fn(uid, s.tsAt(i))
			}
		})
	}
	s.table().each(func(uid uint32, ts int64) {
		if !s.has(uid) {
			fn(uid, ts)
		}
	})
}

// stampMap returns the remembered TS as user -> TS.
func (s *memberSet) stampMap() map[uint32]int64 {
	out := make(map[uint32]int64)
	s.eachStamp(func(uid uint32, ts int64) { out[uid] = ts })
	return out
}

// delStamped removes uid, as del, and returns its remembered TS too, which stays.
func (s *memberSet) delStamped(uid uint32) (exp, ts int64, was bool) {
	if s.packed() && s.ts != nil { // else no TS beside the ids, so no tombstones there
		_, i, ok := s.find(uid)
		switch {
		case !ok:
			return 0, s.table().get(uid), false
		case s.tomb(i):
			return 0, s.tsAt(i), false
		}
		if ts = s.tsAt(i); ts == 0 {
			ts = s.table().get(uid)
		}
		exp, was = s.del(uid)
		return exp, ts, was
	}
	exp, was = s.del(uid)
	return exp, s.table().get(uid), was
}
