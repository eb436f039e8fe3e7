package test

import (
	"net/http"
	"testing"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
)

// TestMemoryLimit_MetricsAndReadyz: the daemon exports its memory limit and the
// runtime's use, and /readyz reports the node degraded (still ready) once the use is
// past 90% of the limit; without a limit the check stays ok. (daemon.Start does not set
// the process's limit: serve does, so this test leaves the runtime alone.)
func TestMemoryLimit_MetricsAndReadyz(t *testing.T) {
	d := arinatest.Start(t)
	if code, status, checks := readyz(t, d.HTTPURL); code != http.StatusOK || status != "ready" || checks["memory"] != "ok" {
		t.Fatalf("no limit: /readyz = %d %s %v, want 200 ready with memory ok", code, status, checks)
	}
	if got := metric(t, d.HTTPURL, "arina_memory_limit_bytes"); got != 0 {
		t.Fatalf("arina_memory_limit_bytes = %v without a limit, want 0", got)
	}
	if got := metric(t, d.HTTPURL, "arina_memory_runtime_bytes"); got < 1<<20 {
		t.Fatalf("arina_memory_runtime_bytes = %v, want the runtime's use (MiBs)", got)
	}

	// A limit far below what any Go process uses: near it from the start.
	small := arinatest.Start(t, func(o *daemon.Options) { o.MemoryLimit = 1 << 20 })
	if code, status, checks := readyz(t, small.HTTPURL); code != http.StatusOK || status != "degraded" || checks["memory"] != "down" {
		t.Fatalf("1 MiB limit: /readyz = %d %s %v, want 200 degraded with memory down", code, status, checks)
	}
	if got := metric(t, small.HTTPURL, "arina_memory_limit_bytes"); got != 1<<20 {
		t.Fatalf("arina_memory_limit_bytes = %v, want %d", got, 1<<20)
	}
	// A generous one: ok.
	big := arinatest.Start(t, func(o *daemon.Options) { o.MemoryLimit = 1 << 40 })
	if _, status, checks := readyz(t, big.HTTPURL); status != "ready" || checks["memory"] != "ok" {
		t.Fatalf("1 TiB limit: /readyz %s %v, want ready with memory ok", status, checks)
	}
}
