package store

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// stampEdges are TS that stress the base: the smallest, around the first base's ends
// (2^32 ms apart), live unix ms, ms around them, and the largest.
var stampEdges = []int64{
	1, 2, stampBack, stampBack + 1, 1 << 32, 1<<32 + 1, 3 << 32,
	1_780_000_000_000, 1_780_000_000_001, 1_780_000_000_000 + stampBack, 1_780_000_000_000 + 1<<32,
	1_780_000_000_000 + 5<<32, math.MaxInt64 - 1, math.MaxInt64,
}

// TestStampTable compares a stampTable with a map under random sets, deletes and
// gets of TS drawn from stampEdges and from a range of live ms, across the move from
// the sorted slice to the map and back, rebases and far entries.
func TestStampTable(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tab := &stampTable{}
		model := map[uint32]int64{}
		users := rapid.IntRange(1, 3*stampSmallMax).Draw(rt, "users")
		ts := rapid.OneOf(rapid.SampledFrom(stampEdges), rapid.Int64Range(1_780_000_000_000-1<<33, 1_780_000_000_000+1<<34))
		for i := range rapid.IntRange(1, 400).Draw(rt, "steps") {
			uid := uint32(rapid.IntRange(0, users-1).Draw(rt, "uid"))
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				// Many users at once, to cross stampSmallMax.
				v := ts.Draw(rt, "ts")
				for u := range uint32(rapid.IntRange(1, stampSmallMax).Draw(rt, "n")) {
					tab.set(uid+u, v)
					model[uid+u] = v
				}
			case 1:
				v := ts.Draw(rt, "ts")
				tab.set(uid, v)
				model[uid] = v
			case 2:
				tab.del(uid)
				delete(model, uid)
			case 3:
				if got := tab.get(uid); got != model[uid] {
					rt.Fatalf("step %d: get(%d) = %d, want %d", i, uid, got, model[uid])
				}
			}
			if tab.len() != len(model) {
				rt.Fatalf("step %d: len = %d, want %d", i, tab.len(), len(model))
			}
			if tab.large != nil && tab.small != nil {
				rt.Fatalf("step %d: both small and large", i)
			}
		}
		got := tab.toMap()
		if len(got) != len(model) {
			rt.Fatalf("toMap has %d, want %d", len(got), len(model))
		}
		for uid, v := range model {
			if got[uid] != v || tab.get(uid) != v {
				rt.Fatalf("user %d: toMap %d, get %d, want %d", uid, got[uid], tab.get(uid), v)
			}
		}
	})
}

// TestStampTable_LiveClockStaysNear: TS that follow a clock for a year, with users
// coming back, keep fitting the base (rebases move it along): far stays empty while
// every TS in the table is within the last 37 days.
func TestStampTable_LiveClockStaysNear(t *testing.T) {
	tab := &stampTable{}
	now := int64(1_780_000_000_000)
	const day = 24 * 3600 * 1000
	for d := range int64(365) {
		for u := range uint32(100) {
			tab.set(u, now+d*day+int64(u))
		}
	}
	if tab.far != nil || tab.len() != 100 {
		t.Fatalf("far = %v, len %d; want no far entries and 100", tab.far, tab.len())
	}
	// A user last seen a year ago moves to far as the base passes it, and keeps its TS.
	tab.set(500, now)
	tab.set(1, now+400*day)
	if got := tab.get(500); got != now || len(tab.far) != 1 {
		t.Fatalf("get(500) = %d with %d far, want %d in far", got, len(tab.far), now)
	}
}
