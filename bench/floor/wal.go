package main

import (
	"fmt"
	"os"
	"syscall"
)

// walSize is the size of the log file, written round.
const walSize = 64 << 20

// A handoff is what one connection gives the committer: the records of the packets
// one read brought in, and where it waits for them to be on disk.
type handoff struct {
	recs []byte
	done chan error // buffered (1): the committer never waits for the connection
}

// wal is the durable floor's log: one committer goroutine group-commits the handoffs
// of every connection.
type wal struct {
	f    *os.File
	size int64
	off  int64
	in   chan *handoff
	buf  []byte
	jobs []*handoff
}

// openWAL creates the log file at path, size bytes written with zeros and synced, so
// that later writes overwrite allocated blocks.
func openWAL(path string, size int64) (*wal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero[:min(int64(len(zero)), size-off)], off); err != nil {
			f.Close()
			return nil, fmt.Errorf("preallocating %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return &wal{f: f, size: size, in: make(chan *handoff, 4096)}, nil
}

// commit hands h to the committer and waits until its records are on disk.
func (l *wal) commit(h *handoff) error {
	l.in <- h
	return <-h.done
}

// run is the committer: it takes the first handoff waiting and every other one queued
// behind it, writes their records in one write, fdatasyncs, and releases them.
func (l *wal) run() {
	fd := int(l.f.Fd())
	for h := range l.in {
		l.jobs = append(l.jobs[:0], h)
	more:
		for {
			select {
			case h := <-l.in:
				l.jobs = append(l.jobs, h)
			default:
				break more
			}
		}
		l.buf = l.buf[:0]
		for _, h := range l.jobs {
			l.buf = append(l.buf, h.recs...)
		}
		if l.off+int64(len(l.buf)) > l.size {
			l.off = 0
		}
		_, err := l.f.WriteAt(l.buf, l.off)
		l.off += int64(len(l.buf))
		if err == nil {
			err = syscall.Fdatasync(fd)
		}
		for _, h := range l.jobs {
			h.done <- err
		}
		clear(l.jobs)
	}
}
