// Command tracetail reads a Go execution trace of arina (GET /debug/pprof/trace with
// ARINA_HTTP_PPROF=true, taken while count queries run) and tells where the HTTP
// goroutines' time goes: for every goroutine started under net/http.(*conn).serve, each
// service interval (made runnable from waiting, to waiting again), its waits from
// runnable to running, and how the intervals longer than 0.5 ms split into runnable,
// running and syscall time and overlap the collector's mark phases and stop-the-world
// pauses. Its own module, so that golang.org/x/exp stays out of arina's.
//
//	cd bench/tracetail && go run . /abs/path/to/trace.out
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/exp/trace"
)

type iv struct{ a, b trace.Time }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tracetail trace.out")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := trace.NewReader(f)
	if err != nil {
		panic(err)
	}
	http := map[trace.GoID]bool{}
	unblock := map[trace.GoID]trace.Time{}
	runnableAt := map[trace.GoID]trace.Time{}
	var svc, wait []float64
	type rec struct {
		a, b trace.Time
	}
	var long []rec
	var gcs, stws []iv
	open := map[string]trace.Time{}
	stateAt := map[trace.GoID]trace.Time{}
	type acc struct{ runnable, running, syscall float64 }
	cur := map[trace.GoID]*acc{}
	var longAcc []acc
	var first, last trace.Time
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			panic(err)
		}
		if first == 0 {
			first = ev.Time()
		}
		last = ev.Time()
		switch ev.Kind() {
		case trace.EventRangeBegin:
			n := ev.Range().Name
			open[n] = ev.Time()
		case trace.EventRangeEnd:
			n := ev.Range().Name
			if t, ok := open[n]; ok {
				if strings.HasPrefix(n, "stop-the-world") {
					stws = append(stws, iv{t, ev.Time()})
				} else if strings.Contains(n, "GC concurrent mark") {
					gcs = append(gcs, iv{t, ev.Time()})
				}
				delete(open, n)
			}
		case trace.EventStateTransition:
			st := ev.StateTransition()
			if st.Resource.Kind != trace.ResourceGoroutine {
				continue
			}
			g := st.Resource.Goroutine()
			from, to := st.Goroutine()
			if !http[g] {
				for fr := range st.Stack.Frames() {
					if fr.Func == "net/http.(*conn).serve" {
						http[g] = true
					}
				}
				if !http[g] {
					for fr := range ev.Stack().Frames() {
						if fr.Func == "net/http.(*conn).serve" {
							http[g] = true
						}
					}
				}
			}
			if a := cur[g]; a != nil {
				d := float64(ev.Time()-stateAt[g]) / 1e3
				switch from {
				case trace.GoRunnable:
					a.runnable += d
				case trace.GoRunning:
					a.running += d
				case trace.GoSyscall:
					a.syscall += d
				}
			}
			stateAt[g] = ev.Time()
			if to == trace.GoRunnable && from == trace.GoWaiting {
				unblock[g] = ev.Time()
				cur[g] = &acc{}
			}
			if to == trace.GoRunnable {
				runnableAt[g] = ev.Time()
			}
			if to == trace.GoRunning {
				if t, ok := runnableAt[g]; ok && http[g] {
					wait = append(wait, float64(ev.Time()-t)/1e3)
				}
				delete(runnableAt, g)
			}
			if to == trace.GoWaiting && http[g] {
				if t, ok := unblock[g]; ok {
					d := float64(ev.Time()-t) / 1e3
					svc = append(svc, d)
					if d > 500 {
						long = append(long, rec{t, ev.Time()})
						if a := cur[g]; a != nil {
							longAcc = append(longAcc, *a)
						}
					}
				}
				delete(unblock, g)
			}
		}
	}
	q := func(x []float64, p float64) float64 {
		if len(x) == 0 {
			return 0
		}
		sort.Float64s(x)
		return x[int(p*float64(len(x)-1))]
	}
	fmt.Printf("trace %.2fs, http goroutines %d\n", float64(last-first)/1e9, len(http))
	fmt.Printf("service (unblock->block) n=%d p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f us\n", len(svc), q(svc, .5), q(svc, .9), q(svc, .99), q(svc, .999), q(svc, 1))
	fmt.Printf("runnable->running n=%d p50 %.0f p90 %.0f p99 %.0f p99.9 %.0f max %.0f us\n", len(wait), q(wait, .5), q(wait, .9), q(wait, .99), q(wait, .999), q(wait, 1))
	var gcT, stwT float64
	for _, g := range gcs {
		gcT += float64(g.b - g.a)
	}
	for _, g := range stws {
		stwT += float64(g.b - g.a)
	}
	tot := float64(last - first)
	fmt.Printf("GC mark: %d, %.1f%% of the time; STW: %d, %.2f%% of the time\n", len(gcs), 100*gcT/tot, len(stws), 100*stwT/tot)
	overl := func(x rec, ivs []iv) bool {
		for _, g := range ivs {
			if x.a < g.b && g.a < x.b {
				return true
			}
		}
		return false
	}
	nG, nS := 0, 0
	for _, l := range long {
		if overl(l, gcs) {
			nG++
		}
		if overl(l, stws) {
			nS++
		}
	}
	fmt.Printf("service > 0.5 ms: %d (%.2f%%); overlapping GC mark %d, STW %d\n", len(long), 100*float64(len(long))/float64(max(1, len(svc))), nG, nS)
	var ra, ru, sy []float64
	for _, a := range longAcc {
		ra = append(ra, a.runnable)
		ru = append(ru, a.running)
		sy = append(sy, a.syscall)
	}
	fmt.Printf("long intervals: runnable p50 %.0f p90 %.0f; running p50 %.0f p90 %.0f; syscall p50 %.0f p90 %.0f us\n", q(ra, .5), q(ra, .9), q(ru, .5), q(ru, .9), q(sy, .5), q(sy, .9))
	var sd []float64
	for _, s := range stws {
		sd = append(sd, float64(s.b-s.a)/1e3)
	}
	fmt.Printf("STW durations us: p50 %.0f p90 %.0f max %.0f\n", q(sd, .5), q(sd, .9), q(sd, 1))
}
