package store

import (
	"testing"

	"pgregory.net/rapid"
)

// TestMemberSet_Stamps compares a memberSet's members, expiries and remembered TS
// with maps under random puts (with or without a TS), deletes, sets and forgets of
// TS, across the packed form (TS beside the ids), the bitset and the bitmap (TS in
// the table) and the moves between them, rebases of the packed TS and TS too old for
// their base: a TS is kept wherever it lives and survives its member's removal.
func TestMemberSet_Stamps(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var s memberSet
		members := map[uint32]int64{}
		stamps := map[uint32]int64{}
		// A few ids (packed), thousands of them close (a bitset) or spread (a bitmap).
		span := rapid.SampledFrom([]uint32{64, 4 * smallSetMax, 1 << 24}).Draw(rt, "span")
		ts := rapid.OneOf(rapid.SampledFrom(stampEdges), rapid.Int64Range(1_780_000_000_000-1<<33, 1_780_000_000_000+1<<34))
		check := func(step int, uid uint32) {
			exp, member, got, at := s.lookup(uid)
			if member && s.packed() && (at < 0 || s.lo[at] != uint16(uid)) || (!member || !s.packed()) && at != -1 {
				rt.Fatalf("step %d: lookup(%d) places it at %d", step, uid, at)
			}
			wexp, wmember := members[uid]
			if exp != wexp || member != wmember || got != stamps[uid] {
				rt.Fatalf("step %d: lookup(%d) = %d, %v, %d; want %d, %v, %d", step, uid, exp, member, got, wexp, wmember, stamps[uid])
			}
			if s.stamp(uid) != stamps[uid] {
				rt.Fatalf("step %d: stamp(%d) = %d, want %d", step, uid, s.stamp(uid), stamps[uid])
			}
		}
		for i := range rapid.IntRange(1, 300).Draw(rt, "steps") {
			uid := rapid.Uint32Range(0, span-1).Draw(rt, "uid")
			switch rapid.IntRange(0, 5).Draw(rt, "op") {
			case 0:
				// Many members at once, to move the set between forms.
				v := ts.Draw(rt, "ts")
				for u := range rapid.Uint32Range(1, 2*smallSetMax).Draw(rt, "n") {
					id := (uid + u*7) % span
					s.putStamped(-1, id, 0, v)
					members[id], stamps[id] = 0, v
				}
			case 1:
				exp := rapid.Int64Range(0, 3).Draw(rt, "exp")
				v := rapid.OneOf(rapid.Just(int64(0)), ts).Draw(rt, "ts")
				at := -1
				if rapid.Bool().Draw(rt, "lookup first") {
					_, _, _, at = s.lookup(uid)
				}
				prev, was, prevTS := s.putStamped(at, uid, exp, v)
				wprev, wwas := members[uid]
				if prev != wprev || was != wwas || prevTS != stamps[uid] {
					rt.Fatalf("step %d: putStamped(%d) = %d, %v, %d; want %d, %v, %d", i, uid, prev, was, prevTS, wprev, wwas, stamps[uid])
				}
				members[uid] = exp
				if v != 0 {
					stamps[uid] = v
				}
			case 2:
				exp, got, was := s.delStamped(uid)
				wexp, wwas := members[uid]
				if exp != wexp || was != wwas || got != stamps[uid] {
					rt.Fatalf("step %d: delStamped(%d) = %d, %d, %v; want %d, %d, %v", i, uid, exp, got, was, wexp, stamps[uid], wwas)
				}
				delete(members, uid)
			case 3:
				// Remove most members, to move the set back to the packed form.
				for id := range members {
					if len(members) <= 10 {
						break
					}
					s.del(id)
					delete(members, id)
				}
			case 4:
				v := ts.Draw(rt, "ts")
				s.setStamp(uid, v)
				stamps[uid] = v
			case 5:
				s.forgetStamp(uid)
				delete(stamps, uid)
			}
			check(i, uid)
			if s.len() != len(members) {
				rt.Fatalf("step %d: len %d, want %d", i, s.len(), len(members))
			}
			if s.ts != nil && (!s.packed() || len(s.ts) != len(s.lo) || cap(s.ts) < len(s.lo)) {
				rt.Fatalf("step %d: TS beside the ids of a set not packed (%v) or out of step: %d TS, %d ids", i, !s.packed(), len(s.ts), len(s.lo))
			}
		}
		for uid := range members {
			check(-1, uid)
		}
		got := s.stampMap()
		if len(got) != len(stamps) {
			rt.Fatalf("eachStamp gave %d TS, want %d", len(got), len(stamps))
		}
		for uid, v := range stamps {
			check(-1, uid)
			if got[uid] != v {
				rt.Fatalf("eachStamp: user %d has %d, want %d", uid, got[uid], v)
			}
		}
		tombs := map[uint32]int64{}
		s.eachTombstone(func(uid uint32, ts int64) {
			if _, dup := tombs[uid]; dup {
				rt.Fatalf("eachTombstone: user %d twice", uid)
			}
			tombs[uid] = ts
		})
		for uid, v := range stamps {
			if _, member := members[uid]; !member && tombs[uid] != v {
				rt.Fatalf("eachTombstone: user %d has %d, want %d", uid, tombs[uid], v)
			}
			delete(tombs, uid)
		}
		if len(tombs) != 0 {
			rt.Fatalf("eachTombstone gave users with no tombstone: %v", tombs)
		}
		if s.packed() && s.ts != nil {
			s.eachPacked(func(i int, uid uint32) {
				if s.ts[i] != 0 && s.table().get(uid) != 0 {
					rt.Fatalf("user %d has a TS beside its id and in the table", uid)
				}
			})
		}
	})
}

// TestMemberSet_TombstonesPacked checks that a packed set keeps its tombstones beside
// its members (6 bytes each, found by the same search), not in a table of their own,
// and that a member's removal, a re-add and a forgotten tombstone keep them so.
func TestMemberSet_TombstonesPacked(t *testing.T) {
	var s memberSet
	const ts int64 = 1_780_000_000_000
	for uid := range uint32(200) {
		s.putStamped(-1, uid*5000, 0, ts+int64(uid))
	}
	for uid := uint32(0); uid < 200; uid += 2 {
		if _, got, was := s.delStamped(uid * 5000); !was || got != ts+int64(uid) {
			t.Fatalf("delStamped(%d) = %d, %v", uid*5000, got, was)
		}
		s.setStamp(uid*5000+1, ts-1) // a remove of a user never a member
	}
	s.putStamped(-1, 0, 0, ts+1000) // back
	s.forgetStamp(2*5000 + 1)
	if !s.packed() || s.table() != nil {
		t.Fatalf("packed %v, table %v: want the tombstones packed, no table", s.packed(), s.table() != nil)
	}
	if len(s.lo) != 200+99 || s.len() != 101 {
		t.Fatalf("%d entries, %d members; want 299 and 101", len(s.lo), s.len())
	}
	n := 0
	s.eachTombstone(func(uid uint32, got int64) {
		n++
		if s.has(uid) || got != s.stamp(uid) {
			t.Fatalf("tombstone %d (%d): member %v, stamp %d", uid, got, s.has(uid), s.stamp(uid))
		}
	})
	if n != 99+99 {
		t.Fatalf("%d tombstones, want %d", n, 99+99)
	}
	if _, _, got, _ := s.lookup(4 * 5000); got != ts+4 {
		t.Fatalf("lookup of a removed member: TS %d, want %d", got, ts+4)
	}
}
