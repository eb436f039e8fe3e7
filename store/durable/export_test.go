package durable

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// DiskTombstones returns how many tombstone keys d's engine holds.
func (d *Store) DiskTombstones() (int, error) {
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
func (d *Store) Flush() error { return d.db.Flush() }

// StallEvents returns the engine event handlers d counts write stalls with.
func (d *Store) StallEvents() *pebble.EventListener { return d.events() }

// OpenTest opens a store whose engine uses fs (nil: the OS's), that
// folds its log once it holds foldBytes (0: as configured) and calls hook (if not nil)
// before and after each fold's commit.
func OpenTest(opts Options, fs vfs.FS, foldBytes int64, hook func(stage string)) (*Store, error) {
	opts.fs, opts.foldBytes, opts.foldHook = fs, foldBytes, hook
	return Open(opts)
}

// Fold folds d's whole log now. It must not run concurrently with Apply, nor with a
// background fold (tests use a fold threshold no batch reaches).
func (d *Store) Fold() error {
	_, _, err := d.foldAll()
	return err
}

// LogEntries returns how many log entries d's engine holds (not yet folded).
func (d *Store) LogEntries() (int, error) {
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
func (d *Store) RangeDeletions() (uint64, error) {
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
