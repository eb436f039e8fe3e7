package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestServeProcs(t *testing.T) {
	for _, tc := range []struct {
		env             string
		cur, cpus, want int
	}{
		{"", 1, 1, 4},
		{"", 2, 2, 8},
		{"", 4, 4, 8},
		{"", 16, 16, 16}, // enough cores already
		{"2", 2, 2, 2},   // the operator chose
		{"", 1, 4, 1},    // a CPU quota of one core on a 4-core machine
		{"", 12, 2, 12},  // already above the floor
	} {
		if got := serveProcs(tc.env, tc.cur, tc.cpus); got != tc.want {
			t.Errorf("serveProcs(%q, cur %d, cpus %d) = %d, want %d", tc.env, tc.cur, tc.cpus, got, tc.want)
		}
	}
}

// TestSetGCPercent: serve sets the collector's GOGC to 50 by default, and leaves the
// one GOGC in the environment set alone.
func TestSetGCPercent(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	stop := setGCPercent(func(string) string { return "" }, log)
	stop()
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GOGC %d by default, want 50", got)
	}
	setGCPercent(func(k string) string { return map[string]string{"GOGC": "100"}[k] }, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC=100 in the environment, want it left at 100", got)
	}
}

// gogc reads the collector's GOGC without changing it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// waitGOGC collects until GOGC is want (the headroom is set after a collection).
func waitGOGC(t *testing.T, want func(int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !want(gogc()) {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d, want %s", gogc(), what)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGCPercent: the heap may grow by base percent of its scanned part, by the floor
// at least; a heap that is all pointers gets the base.
func TestGCPercent(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live, scan uint64
		want       int
	}{
		{0, 0, 50},               // no collection yet
		{27 * mb, 20 * mb, 118},  // small heap: the floor, 32 MB
		{4 * mb, 4 * mb, 800},    // tinier: still the floor
		{2 * mb, 2 * mb, 1000},   // at most 1000
		{400 * mb, 400 * mb, 50}, // all pointers: the base
		{93 * mb, 8 * mb, 34},    // 3M memberships: 32 MB of 93, not 46 MB
		{351 * mb, 20 * mb, 9},   // 30M: 32 MB of 351, not 175 MB
		{351 * mb, 100 * mb, 14}, // more scanned: half of it, 50 MB
		{100 << 30, 1 * mb, 1},   // at least 1
	} {
		if got := gcPercent(50, 32*mb, c.live, c.scan); got != c.want {
			t.Errorf("gcPercent(50, 32MiB, live %d MiB, scan %d MiB) = %d, want %d", c.live/mb, c.scan/mb, got, c.want)
		}
	}
}

// TestKeepGCHeadroom: after a collection GOGC is set from the live heap (raised to
// give the floor, at most GOGC 1000; at most the base once the live heap is large
// enough), and set again after the next one if someone else changed it.
func TestKeepGCHeadroom(t *testing.T) {
	old := debug.SetGCPercent(50)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	stop := keepGCHeadroom(50, 1<<40) // far above this test's live heap
	waitGOGC(t, func(p int) bool { return p == 1000 }, "1000")
	stop()
	stop = keepGCHeadroom(50, 1) // below any live heap: half of the scanned part
	t.Cleanup(stop)
	waitGOGC(t, func(p int) bool { return p >= 1 && p <= 50 }, "1 to 50")
	debug.SetGCPercent(700) // set by someone else: the next collection sets it again
	waitGOGC(t, func(p int) bool { return p >= 1 && p <= 50 }, "1 to 50 again")
}

// TestSetGCPercentHeadroom: by default the heap may grow by gcHeadroom between
// collections while the live heap is small (a test's is a few MiB).
func TestSetGCPercentHeadroom(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	stop := setGCPercent(func(string) string { return "" }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(stop)
	waitGOGC(t, func(p int) bool { return p > defaultGCPercent }, fmt.Sprintf("above %d", defaultGCPercent))
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	metrics.Read(s)
	if live, goal := s[0].Value.Uint64(), s[1].Value.Uint64(); goal < live+gcHeadroom*9/10 && goal < 10*live {
		t.Fatalf("heap goal %d with %d live, want about %d more", goal, live, gcHeadroom)
	}
}

// TestIdleReturnCheck: the spare memory is returned after quietChecks checks in a row
// each below quietBytes allocated, with minFree spare beyond the least seen since the
// last return; any busy check starts the count again, and after a return it takes as
// many quiet checks again, and as much new spare: what the return left is not counted.
func TestIdleReturnCheck(t *testing.T) {
	r := idleReturn{quietChecks: 3, quietBytes: 100, minFree: 1000}
	var st idleState
	steps := []struct {
		allocs, spare uint64
		want          bool
		returned      uint64 // if want: the spare left after the return
	}{
		{10, 5000, false, 0},    // quiet 1
		{20, 5000, false, 0},    // quiet 2
		{500, 5000, false, 0},   // busy: 480 allocated
		{510, 5000, false, 0},   // quiet 1
		{520, 5000, false, 0},   // quiet 2
		{530, 5000, true, 3000}, // quiet 3, 5000 spare: return; 3000 stay (room no re-lay frees)
		{540, 5000, false, 0},   // counting again
		{550, 5000, false, 0},   // quiet 2
		{560, 3999, false, 0},   // quiet 3 but 999 beyond what the return left
		{570, 4000, true, 3000}, // quiet 4, 1000 beyond it
		{580, 2000, false, 0},   // the spare fell (ingest filled the room): the floor follows
		{590, 2500, false, 0},   // quiet 2
		{600, 3000, true, 2000}, // quiet 3, 1000 beyond the least seen
	}
	for i, s := range steps {
		got := r.check(&st, s.allocs, s.spare)
		if got != s.want {
			t.Fatalf("check %d (allocs %d, spare %d) = %v, want %v", i, s.allocs, s.spare, got, s.want)
		}
		if got {
			st.returned(s.returned)
		}
	}
}

// TestIdleReturn: with the process quiet, before is called (serve: the index
// compacted) and the heap's free pages go back to the system.
func TestIdleReturn(t *testing.T) {
	free := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	// 64 MiB allocated, written (resident) and dropped: after a collection its pages
	// are free but, the scavenger being slow, mostly not returned.
	junk := make([][]byte, 64)
	for i := range junk {
		junk[i] = make([]byte, 1<<20)
		for j := range junk[i] {
			junk[i][j] = 1
		}
	}
	junk = nil
	runtime.GC()
	if f := free(); f < 32<<20 {
		t.Skipf("only %d bytes free after dropping 64 MiB: the runtime returned them already", f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	returned := make(chan uint64, 1)
	var before atomic.Bool
	go func() {
		defer close(done)
		// Quiet: below 64 MiB allocated per 20 ms check, a bound the other tests of
		// this package stay under.
		r := idleReturn{every: 20 * time.Millisecond, quietChecks: 2, quietBytes: 64 << 20, minFree: 16 << 20,
			before: func(context.Context) { before.Store(true) }}
		r.run(ctx, func(f uint64) {
			select {
			case returned <- f:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	select {
	case f := <-returned:
		if f < 16<<20 {
			t.Fatalf("returned with %d bytes free, want at least 16 MiB", f)
		}
		if !before.Load() {
			t.Fatal("returned without calling before first")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("free pages not returned within 10 s (%d bytes free)", free())
	}
	if f := free(); f >= 16<<20 {
		t.Fatalf("%d bytes still free and not returned after the return", f)
	}
}
