package history_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/store"
)

// rssBytes is the process's resident set size (VmRSS), 0 where /proc is missing.
func rssBytes() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseFloat(string(f[1]), 64)
			return kb * 1024
		}
	}
	return 0
}

func heapBytes() float64 {
	debug.FreeOSMemory() // collects, and returns what is free to the OS (for rssBytes)
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

// BenchmarkHistory_Memory50k fills a History at the defaults (10s over 15m) with 50k
// (content, reaction) sets, each a content of its own (the costliest shape), all
// changing in every one of the window's 90 steps, and reports:
//   - heap-MB: live heap held by the History (HeapAlloc after GC, minus before);
//   - rss-MB: the whole test process's VmRSS at the end (Go runtime and test binary
//     included, so an upper bound for the History's share);
//   - rss-delta-MB: VmRSS growth while filling it, after the garbage was collected and
//     returned to the OS: what the History keeps resident.
//
// ns/op is the time to apply 50k changes (one step), through Apply.
func BenchmarkHistory_Memory50k(b *testing.B) {
	const sets = 50_000
	ids := make([]string, sets)
	for i := range ids {
		ids[i] = fmt.Sprintf("station-%05d", i)
	}
	batch := make([]store.Change, 1024)
	var heap, rss, rssDelta float64
	var steps int
	for b.Loop() {
		b.StopTimer()
		clk := &clock{t: t0}
		h := history.New(history.Options{Now: clk.Now})
		heap0, rss0 := heapBytes(), rssBytes()
		b.StartTimer()
		for step := range 90 {
			for i := 0; i < sets; i += len(batch) {
				n := min(len(batch), sets-i)
				for k := range n {
					// A fresh string per change, as the writer's changes are.
					batch[k] = store.Change{ContentID: string([]byte(ids[i+k])), ReactionType: "active",
						UserID: "u", Action: store.Add, Count: int64(step + 1)}
				}
				h.Apply(batch[:n])
			}
			if step < 89 {
				clk.Add(10 * time.Second)
			}
			steps++
		}
		b.StopTimer()
		heap = heapBytes() - heap0 // also frees the garbage before reading VmRSS
		rss = rssBytes()
		rssDelta = rss - rss0
		if got := h.Content(ids[0]); len(got) != 1 || len(got[0].Samples) != 90 {
			b.Fatalf("history of %s: %+v", ids[0], got)
		}
		runtime.KeepAlive(h)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(steps), "ns/step")
	b.ReportMetric(heap/(1<<20), "heap-MB")
	b.ReportMetric(rss/(1<<20), "rss-MB")
	b.ReportMetric(rssDelta/(1<<20), "rss-delta-MB")
}

// BenchmarkHistory_Apply is the cost of one change for a set already tracked.
func BenchmarkHistory_Apply(b *testing.B) {
	clk := &clock{t: t0}
	h := history.New(history.Options{Now: clk.Now})
	batch := make([]store.Change, 256)
	for i := range batch {
		batch[i] = store.Change{ContentID: fmt.Sprint("c", i), ReactionType: "active", Action: store.Add, Count: int64(i)}
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Apply(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/change")
}
