package ingest

import (
	"fmt"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
)

// Valid ranges of the options, as Validate checks them.
const (
	MaxQueueSize      = 1 << 24
	MaxBatchSize      = 1 << 16
	MinEnqueueTimeout = time.Millisecond
	MaxEnqueueTimeout = time.Minute
	MaxLinger         = 100 * time.Millisecond
	MinTombstoneTTL   = time.Minute
	MaxTombstoneTTL   = 365 * 24 * time.Hour
)

// Validate reports every option outside its range at once, each as an
// *optcheck.FieldError named by its configuration key (queue_size, tombstone_ttl). It
// checks options as a configuration sets them, every limit explicit: a zero that
// NewWriter replaces by its default is out of range here.
func (o Options) Validate() error {
	var errs optcheck.Errors
	if o.QueueSize < 1 || o.QueueSize > MaxQueueSize {
		errs.Add("queue_size", o.QueueSize, fmt.Errorf("%w: want 1 to %d", optcheck.ErrOutOfRange, MaxQueueSize))
	}
	if o.BatchSize < 1 || o.BatchSize > MaxBatchSize {
		errs.Add("batch_size", o.BatchSize, fmt.Errorf("%w: want 1 to %d", optcheck.ErrOutOfRange, MaxBatchSize))
	}
	errs.Duration("enqueue_timeout", o.EnqueueTimeout, MinEnqueueTimeout, MaxEnqueueTimeout, "1ms to 1m")
	errs.Duration("linger", o.Linger, 0, MaxLinger, "0 to 100ms")
	errs.Duration("tombstone_ttl", o.TombstoneTTL, MinTombstoneTTL, MaxTombstoneTTL, "1m to 8760h")
	return errs.Err()
}
