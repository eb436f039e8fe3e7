package examples

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
)

// PythonEnv names the Python (with paho-mqtt) that TestPython_Badge runs; unset, it
// tries python3 on PATH, then Debian's /usr/bin/python3.
const PythonEnv = "ARINA_PYTHON"

// pythonWithPaho returns a Python that can import paho.mqtt, and paho's version.
func pythonWithPaho(t *testing.T) (string, string) {
	t.Helper()
	var tried []string
	candidates := []string{os.Getenv(PythonEnv), "python3", "/usr/bin/python3"}
	if os.Getenv(PythonEnv) != "" {
		candidates = candidates[:1]
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		path, err := exec.LookPath(c)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", c, err))
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		out, err := exec.CommandContext(ctx, path, "-c", "import paho.mqtt, paho.mqtt.client; print(paho.mqtt.__version__)").CombinedOutput()
		cancel()
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: no paho.mqtt", path))
			continue
		}
		return path, strings.TrimSpace(string(out))
	}
	missing(t, fmt.Sprintf("no Python with paho-mqtt (apt-get install python3-paho-mqtt, or set %s): %s", PythonEnv, strings.Join(tried, "; ")))
	return "", ""
}

// TestPython_Badge runs examples/python/badge.py with the real paho-mqtt against a
// whole daemon: two badges join (QoS 1 "add", each script printing the count it reads
// from the retained per-reaction topic), one leaves on SIGTERM (its own "remove"),
// and the other is killed, so that only its will ("remove <badge>") can take it out
// of the set.
func TestPython_Badge(t *testing.T) {
	python, version := pythonWithPaho(t)
	t.Logf("%s with paho-mqtt %s", python, version)
	d := arinatest.Start(t, withCounts)
	host, port, _ := strings.Cut(d.MQTTAddr, ":")
	badge := func(name string) *process {
		return start(t, "", []string{"PYTHONUNBUFFERED=1"}, python, filepath.Join("python", "badge.py"),
			"--host", host, "--port", port, "Stew", "fire", name)
	}
	count := func(n int) *regexp.Regexp { return regexp.MustCompile(fmt.Sprintf(`^count %d$`, n)) }
	members := func(want ...string) {
		t.Helper()
		arinatest.WaitFor(t, 10*time.Second, func() error {
			if got := arinatest.Members(t, d.HTTPURL, "Stew", "fire"); !slices.Equal(got, want) {
				return fmt.Errorf("members of Stew/fire %q, want %q", got, want)
			}
			return nil
		})
	}

	sam := badge("sam")
	sam.expect(t, 30*time.Second, count(1))
	members("sam")
	ann := badge("ann")
	ann.expect(t, 30*time.Second, count(2))
	sam.expect(t, 10*time.Second, count(2))
	members("ann", "sam")

	// SIGTERM: the script removes its badge itself and disconnects (no will then).
	sam.stop(t, syscall.SIGTERM)
	if sam.err != nil {
		t.Fatalf("badge.py sam after SIGTERM: %v", sam.err)
	}
	if !strings.Contains(sam.out.String(), "removed sam from kitchen/Stew/fire") {
		t.Fatalf("badge.py sam did not say it removed its badge:\n%s", sam.out.String())
	}
	ann.expect(t, 10*time.Second, count(1))
	members("ann")

	// SIGKILL: the connection just drops; the broker publishes the will.
	ann.stop(t, syscall.SIGKILL)
	members()
	if counts, status := arinatest.Counts(t, d.HTTPURL, "Stew"); status != 200 || counts["fire"] != 0 {
		t.Fatalf("counts of Stew after the will: %v (HTTP %d), want fire 0", counts, status)
	}
}
