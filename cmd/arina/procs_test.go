package main

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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

// TestKeepGCHeadroom: after a collection GOGC is raised so that the heap may grow by
// the floor (at most GOGC 1000), and is the base once the live heap is large enough.
func TestKeepGCHeadroom(t *testing.T) {
	old := debug.SetGCPercent(50)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	stop := keepGCHeadroom(50, 1<<40) // far above this test's live heap
	waitGOGC(t, func(p int) bool { return p == 1000 }, "1000")
	stop()
	stop = keepGCHeadroom(50, 1) // below any live heap
	t.Cleanup(stop)
	waitGOGC(t, func(p int) bool { return p == 50 }, "50")
	debug.SetGCPercent(70) // set by someone else: the next collection restores the base
	waitGOGC(t, func(p int) bool { return p == 50 }, "50 again")
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
