package testutil

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a real mosquitto broker run by a test: on a free loopback port,
// anonymous, with persistence in a temporary directory so that sessions and queued
// messages survive Stop and Start.
type Mosquitto struct {
	tb   testing.TB
	bin  string
	Addr string // host:port
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs chan struct{} // closed when the log reader of cmd returns
}

// StartMosquitto starts mosquitto (skipping the test, or failing it under
// ARINA_REQUIRE_TOOLS, when it is not installed). extraConf lines are appended to its
// configuration. It is killed when the test ends.
func StartMosquitto(tb testing.TB, extraConf ...string) *Mosquitto {
	tb.Helper()
	bin := NeedProgram(tb, "mosquitto", "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := tb.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	// "user root": run as root, mosquitto would drop to the mosquitto user, which cannot
	// write its persistence file in the test's directory (no effect when not root).
	text := fmt.Sprintf("user root\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\n", port, dir)
	for _, l := range extraConf {
		text += l + "\n"
	}
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	m := &Mosquitto{tb: tb, bin: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), conf: conf}
	tb.Cleanup(func() { m.stop(syscall.SIGKILL) })
	m.Start()
	return m
}

// Start starts the broker (again) and waits until it accepts connections.
func (m *Mosquitto) Start() {
	m.tb.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		m.tb.Fatal("mosquitto already running")
	}
	cmd := exec.Command(m.bin, "-c", m.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		m.tb.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		m.tb.Fatalf("starting mosquitto: %v", err)
	}
	logs := make(chan struct{})
	go func() {
		defer close(logs)
		for s := bufio.NewScanner(stderr); s.Scan(); {
			m.tb.Log("mosquitto:", s.Text())
		}
	}()
	m.cmd, m.logs = cmd, logs
	WaitFor(m.tb, 10*time.Second, func() error {
		c, err := net.Dial("tcp", m.Addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Stop stops the broker with SIGTERM, as an operator's restart does: mosquitto writes
// its persistence file (sessions, queued messages) before it exits.
func (m *Mosquitto) Stop() { m.stop(syscall.SIGTERM) }

// Kill stops the broker with SIGKILL: what it had not saved is lost.
func (m *Mosquitto) Kill() { m.stop(syscall.SIGKILL) }

func (m *Mosquitto) stop(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(sig)
	// mosquitto 2.0 installs its SIGTERM handler and only then sets its run flag: a
	// SIGTERM that comes in between, right after the listener opened, is lost. So
	// the signal is sent again until it exits, and SIGKILL follows after 10s.
	resend := time.NewTicker(500 * time.Millisecond)
	defer resend.Stop()
	kill := time.Now().Add(10 * time.Second)
	for exited := false; !exited; {
		select {
		case <-m.logs: // closed when the process has exited
			exited = true
		case now := <-resend.C:
			if sig != syscall.SIGKILL && now.After(kill) {
				m.tb.Logf("mosquitto still running 10s after %v: killing it", sig)
				sig = syscall.SIGKILL
			}
			_ = m.cmd.Process.Signal(sig)
		}
	}
	_ = m.cmd.Wait()
	m.cmd = nil
}
