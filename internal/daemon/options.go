package daemon

import (
	"fmt"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
	"github.com/arina-dev/arina/store"
)

// Valid ranges of the daemon's own options, as Validate checks them.
const (
	MinShutdownTimeout = time.Second
	MaxShutdownTimeout = time.Hour
	MinSyncInterval    = time.Millisecond
	MaxSyncInterval    = time.Minute
)

// Validate reports every problem of the daemon's own options at once (the shutdown
// bound and the durability: its mode, data directory and sync interval), each as an
// *optcheck.FieldError named by its configuration key (shutdown_timeout, durability,
// data_dir, sync_interval). The parts' options have their own Validate
// (broker.Options, api.Options, ingest.Options, history.Options, bridge.CheckUpstreams,
// redis.Options, sparkplug.Options). It checks options as a configuration sets them:
// a zero that Start replaces by its default is out of range here.
func (o Options) Validate() error {
	var errs optcheck.Errors
	errs.Duration("shutdown_timeout", o.ShutdownTimeout, MinShutdownTimeout, MaxShutdownTimeout, "1s to 1h")
	switch o.Durability {
	case store.DurabilitySync, store.DurabilityAsync:
		if o.Durable.Dir == "" {
			errs.Add("data_dir", o.Durable.Dir, fmt.Errorf("%w: a directory is required unless store.durability is none", optcheck.ErrOutOfRange))
		}
	case store.DurabilityNone:
	default:
		errs.Add("durability", o.Durability, fmt.Errorf("%w: sync, async, none", optcheck.ErrInvalidChoice))
	}
	errs.Duration("sync_interval", o.Durable.SyncInterval, MinSyncInterval, MaxSyncInterval, "1ms to 1m")
	return errs.Err()
}
