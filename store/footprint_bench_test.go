package store_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/arina-dev/arina/store"
)

// BenchmarkMemory_Footprint measures what the memory index holds per membership, all
// in (sets, interned user ids, content and reaction names), and reports the live heap
// after a full GC divided by the memberships:
//
//   - spread: 10M memberships of 1M users over 10k contents x 5 reactions, the spread
//     issue 4 names, 200 members a set among a million ids;
//   - staff: 8M memberships of 10k users over 1k contents x 8 reactions (arina bench's
//     default spread), 1000 members a set among 10k ids.
//
// Run it with -benchtime 1x; it builds the index once per iteration and needs about
// 2 GB.
func BenchmarkMemory_Footprint(b *testing.B) {
	for _, tc := range []struct {
		name                       string
		contents, reactions, users int
		memberships                int
		user                       func(k int) int // the user of the k-th membership
	}{
		{"spread", 10_000, 5, 1_000_000, 10_000_000, func(k int) int { return (k/50_000*7919 + k) % 1_000_000 }},
		// The j-th member of set s is user 10j+s: 1000 distinct users a set.
		{"staff", 1000, 8, 10_000, 8_000_000, func(k int) int { return (k/8000*10 + k%8000) % 10_000 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			footprint(b, tc.contents, tc.reactions, tc.memberships, tc.user)
		})
	}
}

func footprint(b *testing.B, contents, reactions, memberships int, user func(int) int) {
	const batch = 4096
	for b.Loop() {
		b.StopTimer()
		before := liveHeap()
		b.StartTimer()
		m := store.NewMemory()
		ops := make([]store.Op, batch)
		out := make([]store.Result, batch)
		for i := 0; i < memberships; i += batch {
			ops := ops[:min(batch, memberships-i)]
			for j := range ops {
				k := i + j
				ops[j] = store.Op{
					ContentID:    fmt.Sprintf("content-%05d", k%contents),
					ReactionType: fmt.Sprintf("r%d", (k/contents)%reactions),
					UserID:       fmt.Sprintf("user-%07d", user(k)),
					Action:       store.Add,
				}
			}
			mustApply(b, m, ops, out[:len(ops)])
		}
		b.StopTimer()
		clear(ops)
		after := liveHeap()
		var n int64
		for c := range contents {
			counts, err := m.Counts(context.Background(), fmt.Sprintf("content-%05d", c))
			if err != nil {
				b.Fatal(err)
			}
			for _, rc := range counts {
				n += rc.Count
			}
		}
		if n != int64(memberships) {
			b.Fatalf("%d memberships, want %d", n, memberships)
		}
		b.ReportMetric(float64(after-before)/float64(n), "B/membership")
		runtime.KeepAlive(m)
		_ = m.Close()
		b.StartTimer()
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
