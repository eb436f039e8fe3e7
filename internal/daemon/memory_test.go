package daemon

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1024": 1024, "2GiB": 2 << 30, "2gib": 2 << 30, "512Mi": 512 << 20, "512M": 512 << 20,
		"800MB": 800e6, "1.5G": 3 << 29, "64 KiB": 64 << 10, "1TB": 1e12, "3b": 3,
	} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1GiB", "2 parsecs", "1e400", "1.2.3M", "99999999999TiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{512 << 20: "512MiB", 3 << 29: "1.5GiB", 100: "100B"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestCgroupMemoryMax(t *testing.T) {
	root := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := CgroupMemoryMax(root); ok {
		t.Fatal("a limit without /proc/self/cgroup")
	}
	// v2 in a container: its own cgroup is "/".
	write("proc/self/cgroup", "0::/\n")
	write("sys/fs/cgroup/memory.max", "max\n")
	if _, ok := CgroupMemoryMax(root); ok {
		t.Fatal(`a limit from "max"`)
	}
	write("sys/fs/cgroup/memory.max", "536870912\n")
	if got, ok := CgroupMemoryMax(root); !ok || got != 512<<20 {
		t.Fatalf("v2 = %d, %v; want 512 MiB", got, ok)
	}
	// v2 on a host: the smallest limit up the hierarchy.
	write("proc/self/cgroup", "0::/a/b\n")
	write("sys/fs/cgroup/a/b/memory.max", "max\n")
	write("sys/fs/cgroup/a/memory.max", "268435456\n")
	if got, ok := CgroupMemoryMax(root); !ok || got != 256<<20 {
		t.Fatalf("v2 nested = %d, %v; want 256 MiB", got, ok)
	}
	// v1: memory.limit_in_bytes, where a number near 2^63 means none.
	root = t.TempDir()
	write("proc/self/cgroup", "4:memory:/docker/x\n1:cpu:/\n")
	write("sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
	if _, ok := CgroupMemoryMax(root); ok {
		t.Fatal("v1 unlimited read as a limit")
	}
	write("sys/fs/cgroup/memory/memory.limit_in_bytes", "1073741824\n")
	if got, ok := CgroupMemoryMax(root); !ok || got != 1<<30 {
		t.Fatalf("v1 = %d, %v; want 1 GiB", got, ok)
	}
}

func TestPebbleSizes(t *testing.T) {
	for _, tc := range []struct{ limit, mt, cache int64 }{
		{0, 0, 0}, {128 << 20, 4 << 20, 8 << 20}, {512 << 20, 8 << 20, 8 << 20}, {2 << 30, 32 << 20, 32 << 20}, {64 << 30, 64 << 20, 64 << 20},
	} {
		if mt, cache := PebbleSizes(tc.limit); mt != tc.mt || cache != tc.cache {
			t.Errorf("PebbleSizes(%d) = %d, %d; want %d, %d", tc.limit, mt, cache, tc.mt, tc.cache)
		}
	}
}

func TestRuntimeMemoryLimit(t *testing.T) {
	if got := RuntimeMemoryLimit(0); got != 0 {
		t.Errorf("RuntimeMemoryLimit(0) = %d, want 0", got)
	}
	want := int64(512 << 20)
	if cgoEnabled { // Pebble's two memtables and cache are outside the Go heap
		want -= 2*(8<<20) + 8<<20
	}
	if got := RuntimeMemoryLimit(512 << 20); got != want {
		t.Errorf("RuntimeMemoryLimit(512MiB) = %d, want %d", got, want)
	}
}

// TestCompactRoom: without a memory limit the index's re-laying is not bounded; under
// one it may take what the runtime may still map plus the heap's free pages, and
// nothing once the process is past the limit.
func TestCompactRoom(t *testing.T) {
	if got := compactRoom(); got != -1 {
		t.Fatalf("compactRoom without a limit = %d, want -1", got)
	}
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	used := runtimeMemory()
	debug.SetMemoryLimit(used + 64<<20)
	if got := compactRoom(); got < 32<<20 || got > 64<<20+used {
		t.Fatalf("compactRoom with 64 MiB under the limit = %d, want about 64 MiB", got)
	}
	debug.SetMemoryLimit(used / 2)
	if got := compactRoom(); got < 0 || got > used {
		t.Fatalf("compactRoom past the limit = %d, want at most the free heap", got)
	}
}
