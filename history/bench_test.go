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

// BenchmarkHistory_SetBytes is a part figure: the live heap the History holds per
// tracked (content, reaction) set at the defaults (10s over 15m: 91 steps in the
// ring), 50k sets as 10k contents × 5 reactions (bench/memory's shape), each set having
// changed in 1, 5 or all 91 steps of the window (the count moving by one or two).
// It counts the History alone (sets, contents, their map and the interned names),
// not the daemon around it. B/set is HeapAlloc after a GC, minus before, per set.
func BenchmarkHistory_SetBytes(b *testing.B) {
	const contents, reactions = 10_000, 5
	ids := make([]string, contents)
	for i := range ids {
		ids[i] = fmt.Sprintf("station-%05d", i)
	}
	rs := []string{"active", "gas_on", "fire", "yum", "idle"}
	for _, k := range []int{1, 5, 91} {
		b.Run(fmt.Sprint("changes=", k), func(b *testing.B) {
			var perSet float64
			for b.Loop() {
				b.StopTimer()
				clk := &clock{t: t0}
				h := history.New(history.Options{Now: clk.Now})
				heap0 := heapBytes()
				b.StartTimer()
				batch := make([]store.Change, 0, 1024)
				for step := range 91 {
					// k changed steps: every step, or k of them 90/k apart, the last one now.
					if k == 91 || ((90-step)%(90/k) == 0 && (90-step)/(90/k) < k) {
						for i := range contents * reactions {
							batch = append(batch, store.Change{ContentID: string([]byte(ids[i/reactions])),
								ReactionType: rs[i%reactions], UserID: "u", Action: store.Add, Count: int64(step%7 + step/7)})
							if len(batch) == cap(batch) {
								h.Apply(batch)
								batch = batch[:0]
							}
						}
						h.Apply(batch)
						batch = batch[:0]
					}
					if step < 90 {
						clk.Add(10 * time.Second)
					}
				}
				b.StopTimer()
				perSet = (heapBytes() - heap0) / (contents * reactions)
				got := h.Content(ids[0])
				if len(got) != reactions || len(got[0].Samples) != min(k, 90) {
					b.Fatalf("history of %s with %d changes: %d reactions, %d samples", ids[0], k, len(got), len(got[0].Samples))
				}
				runtime.KeepAlive(h)
				b.StartTimer()
			}
			b.ReportMetric(perSet, "B/set")
		})
	}
}

// BenchmarkHistory_ApplySteps is the cost of one change in the steady state, the
// clock moving: 50k sets (10k contents × 5 reactions) each changing once per step
// over and over (a step ends every 50k changes), so every change of a set is in a new
// step and drops the step that left the window. The ids of a round are other strings
// than the last round's, as the writer's changes are (so no comparison is cut short
// by the two strings being one).
func BenchmarkHistory_ApplySteps(b *testing.B) {
	const contents, reactions = 10_000, 5
	clk := &clock{t: t0}
	h := history.New(history.Options{Now: clk.Now})
	rs := []string{"active", "gas_on", "fire", "yum", "idle"}
	var batches [2][][]store.Change
	for v := range batches {
		for i := 0; i < contents*reactions; i += 500 {
			batch := make([]store.Change, 500)
			for k := range batch {
				batch[k] = store.Change{ContentID: fmt.Sprintf("station-%05d", (i+k)/reactions),
					ReactionType: string([]byte(rs[(i+k)%reactions])), UserID: "u", Action: store.Add}
			}
			batches[v] = append(batches[v], batch)
		}
	}
	round := func(r int) {
		for _, batch := range batches[r%2] {
			for k := range batch {
				batch[k].Count = int64(r%9 + k%3) // moving by a few
			}
			h.Apply(batch)
		}
		clk.Add(10 * time.Second)
	}
	for r := range 100 { // the window full: the steady state
		round(r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		round(rounds)
		rounds++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*contents*reactions), "ns/change")
}
