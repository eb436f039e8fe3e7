package store_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/arina-dev/arina/store"
)

// BenchmarkMemory_Footprint measures what the memory index holds per membership, all
// in (sets, interned user ids, content and reaction names): 10M memberships of 1M
// users over 10k contents x 5 reactions, the spread issue 4 names. It reports the live
// heap after a full GC divided by the memberships. Run it with -benchtime 1x; it
// builds the index once per iteration and needs about 2 GB.
func BenchmarkMemory_Footprint(b *testing.B) {
	const (
		contents    = 10_000
		reactions   = 5
		users       = 1_000_000
		memberships = 10_000_000
		batch       = 4096
	)
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
					UserID:       fmt.Sprintf("user-%07d", (k/(contents*reactions)*7919+k)%users),
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
		if n != memberships {
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
