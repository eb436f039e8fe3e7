package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"
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
	setGCPercent(func(string) string { return "" }, log)
	if got := debug.SetGCPercent(100); got != 50 {
		t.Fatalf("GOGC %d by default, want 50", got)
	}
	setGCPercent(func(k string) string { return map[string]string{"GOGC": "100"}[k] }, log)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC %d with GOGC=100 in the environment, want it left at 100", got)
	}
}
