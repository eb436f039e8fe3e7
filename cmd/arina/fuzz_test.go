package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/config"
)

// FuzzLoadConfig: any configuration file is either refused with an error or yields a
// configuration that validates and maps onto the daemon's options; nothing panics.
func FuzzLoadConfig(f *testing.F) {
	example, err := os.ReadFile(exampleConfig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(example))
	f.Add("mqtt:\n  listen: \":1883\"\n  topic_prefix: \"a/b\"\n")
	f.Add("reactions:\n  - type: \"gas_*\"\n    ttl: 2h\n")
	f.Add("bridge:\n  upstreams:\n    - name: f\n      url: tcp://h:1\n      client_id: c\n      topics: [\"x/{content}/{reaction}\"]\n")
	f.Add("store: {durability: none}\nhttp: {max_body_bytes: -1}\n")
	f.Add("mqtt: [1, 2]\n")
	f.Add("log:\n  level: !!binary AAAA\n")
	f.Add("ingest:\n  enqueue_timeout: 5\n  shutdown_timeout: \"30\"\nreactions:\n  - {type: x, ttl: 1.5}\n")
	f.Add("mqtt: {max_connections: lots, publish_rate: [1], allow_anonymous: maybe}\n")
	dir := f.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, yaml string) {
		path := filepath.Join(dir, "arina.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		cfg, err := config.Load(MustFlags(t, mapEnv(nil), "check-config", "--config", path), mapEnv(nil))
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("loadConfig took %v on %q", d, yaml)
		}
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loadConfig accepted a configuration that does not validate: %v\n%s", err, yaml)
		}
		if _, err := cfg.DaemonOptions(logger); err != nil {
			t.Fatalf("a configuration that validates does not map onto the daemon: %v\n%s", err, yaml)
		}
	})
}
