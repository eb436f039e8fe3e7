package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
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

// defaultGCPercent is the Go collector's GOGC that serve sets unless GOGC is in the
// environment: the heap may grow by half of what was live at the last collection
// before the next one, where Go's default 100 lets it double (issue 16). Measured
// under 1.5M events with ts (16 publishers x 100 in flight, 10k contents x 5
// reactions): peak RSS 377 -> 303 MiB, CPU per event about 8% more; GOGC 25 made it
// 271 MiB but cost 42% more CPU per event (the broker's retained count topics and
// topic tree are scanned on every collection).
const defaultGCPercent = 50

// setGCPercent sets the collector's GOGC to defaultGCPercent, with gcHeadroom kept
// (keepGCHeadroom), unless getenv("GOGC") is set (the runtime has read it then), and
// logs the one in force. stop ends the headroom's upkeep (tests).
func setGCPercent(getenv func(string) string, log *slog.Logger) (stop func()) {
	if v := getenv("GOGC"); v != "" {
		log.Info("garbage collector", "gogc", v, "from", "GOGC")
		return func() {}
	}
	debug.SetGCPercent(defaultGCPercent)
	log.Debug("garbage collector", "gogc", defaultGCPercent, "headroom_bytes", gcHeadroom, "from", "default")
	return keepGCHeadroom(defaultGCPercent, gcHeadroom)
}

// gcHeadroom is the least the heap may grow between two collections that serve
// arranges (keepGCHeadroom), however small the live heap.
const gcHeadroom = 32 << 20

// gcPercent returns the GOGC that lets the heap grow, before the next collection, by
// base percent of the part of it the collector scans (scan of the live bytes), and by
// at least floor bytes: max(floor, scan*base/100) as a share of live, at least 1,
// at most 1000.
//
// Why the scanned part: a collection's work is mostly scanning the objects that hold
// pointers; the objects without any (arina's index: packed ids and stamps, interned
// user ids, a few large arrays) are only marked. GOGC's share of the whole live heap
// let a large index buy headroom it does not cost the collector: with 3M memberships
// 93 MB were live, 8 MB of them scanned, and GOGC 50 let the heap grow by 46 MB before
// collecting; at 30M by ~175 MB (issue 16). A heap that is all pointers gets GOGC base as
// before.
func gcPercent(base int, floor, live, scan uint64) int {
	if live == 0 {
		return base
	}
	room := max(floor, scan*uint64(base)/100)
	return int(max(1, min(1000, 100*room/live)))
}

// keepGCHeadroom sets GOGC after every collection to gcPercent(base, floor, live,
// scannable). With a small index the floor governs: GOGC 50 alone collected about twice
// a second under 50k events/s (27 MB live); each collection stops the world and, while
// it marks, takes a quarter of the Ps and any idle ones, which on a small machine with
// more Ps than cores delays queries (docs/PERFORMANCE.md, HTTP). With a large index the
// scanned part governs (see gcPercent). The stop function ends it (tests); GOGC stays
// as last set.
func keepGCHeadroom(base int, floor uint64) (stop func()) {
	var stopped atomic.Bool
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}
	var arm func()
	arm = func() {
		// The cleanup runs once the collector has found the sentinel unreachable:
		// after the next collection. It arms the next one.
		runtime.AddCleanup(new([16]byte), func(struct{}) {
			if stopped.Load() {
				return
			}
			metrics.Read(sample)
			debug.SetGCPercent(gcPercent(base, floor, sample[0].Value.Uint64(), sample[1].Value.Uint64()))
			arm()
		}, struct{}{})
	}
	arm()
	return func() { stopped.Store(true) }
}

// idleReturn hands the heap's spare memory back to the system once the process has
// been quiet for a while. Go's scavenger returns freed pages slowly (about 1% of a
// CPU) and keeps up to a tenth more than the heap's goal, and a quiet process makes no
// garbage collection to free what the last burst left: after a burst of ingest (a
// shift starting, a backlog replayed) pages the index grew through and left stayed
// resident, 33 MB at 3M memberships ten seconds and more after the load ended (issue
// 16). Every check it reads how much was allocated since the last one; once checks
// in a row (quietChecks) each saw less than quietBytes allocated, and the heap's
// spare bytes (free pages not returned, the unused room in its spans, objects
// allocated since the last collection) have grown by minFree or more since the least
// seen after the last return, it calls before (serve: the index re-laid, which turns
// the room in the spans into free pages) and then debug.FreeOSMemory: one forced
// collection and the pages returned at once. Under steady ingest it never runs.
type idleReturn struct {
	every       time.Duration
	quietChecks int
	quietBytes  uint64
	minFree     uint64
	// before, if set, runs before the pages are returned (serve: the index's arrays
	// re-laid, store.Memory.Compact, so that what it frees is returned too).
	before func(context.Context)
}

// defaultIdleReturn: checked every second; quiet for 3 s below 1 MiB allocated a
// second (queries, the floor page and its stream allocate far less); 16 MiB spare.
var defaultIdleReturn = idleReturn{every: time.Second, quietChecks: 3, quietBytes: 1 << 20, minFree: 16 << 20}

// idleState is what run carries from one check to the next.
type idleState struct {
	last  uint64 // bytes allocated in all, at the last check
	quiet int    // quiet checks in a row
	floor uint64 // the least spare seen since the last return (0 before the first)
}

// check takes one reading (bytes allocated in all, the heap's spare bytes) and
// reports whether to return the spare memory now.
func (r idleReturn) check(st *idleState, allocs, spare uint64) bool {
	if allocs-st.last < r.quietBytes {
		st.quiet++
	} else {
		st.quiet = 0
	}
	st.last = allocs
	st.floor = min(st.floor, spare)
	if st.quiet >= r.quietChecks && spare >= st.floor+r.minFree {
		st.quiet = 0
		return true
	}
	return false
}

// returned records the spare bytes left just after a return: what a return does not
// take (room in spans that no re-laying frees) is not counted again.
func (st *idleState) returned(spare uint64) { st.floor = spare }

// spareSamples are the runtime metrics spare adds up, after the allocation total.
var spareSamples = []string{"/gc/heap/allocs:bytes", "/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes", "/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes"}

// spare returns the heap's spare bytes from a read of spareSamples: free pages not
// yet returned, the unused room in spans in use, and the objects beyond those live
// at the last collection.
func spare(s []metrics.Sample) uint64 {
	free, unused, objects, live := s[1].Value.Uint64(), s[2].Value.Uint64(), s[3].Value.Uint64(), s[4].Value.Uint64()
	return free + unused + objects - min(live, objects)
}

// run checks until ctx ends; returned reports each return (the spare bytes
// before), nil for none.
func (r idleReturn) run(ctx context.Context, returned func(spare uint64)) {
	sample := make([]metrics.Sample, len(spareSamples))
	for i, name := range spareSamples {
		sample[i].Name = name
	}
	metrics.Read(sample)
	st := idleState{last: sample[0].Value.Uint64()}
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if sp := spare(sample); r.check(&st, sample[0].Value.Uint64(), sp) {
			if r.before != nil {
				r.before(ctx)
			}
			debug.FreeOSMemory()
			if returned != nil {
				returned(sp)
			}
			metrics.Read(sample) // the collection's own allocations are not ingest
			st.last = sample[0].Value.Uint64()
			st.returned(spare(sample))
		}
	}
}
