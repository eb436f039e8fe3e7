//go:build !cgo

package daemon

// cgoEnabled: without cgo Pebble's memtables and block cache are Go memory, which the
// runtime's memory limit counts.
const cgoEnabled = false
