package main

import "testing"

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
