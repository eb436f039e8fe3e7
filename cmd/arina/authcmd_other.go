//go:build !linux

package main

import (
	"errors"
	"io"
	"os"
)

// isTerminal reports whether f may be a terminal: any character device. (Arina reads
// terminals without echo on Linux only.)
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// readPasswordTTY refuses: turning terminal echo off is implemented for Linux only
// (golang.org/x/term is not a dependency). Pipe the password on standard input.
func readPasswordTTY(*os.File, io.Writer, string) ([]byte, error) {
	return nil, errors.New("reading a password from a terminal without echo is supported on Linux only; " +
		"pipe it on standard input instead, e.g. arina passwd < file")
}
