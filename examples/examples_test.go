package examples

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// withCounts turns on the count topics the examples read (the daemon's defaults:
// arina/counts/<content> and arina/counts/<content>/<reaction>), published quickly.
func withCounts(o *daemon.Options) {
	o.MQTT.CountsPrefix = "arina/counts"
	o.MQTT.CountsInterval = 50 * time.Millisecond
}

// missing skips the test with msg, or fails it when ARINA_REQUIRE_TOOLS is set (CI).
func missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv(arinatest.RequireToolsEnv) != "" {
		tb.Fatalf("%s, and %s is set", msg, arinatest.RequireToolsEnv)
	}
	tb.Skip(msg)
}

// process is an external program the test started: its output is kept (and logged
// when the test fails), lines matching the patterns given to expect are reported, and
// it is stopped at cleanup.
type process struct {
	cmd  *exec.Cmd
	out  *lineWriter
	done chan struct{} // closed when the program has exited
	err  error         // its exit status, once done is closed
}

// lineWriter keeps a program's output and sends every complete line to lines.
type lineWriter struct {
	mu    sync.Mutex
	all   bytes.Buffer
	part  []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		line := string(w.part[:i])
		w.part = w.part[i+1:]
		select {
		case w.lines <- line:
		default: // nobody reads that far: the line stays in all
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// start runs name with args in dir (if not empty) until the test ends: then it gets
// SIGTERM and, if it has not exited 10 s later, SIGKILL.
func start(t *testing.T, dir string, env []string, name string, args ...string) *process {
	t.Helper()
	p := &process{
		cmd:  exec.Command(name, args...),
		out:  &lineWriter{lines: make(chan string, 1000)},
		done: make(chan struct{}),
	}
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t, syscall.SIGTERM)
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// stop sends sig and waits for the program to exit (killing it after 10 s).
func (p *process) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not exit 10 s after %v; killing it", p.cmd.Path, sig)
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// expect waits for an output line matching re and returns its submatches.
func (p *process) expect(t *testing.T, timeout time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line := <-p.out.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-p.done:
			// The last lines may still be in the channel.
			for {
				select {
				case line := <-p.out.lines:
					if m := re.FindStringSubmatch(line); m != nil {
						return m
					}
				default:
					t.Fatalf("%s exited (%v) before printing a line matching %q", p.cmd.Path, p.err, re)
				}
			}
		case <-deadline:
			t.Fatalf("%s printed no line matching %q within %v", p.cmd.Path, re, timeout)
		}
	}
}

// mosquittoPub publishes one QoS 1 message with the real mosquitto_pub.
func mosquittoPub(t *testing.T, addr, topic, payload string) {
	t.Helper()
	bin := arinatest.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", payload).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub -t %s -m %q: %v %s", topic, payload, err, out)
	}
}
