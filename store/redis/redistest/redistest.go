// Package redistest runs real redis-server processes for tests: a single server, a
// cluster of masters, or a sentinel watching a server, each on free loopback ports
// with its data in a temporary directory, stopped by the test's cleanup.
//
// When redis-server is not installed the test is skipped, or fails when the
// environment variable ARINA_REQUIRE_TOOLS is set (as CI does): see
// testutil.NeedProgram.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/testutil"
)

// RequireToolsEnv turns the skip for a missing redis-server into a failure.
const RequireToolsEnv = testutil.RequireToolsEnv

// StartTimeout bounds how long a server may take to answer PING after it starts.
const StartTimeout = 15 * time.Second

// NeedServer returns the path of redis-server, skipping the test when it is not
// installed (failing it when ARINA_REQUIRE_TOOLS is set).
func NeedServer(tb testing.TB) string {
	tb.Helper()
	return testutil.NeedProgram(tb, "redis-server", "redis-server")
}

// Server is one redis-server process. Its port and data directory stay the same
// across Stop and Restart, so a test can check what survives a restart.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	conf []string // before --port: a config file, if any
	args []string // after --port

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *bytes.Buffer // the process's output, for error messages
}

// Start starts redis-server on a free loopback port, with appendonly persistence in
// a temporary directory, and waits until it answers PING. Extra args are appended to
// the command line (for example "--maxmemory", "10mb"). The server is killed by
// tb.Cleanup.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return StartAt(tb, 0, args...)
}

// StartAt is Start on the given port, or on a free one if port is 0 (for a server
// that a client was told about before it started).
func StartAt(tb testing.TB, port int, args ...string) *Server {
	tb.Helper()
	bin := NeedServer(tb)
	dir := tb.TempDir()
	base := []string{
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "yes",
		"--logfile", "",
		"--daemonize", "no",
	}
	s := &Server{tb: tb, bin: bin, dir: dir, args: append(base, args...), port: port}
	tb.Cleanup(s.kill)
	start := s.startOnFreePort
	if port != 0 {
		start = s.start
	}
	if err := start(); err != nil {
		tb.Fatalf("redistest: starting redis-server: %v", err)
	}
	return s
}

// startOnFreePort starts the server on a free port. A port may be taken between our
// probe and the server's bind: then it tries another.
func (s *Server) startOnFreePort() error {
	var err error
	for range 5 {
		if s.port, err = FreePort(); err != nil {
			return err
		}
		if err = s.start(); err == nil {
			return nil
		}
	}
	return err
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Port returns the server's port.
func (s *Server) Port() int { return s.port }

// Dir returns the server's data directory.
func (s *Server) Dir() string { return s.dir }

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	args := append(append(append([]string(nil), s.conf...), "--port", strconv.Itoa(s.port)), s.args...)
	cmd := exec.Command(s.bin, args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out}, &lockedWriter{w: out}
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	if err := waitReady(s.Addr(), done); err != nil {
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w; output:\n%s", err, out)
	}
	s.cmd, s.done, s.out = cmd, done, out
	return nil
}

// waitReady polls addr with PING until it answers PONG, the process exits or
// StartTimeout passes.
func waitReady(addr string, exited <-chan struct{}) error {
	if err := poll(StartTimeout, exited, func() error { return Ping(addr) }); err != nil {
		return fmt.Errorf("redis-server on %s: %w", addr, err)
	}
	return nil
}

// errExited is returned by poll when the process it waits for exits.
var errExited = errors.New("process exited")

