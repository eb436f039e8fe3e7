package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/testutil"
)

// TestRun_Health: `arina health` exits 0 while the daemon is up and fails once it is
// gone, for container health checks.
func TestRun_Health(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	var out syncBuffer
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil {
		t.Fatalf("arina health: %v; output %s", err, out.String())
	}
	if err := run(context.Background(), []string{"health", "--ready", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil || !strings.Contains(out.String(), `"ready"`) {
		t.Fatalf("arina health --ready: %v; output %s", err, out.String())
	}
	if err := s.Stop(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err == nil {
		t.Fatal("arina health succeeded with the daemon stopped")
	}
}

// TestServe_SIGHUPDoesNotStop: SIGHUP (systemctl reload) reloads; it must never end
// the daemon, as Go's default for SIGHUP would.
func TestServe_SIGHUPDoesNotStop(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(s.Stderr.String(), "reloaded") {
			return errors.New(`no "reloaded" log line yet`)
		}
		return nil
	})
	var out syncBuffer
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil {
		t.Fatalf("daemon not healthy after SIGHUP: %v %s", err, out.String())
	}
}

// TestRun_BenchQueries: `arina bench --queries` reads counts over HTTP and reports a rate.
func TestRun_BenchQueries(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	stdout, _, err := MustRun(t, nil, "bench", "--queries", "--http", s.HTTPAddr, "--publishers", "2", "--duration", "300ms", "--json")
	if err != nil {
		t.Fatalf("bench --queries: %v", err)
	}
	var rep struct {
		Requests int64   `json:"requests"`
		Errors   int64   `json:"errors"`
		Rate     float64 `json:"rate"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Requests == 0 || rep.Errors != 0 || rep.Rate <= 0 {
		t.Fatalf("report %q (%v)", stdout, err)
	}
}
