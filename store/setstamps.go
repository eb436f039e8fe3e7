package store

// The remembered TS of a set's users (see Op.TS), kept by its memberSet (issue 16).
//
// While the set is packed, a member's TS sits beside its id: ts[i] beside lo[i], 4
// bytes, its delta from tsBase plus one, so that the search that finds a member finds
// its TS too, and a member costs no user id twice. The base starts stampBack before the
// first TS and moves forward (rebaseStamps) when a newer one does not fit, as in
// stampTable. Every other TS is in tab, a stampTable: the tombstones (users no longer
// members; a member's TS moves there when it leaves), the TS of members while the set
// is a bitset or a bitmap (they move beside the ids when it is packed again), and any
// TS too old for the base. A user's TS is in one place only: ts[i] when that is not 0,
// else tab.

// eachPacked calls fn with the place in lo and the id of every member of the packed
// form, in order.
func (s *memberSet) eachPacked(fn func(i int, uid uint32)) {
	for b, w := range s.ids {
		start, end := s.span(b)
		for i := start; i < end; i++ {
			fn(i, w>>16<<16|uint32(s.lo[i]))
		}
	}
}

// packed reports whether the set is in the packed form.
func (s *memberSet) packed() bool { return s.big == nil && !s.dense }

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
		return exp, member, s.tab.get(uid), -1
	}
	_, i, ok := s.find(uid)
	if !ok {
		return 0, false, s.tab.get(uid), -1
	}
	if s.exp != nil {
		exp = s.exp[uid]
	}
	if s.ts != nil && s.ts[i] != 0 {
		return exp, true, s.tsBase + int64(s.ts[i]) - 1, i
	}
	return exp, true, s.tab.get(uid), i
}

// stampAt returns the remembered TS of uid, the member at lo[at] of the packed form,
// or of any user if at is -1.
func (s *memberSet) stampAt(at int, uid uint32) int64 {
	if at >= 0 && s.ts != nil && s.ts[at] != 0 {
		return s.tsBase + int64(s.ts[at]) - 1
	}
	return s.tab.get(uid)
}

// setStamp makes ts (not 0) uid's remembered TS, member or not.
func (s *memberSet) setStamp(uid uint32, ts int64) {
	if s.packed() {
		if _, i, ok := s.find(uid); ok {
			s.setStampAt(i, uid, ts)
			return
		}
	}
	s.tabSet(uid, ts)
}

// setStampAt makes ts (not 0) the TS of uid, the member at lo[i].
func (s *memberSet) setStampAt(i int, uid uint32, ts int64) {
	if s.ts == nil {
		s.ts = make([]uint32, len(s.lo), cap(s.lo))
		s.tsBase = ts - stampBack
	}
	if ts-s.tsBase >= stampSpan {
		s.rebaseStamps(ts)
	}
	if d := ts - s.tsBase; d >= 0 && d < stampSpan {
		s.ts[i] = uint32(d) + 1
		if s.tab != nil {
			s.tabDel(uid)
		}
		return
	}
	s.ts[i] = 0 // older than the base
	s.tabSet(uid, ts)
}

// rebaseStamps moves tsBase forward so that ts fits with room for newer TS still;
// the TS that then fall before it move to tab.
func (s *memberSet) rebaseStamps(ts int64) {
	base := ts - stampBack
	shift := base - s.tsBase
	s.eachPacked(func(i int, uid uint32) {
		d := int64(s.ts[i])
		switch {
		case d == 0:
		case d-1 < shift:
			s.tabSet(uid, s.tsBase+d-1)
			s.ts[i] = 0
		default:
			s.ts[i] = uint32(d - shift)
		}
	})
	s.tsBase = base
}

// forgetStamp forgets uid's remembered TS.
func (s *memberSet) forgetStamp(uid uint32) {
	if s.ts != nil {
		if _, i, ok := s.find(uid); ok && s.ts[i] != 0 {
			s.ts[i] = 0
			return
		}
	}
	s.tabDel(uid)
}

func (s *memberSet) tabSet(uid uint32, ts int64) {
	if s.tab == nil {
		s.tab = &stampTable{}
	}
	s.tab.set(uid, ts)
}

func (s *memberSet) tabDel(uid uint32) {
	if s.tab == nil {
		return
	}
	s.tab.del(uid)
	if s.tab.len() == 0 {
		s.tab = nil
	}
}

// spillStamps moves the TS beside the packed members to tab, before the packed form
// goes.
func (s *memberSet) spillStamps() {
	if s.ts == nil {
		return
	}
	s.eachPacked(func(i int, uid uint32) {
		if d := s.ts[i]; d != 0 {
			s.tabSet(uid, s.tsBase+int64(d)-1)
		}
	})
	s.ts = nil
}

// gatherStamps moves the TS of the members from tab to beside them, once the set is
// packed again.
func (s *memberSet) gatherStamps() {
	if s.tab == nil {
		return
	}
	s.eachPacked(func(i int, uid uint32) {
		if s.tab == nil {
			return
		}
		if ts := s.tab.get(uid); ts != 0 {
			s.setStampAt(i, uid, ts)
		}
	})
}

// eachStamp calls fn for every user with a remembered TS, in no particular order.
func (s *memberSet) eachStamp(fn func(uid uint32, ts int64)) {
	if s.ts != nil {
		s.eachPacked(func(i int, uid uint32) {
			if d := s.ts[i]; d != 0 {
				fn(uid, s.tsBase+int64(d)-1)
			}
		})
	}
	s.tab.each(fn)
}

// stampMap returns the remembered TS as user -> TS.
func (s *memberSet) stampMap() map[uint32]int64 {
	out := make(map[uint32]int64)
	s.eachStamp(func(uid uint32, ts int64) { out[uid] = ts })
	return out
}

// delStamped removes uid, as del, and returns its remembered TS too, which stays.
func (s *memberSet) delStamped(uid uint32) (exp, ts int64, was bool) {
	if s.packed() && s.ts != nil {
		if _, i, ok := s.find(uid); ok && s.ts[i] != 0 {
			ts = s.tsBase + int64(s.ts[i]) - 1
			exp, was = s.del(uid)
			return exp, ts, was
		}
	}
	exp, was = s.del(uid)
	return exp, s.tab.get(uid), was
}