// poll calls fn until it returns nil, with a growing pause between calls (1ms to
// 50ms), and fails with fn's last error after timeout, or at once when exited (if not
// nil) is closed.
func poll(timeout time.Duration, exited <-chan struct{}, fn func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		t.Reset(wait)
		select {
		case <-exited:
			return fmt.Errorf("%w (last error: %w)", errExited, err)
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Ping sends PING to addr on a new connection and checks the answer.
func Ping(addr string) error {
	reply, err := Do(addr, "PING")
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	return nil
}

// Do sends one command to addr on a new connection and returns the reply's first
// line (without its type byte) for a simple reply, the payload of a bulk string, or
// the first line (with its type byte) of an array. An error reply is returned as an
// error, a nil reply as ErrNil.
func Do(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad reply %q", line)
		}
		if n < 0 {
			return "", ErrNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*', '_':
		if line == "*-1" || line == "_" {
			return "", ErrNil
		}
	}
	return line, nil
}

// ErrNil is returned by Do for a nil reply.
var ErrNil = errors.New("nil reply")

// Stop shuts the server down gracefully (SIGTERM: the append-only file is flushed)
// and waits for it to exit.
func (s *Server) Stop() {
	s.tb.Helper()
	s.signal(syscall.SIGTERM)
}

// Kill kills the server (SIGKILL: writes not yet fsynced may be lost) and waits
// for it to exit.
func (s *Server) Kill() {
	s.tb.Helper()
	s.signal(syscall.SIGKILL)
}

// Pause stops the server process (SIGSTOP): connections stay open, or are accepted by
// the kernel, but nothing answers, as with a hung server or a black-holed network.
func (s *Server) Pause() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	s.tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(StartTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts the server again after Stop or Kill, on the same port with the
// same data directory, and waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("redistest: restarting redis-server on %s: %v", s.Addr(), err)
	}
}

// Output returns what the server has logged so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

func (s *Server) kill() {
	s.signal(syscall.SIGKILL)
}

// lockedWriter serialises the process's stdout and stderr into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Servers []*Server
}

// Addrs returns the host:port of every node.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		addrs[i] = s.Addr()
	}
	return addrs
}

// StartCluster starts n masters, joins them, splits the 16384 slots evenly between
// them and waits until every node reports the cluster ok.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("redistest: a cluster needs at least one node, not %d", n)
	}
	c := &Cluster{}
	var buses []string
	for range n {
		bus, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		buses = append(buses, strconv.Itoa(bus))
		c.Servers = append(c.Servers, Start(tb,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "5000"))
	}
	first := c.Servers[0].Addr()
	for i, s := range c.Servers[1:] {
		if _, err := Do(first, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(s.Port()), buses[i+1]); err != nil {
			tb.Fatalf("redistest: CLUSTER MEET %s: %v", s.Addr(), err)
		}
	}
	const slots = 16384
	for i, s := range c.Servers {
		lo, hi := i*slots/n, (i+1)*slots/n-1
		if _, err := Do(s.Addr(), "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", s.Addr(), err)
		}
	}
	for _, s := range c.Servers {
		err := poll(StartTimeout, nil, func() error {
			info, err := Do(s.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r\n") {
				return fmt.Errorf("CLUSTER INFO on %s:\n%s", s.Addr(), info)
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("redistest: cluster not ok: %v", err)
		}
	}
	return c
}

// StartSentinel starts a sentinel watching master under the given name and waits
// until it knows the master's address. It returns the sentinel's server.
func StartSentinel(tb testing.TB, master *Server, name string) *Server {
	tb.Helper()
	NeedServer(tb)
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 5000\n", name, master.Port(), name)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatalf("redistest: writing %s: %v", conf, err)
	}
	s := &Server{tb: tb, bin: NeedServer(tb), dir: dir, conf: []string{conf},
		args: []string{"--sentinel", "--bind", "127.0.0.1", "--logfile", "", "--daemonize", "no"}}
	tb.Cleanup(s.kill)
	if err := s.startOnFreePort(); err != nil {
		tb.Fatalf("redistest: starting sentinel: %v", err)
	}
	err := poll(StartTimeout, nil, func() error {
		_, err := Do(s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
		return err
	})
	if err != nil {
		tb.Fatalf("redistest: sentinel does not know master %q: %v", name, err)
	}
	return s
}
