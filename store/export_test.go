package store

import (
	"math"

	"github.com/cockroachdb/pebble/v2"
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
