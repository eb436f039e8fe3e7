package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
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
	// The load of issue 16, as arina bench sends it: events on random (content,
	// reaction, user) of 10k contents x 5 reactions x 1M users, a quarter of them
	// removes (nearly all of users not in the set: tombstones), until 3M memberships;
	// every event with a ts (unix ms, a millisecond apart), or none.
	for _, stamped := range []bool{false, true} {
		name := map[bool]string{false: "random", true: "random-ts"}[stamped]
		b.Run(name, func(b *testing.B) { footprintRandom(b, 3_000_000, stamped) })
	}
}

func footprintRandom(b *testing.B, memberships int, stamped bool) {
	const (
		batch     = 4096
		contents  = 10_000
		reactions = 5
		users     = 1_000_000
	)
	cids := make([]string, contents)
	for i := range cids {
		cids[i] = fmt.Sprintf("c%d", i)
	}
	rids := make([]string, reactions)
	for i := range rids {
		rids[i] = fmt.Sprintf("r%d", i)
	}
	uids := make([]string, users)
	for i := range uids {
		uids[i] = fmt.Sprintf("u%d", i)
	}
	for b.Loop() {
		b.StopTimer()
		before := liveHeap()
		inuseBefore := heapInuse()
		b.StartTimer()
		m := store.NewMemory()
		rng := rand.New(rand.NewPCG(16, 1))
		ops := make([]store.Op, batch)
		out := make([]store.Result, batch)
		n, tombs := 0, 0
		ts := int64(1_780_000_000_000)
		for n < memberships {
			for j := range ops {
				ops[j] = store.Op{ContentID: cids[rng.IntN(contents)], ReactionType: rids[rng.IntN(reactions)],
					UserID: uids[rng.IntN(users)], Action: store.Add}
				if rng.IntN(4) == 0 {
					ops[j].Action = store.Remove
				}
				if stamped {
					ts++
					ops[j].TS = ts
				}
			}
			mustApply(b, m, ops, out)
			for j := range ops {
				switch {
				case out[j].Changed && ops[j].Action == store.Add:
					n++
				case out[j].Changed:
					n--
				case ops[j].Action == store.Remove:
					tombs++
				}
			}
		}
		b.StopTimer()
		clear(ops)
		after := liveHeap()
		if os.Getenv("FOOTPRINT_HEAPPROFILE") != "" {
			f, err := os.Create(os.Getenv("FOOTPRINT_HEAPPROFILE"))
			if err != nil {
				b.Fatal(err)
			}
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
		// What the heap's spans hold once the index was re-laid (as serve does when
		// ingest goes quiet): the live bytes plus the room their size classes leave.
		if _, err := m.Compact(context.Background(), -1); err != nil {
			b.Fatal(err)
		}
		liveHeap()
		b.ReportMetric(float64(heapInuse()-inuseBefore)/float64(n), "spans-B/membership")
		b.ReportMetric(float64(after-before)/float64(n), "B/membership")
		b.ReportMetric(float64(n), "memberships")
		if stamped {
			b.ReportMetric(float64(tombs), "tombstones")
		}
		runtime.KeepAlive(m)
		_ = m.Close()
		b.StartTimer()
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

// heapInuse returns the bytes of the heap's spans in use.
func heapInuse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
