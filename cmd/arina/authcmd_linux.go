package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	isTTY := false
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
			isTTY = err == nil
		})
	}
	return isTTY
}

// readPasswordTTY writes prompt, then reads one line from the terminal f with echo
// off, and restores the terminal. The terminal is in non-canonical mode meanwhile, so
// this function does the line editing: Enter ends the line, Backspace and Ctrl-U
// erase, Ctrl-C and Ctrl-D (on an empty line) give up. Signals are off too, so Ctrl-C
// cannot leave the terminal without echo.
func readPasswordTTY(f *os.File, prompt io.Writer, msg string) ([]byte, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var old *unix.Termios
	var ctlErr error
	if err := rc.Control(func(fd uintptr) {
		old, ctlErr = unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if ctlErr != nil {
			return
		}
		t := *old
		t.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Iflag |= unix.ICRNL
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		ctlErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, &t)
	}); err != nil {
		return nil, err
	}
	if ctlErr != nil {
		return nil, fmt.Errorf("turning terminal echo off: %w", ctlErr)
	}
	defer func() {
		_ = rc.Control(func(fd uintptr) { _ = unix.IoctlSetTermios(int(fd), unix.TCSETS, old) })
		fmt.Fprintln(prompt) // the Enter the user typed was not echoed
	}()
	fmt.Fprint(prompt, msg)
	return readTTYLine(f)
}

// errInterrupted is returned when the user gives up typing a password.
var errInterrupted = errors.New("interrupted")

// readTTYLine reads bytes up to Enter, applying Backspace (DEL or BS) and Ctrl-U.
func readTTYLine(r io.Reader) ([]byte, error) {
	var line []byte
	var b [1]byte
	for {
		n, err := r.Read(b[:])
		if n == 0 {
			if err == nil {
				continue
			}
			if errors.Is(err, io.EOF) && len(line) > 0 {
				return line, nil
			}
			return nil, err
		}
		switch c := b[0]; c {
		case '\n', '\r':
			return line, nil
		case 0x03: // Ctrl-C
			clear(line)
			return nil, errInterrupted
		case 0x04: // Ctrl-D
			if len(line) == 0 {
				return nil, errInterrupted
			}
		case 0x7f, 0x08: // Backspace: drop the last UTF-8 character
			for len(line) > 0 {
				last := line[len(line)-1]
				line = line[:len(line)-1]
				if last&0xC0 != 0x80 {
					break
				}
			}
		case 0x15: // Ctrl-U
			clear(line)
			line = line[:0]
		default:
			if len(line) >= maxPasswordInput {
				clear(line)
				return nil, errPasswordTooLong
			}
			line = append(line, c)
		}
	}
}
