// Package durable is the Store kept in a data directory: an embedded Pebble database
// holding the sets, with a store.Memory holding them all for reads. Every Apply batch
// is one engine write (one log entry, folded into the keys in the background), fsynced
// before Apply returns in sync mode. See docs/DURABILITY.md.
package durable
