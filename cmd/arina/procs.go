package main

import (
	"log/slog"
	"runtime"
)

// maxProcsFloor is the most Ps serve asks for beyond the machine's cores.
const maxProcsFloor = 8

// serveProcs returns the GOMAXPROCS serve runs with: the runtime's own choice (cur)
// raised to 4 per core, at most maxProcsFloor, unless the GOMAXPROCS environment
// variable was set (env) or a CPU quota already put cur below the cores (cpus), where
// more Ps would only run into the quota's throttling.
//
// Why more Ps than cores: while every P runs ingest goroutines, the runtime learns of
// a socket that turned readable (an HTTP query) only when a P runs out of work or when
// sysmon polls, every 10 ms. With spare Ps one of them waits in the network poller and
// takes the query at once. On 2 cores at 80% of the maximum QoS 1 ingest, count-query
// p99 went from 11–15 ms to 4–5 ms (docs/PERFORMANCE.md, HTTP).
func serveProcs(env string, cur, cpus int) int {
	if env != "" || cur < cpus {
		return cur
	}
	return max(cur, min(maxProcsFloor, 4*cpus))
}

// raiseProcs applies serveProcs to this process.
func raiseProcs(getenv func(string) string, log *slog.Logger) {
	cur := runtime.GOMAXPROCS(0)
	if n := serveProcs(getenv("GOMAXPROCS"), cur, runtime.NumCPU()); n != cur {
		runtime.GOMAXPROCS(n)
		log.Info("GOMAXPROCS raised above the cores so that queries are not held up behind ingest; set GOMAXPROCS to choose",
			"gomaxprocs", n, "cpus", runtime.NumCPU())
	}
}
