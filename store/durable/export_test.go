package store

import (
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Tombstones returns how many remembered TS of users not in their set m holds.
func (m *Memory) Tombstones() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.tombstones(math.MaxInt64))
}

// DiskTombstones returns how many tombstone keys d's engine holds.
func (d *Durable) DiskTombstones() (int, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixTomb}, UpperBound: []byte{prefixTomb + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// Flush flushes d's engine's memtable to a level 0 table.
func (d *Durable) Flush() error { return d.db.Flush() }

// StallEvents returns the engine event handlers d counts write stalls with.
func (d *Durable) StallEvents() *pebble.EventListener { return d.events() }

// OpenDurableTest opens a durable store whose engine uses fs (nil: the OS's), that
// folds its log once it holds foldBytes (0: as configured) and calls hook (if not nil)
// before and after each fold's commit.
func OpenDurableTest(opts DurableOptions, fs vfs.FS, foldBytes int64, hook func(stage string)) (*Durable, error) {
	opts.fs, opts.foldBytes, opts.foldHook = fs, foldBytes, hook
	return OpenDurable(opts)
}

// Fold folds d's whole log now. It must not run concurrently with Apply, nor with a
// background fold (tests use a fold threshold no batch reaches).
func (d *Durable) Fold() error {
	_, _, err := d.foldAll()
	return err
}

// LogEntries returns how many log entries d's engine holds (not yet folded).
func (d *Durable) LogEntries() (int, error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixLog}, UpperBound: []byte{prefixLog + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// RangeDeletions flushes d's engine and returns how many range deletions its tables
// hold.
func (d *Durable) RangeDeletions() (uint64, error) {
	if err := d.db.Flush(); err != nil {
		return 0, err
	}
	levels, err := d.db.SSTables(pebble.WithProperties())
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, tables := range levels {
		for _, t := range tables {
			n += t.Properties.NumRangeDeletions
		}
	}
	return n, nil
}
