package config

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestMemoryLimit: memory.limit resolves to its size, to none, or (auto) to 80% of the
// container's cgroup limit when there is one and none when there is not; the
// environment sets it as ARINA_MEMORY_LIMIT.
func TestMemoryLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: auto would report it")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	defer func(r string) { cgroupRoot = r }(cgroupRoot)
	cgroupRoot = root
	write("proc/self/cgroup", "0::/kube/pod1\n")
	write("sys/fs/cgroup/kube/pod1/memory.max", "max\n")
	write("sys/fs/cgroup/kube/memory.max", "1073741824\n")

	for _, tc := range []struct {
		env  string
		want int64
	}{
		{"", 858993459}, // auto: 80% of the parent cgroup's 1 GiB
		{"auto", 858993459},
		{"2GiB", 2 << 30},
		{"512MiB", 512 << 20},
		{"1.5G", 3 << 29},
		{"800MB", 800e6},
		{"none", 0},
	} {
		env := map[string]string{}
		if tc.env != "" {
			env["ARINA_MEMORY_LIMIT"] = tc.env
		}
		cfg, err := Load(nil, func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("ARINA_MEMORY_LIMIT=%q: %v", tc.env, err)
		}
		if got := cfg.memoryLimit(log); got != tc.want {
			t.Errorf("ARINA_MEMORY_LIMIT=%q: limit %d, want %d", tc.env, got, tc.want)
		}
	}

	// No limit anywhere up the hierarchy: auto is none.
	write("sys/fs/cgroup/kube/memory.max", "max\n")
	if got := (&Config{Memory: MemoryConfig{Limit: "auto"}}).memoryLimit(log); got != 0 {
		t.Errorf("auto without a cgroup limit = %d, want 0", got)
	}
}
