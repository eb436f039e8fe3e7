package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Memory limits (memory.limit, issue 16).
const (
	// CgroupShare is the share of a container's memory limit (cgroup memory.max) taken
	// as the Go runtime's soft limit when memory.limit is not set: the rest is room for
	// what the runtime does not count (thread stacks outside the heap, the binary's
	// pages) and for the soft limit being soft.
	CgroupShare = 0.8
	// MemoryNearShare is the share of the limit past which /readyz reports the memory
	// check down (the node is degraded, still ready) and the GC works hard to stay
	// below it.
	MemoryNearShare = 0.9
)

// ParseSize reads a size in bytes: a number with an optional unit, B, KB, MB, GB, TB
// (powers of 1000), KiB, MiB, GiB, TiB or K, M, G, T, Ki, Mi, Gi, Ti (powers of 1024),
// in any case: "2GiB", "512Mi", "1.5G", "800MB", "1073741824".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || f < 0 {
		return 0, fmt.Errorf("%q is not a size (want a number and a unit: 2GiB, 512MiB, 800MB)", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, unit)
	}
	v := f * mult
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// FormatSize writes n bytes in the largest binary unit, to a tenth: "1.5GiB".
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return strconv.FormatFloat(math.Round(float64(n)/float64(u.size)*10)/10, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// CgroupMemoryMax returns the memory limit of the cgroup this process runs in (the
// smallest memory.max of its cgroup v2 and the ones above it, or cgroup v1's
// memory.limit_in_bytes), and false when there is none. root is "/" but for tests.
func CgroupMemoryMax(root string) (int64, bool) {
	data, err := os.ReadFile(path.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, false
	}
	best, found := int64(math.MaxInt64), false
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		// hierarchy-ID:controllers:path; v2 is "0::/path".
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var files []string
		switch {
		case parts[0] == "0" && parts[1] == "":
			for p := parts[2]; ; p = path.Dir(p) {
				files = append(files, path.Join(root, "sys/fs/cgroup", p, "memory.max"))
				if p == "/" || p == "." {
					break
				}
			}
		case strings.Contains(","+parts[1]+",", ",memory,"):
			// v1: in a container the memory hierarchy is mounted at its own cgroup.
			files = append(files, path.Join(root, "sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes"),
				path.Join(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			// "max" (v2) fails to parse; v1 says "none" with a number near 2^63.
			if err != nil || v <= 0 || v >= 1<<62 {
				continue
			}
			if v < best {
				best, found = v, true
			}
		}
	}
	return best, found
}

// RuntimeMemoryLimit returns the Go runtime's soft limit for a process limit of
// limit bytes: the limit, less what Pebble allocates outside the Go heap when the
// binary is built with cgo (two memtables, one being flushed, and the block cache,
// PebbleSizes). 0: none.
func RuntimeMemoryLimit(limit int64) int64 {
	if limit <= 0 || !cgoEnabled {
		return limit
	}
	mt, cache := PebbleSizes(limit)
	return max(limit-2*mt-cache, limit/2)
}

// compactRoom returns how many bytes of new arrays re-laying the index may take under
// the runtime's memory limit, -1 for no bound: what the runtime may still map, plus
// the heap's free pages (counted already, and taken first).
func compactRoom() int64 {
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return -1
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	return max(0, limit-runtimeMemory()+int64(s[0].Value.Uint64()))
}

// runtimeMemory returns what the Go runtime counts against its memory limit: the
// memory it has mapped, less the heap it has given back to the system.
func runtimeMemory() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 || s[1].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

// registerMemory exports the limit and the runtime's use as metrics, and returns the
// readiness check that fails while the use is past MemoryNearShare of the limit.
func registerMemory(reg prometheus.Registerer, limit int64) (func() bool, error) {
	err := errors.Join(
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arina_memory_limit_bytes",
			Help: "memory.limit as applied (or a share of the container's limit); 0: none. The Go runtime's soft limit is this, less Pebble's memtables and cache when they are outside the Go heap (cgo builds).",
		}, func() float64 { return float64(limit) })),
		reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arina_memory_runtime_bytes",
			Help: "Memory the Go runtime counts against its soft limit: mapped, less the heap released to the system.",
		}, func() float64 { return float64(runtimeMemory()) })),
	)
	if err != nil {
		return nil, err
	}
	rl := RuntimeMemoryLimit(limit)
	return func() bool { return rl <= 0 || float64(runtimeMemory()) < MemoryNearShare*float64(rl) }, nil
}

// PebbleSizes returns the memtable and block cache sizes for a memory limit: a 64th of
// it each, the memtable between 4 MiB and 64 MiB, the cache between 8 MiB and 64 MiB
// (Pebble's defaults are the lower bounds). The engine is read only at start; its
// memtables (up to two while one is flushed) hold what it writes meanwhile. 0: none,
// Pebble's defaults.
func PebbleSizes(limit int64) (memtable, cache int64) {
	if limit <= 0 {
		return 0, 0
	}
	return min(max(limit/64, 4<<20), 64<<20), min(max(limit/64, 8<<20), 64<<20)
}
