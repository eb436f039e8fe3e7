package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// MustOpenPTY opens a pseudo-terminal pair, closed at cleanup; the test is skipped
// where there is none.
func MustOpenPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ctlErr error
	if err := rc.Control(func(fd uintptr) {
		if ctlErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ctlErr == nil {
			n, ctlErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ctlErr != nil {
		t.Skipf("no pseudo-terminal: %v %v", err, ctlErr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// promptWriter records the prompts and announces each one.
type promptWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	prompts chan string
}

func (w *promptWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if s := string(p); strings.HasSuffix(s, ": ") {
		w.prompts <- s
	}
	return len(p), nil
}

func lflag(t *testing.T, f *os.File) uint32 {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var tio *unix.Termios
	var ctlErr error
	if err := rc.Control(func(fd uintptr) { tio, ctlErr = unix.IoctlGetTermios(int(fd), unix.TCGETS) }); err != nil || ctlErr != nil {
		t.Fatal(err, ctlErr)
	}
	return tio.Lflag
}

// TestReadNewPassword_Terminal types passwords on a real pseudo-terminal: asked twice,
// never echoed, line editing applied, and the terminal restored afterwards.
func TestReadNewPassword_Terminal(t *testing.T) {
	tests := []struct {
		name   string
		typed  []string // what is typed after each prompt
		want   string
		errMsg string
	}{
		{"Same", []string{"hunter2\r", "hunter2\r"}, "hunter2", ""},
		{"Edited", []string{"hunter2\r", "hunx\x7fter\x15hunter2\n"}, "hunter2", ""},
		{"UTF8Backspace", []string{"pässwörd\r", "pässwörx\x7fd\r"}, "pässwörd", ""},
		{"Mismatch", []string{"hunter2\r", "hunter3\r"}, "", "do not match"},
		{"CtrlC", []string{"hunt\x03"}, "", "interrupted"},
		{"CtrlD", []string{"\x04"}, "", "interrupted"},
		{"Empty", []string{"\r", "\r"}, "", "empty password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			master, slave := MustOpenPTY(t)
			before := lflag(t, slave)
			if before&unix.ECHO == 0 {
				t.Fatal("a new terminal has no echo")
			}
			pw := &promptWriter{prompts: make(chan string, 4)}
			type result struct {
				pw  []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				p, err := readNewPassword(slave, pw)
				done <- result{p, err}
			}()
			var res result
			for i, typed := range tt.typed {
				select {
				case <-pw.prompts:
				case <-time.After(10 * time.Second):
					t.Fatalf("no prompt %d", i+1)
				}
				if _, err := master.WriteString(typed); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("readNewPassword did not return")
			}
			if tt.errMsg != "" {
				if res.err == nil || !strings.Contains(res.err.Error(), tt.errMsg) {
					t.Fatalf("error = %v, want one mentioning %q", res.err, tt.errMsg)
				}
			} else if res.err != nil || string(res.pw) != tt.want {
				t.Fatalf("read %q, %v; want %q", res.pw, res.err, tt.want)
			}
			if got := lflag(t, slave); got != before {
				t.Fatalf("terminal flags %#x after reading, want %#x restored", got, before)
			}
			if want := []string{"New password: \n", "Repeat password: \n"}[:len(tt.typed)]; pw.buf.String() != strings.Join(want, "") {
				t.Fatalf("prompts %q", pw.buf.String())
			}

			// Echo is back on: a marker typed now comes back, and nothing typed
			// before it did.
			if _, err := master.WriteString("marker\n"); err != nil {
				t.Fatal(err)
			}
			if err := master.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
				t.Fatal(err)
			}
			var echoed []byte
			buf := make([]byte, 256)
			for !bytes.Contains(echoed, []byte("marker")) {
				n, err := master.Read(buf)
				echoed = append(echoed, buf[:n]...)
				if err != nil {
					t.Fatalf("reading the echo: %v (got %q)", err, echoed)
				}
			}
			if before, _, _ := bytes.Cut(echoed, []byte("marker")); len(before) > 0 {
				t.Fatalf("the terminal echoed %q while a password was typed", before)
			}
		})
	}
}

// TestReadTTYLine_ReadError: a failing terminal read is returned.
func TestReadTTYLine_ReadError(t *testing.T) {
	if _, err := readTTYLine(errReader{}); !errors.Is(err, errRead) {
		t.Fatalf("readTTYLine error = %v", err)
	}
}
