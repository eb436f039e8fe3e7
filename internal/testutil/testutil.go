// Package testutil holds test helpers that need no Arina daemon: waiting for a
// condition, free ports, external programs (and mosquitto, a real broker on a free
// port), test certificates, and a tmpfs to fill. Helpers that start a whole daemon
// are in internal/arinatest.
package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// WaitFor calls fn until it returns nil, failing the test with fn's last error if that
// does not happen within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(interval)
		interval = min(interval*2, 50*time.Millisecond)
	}
}

// RequireToolsEnv is the environment variable that turns skips for missing programs
// into failures; .ci/run sets it.
const RequireToolsEnv = "ARINA_REQUIRE_TOOLS"

// NeedProgram returns the path of an external program the test needs. When it is not
// installed the test is skipped with a message saying how to install it, or fails when
// ARINA_REQUIRE_TOOLS is set.
func NeedProgram(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (apt-get install %s)", name, debianPackage)
	if os.Getenv(RequireToolsEnv) != "" {
		tb.Fatalf("%s, and %s is set", msg, RequireToolsEnv)
	}
	tb.Skip(msg)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
