//go:build cgo

package daemon

// cgoEnabled: Pebble then allocates its memtables and block cache with C's allocator,
// outside the Go runtime's accounting (and its memory limit).
const cgoEnabled = true
