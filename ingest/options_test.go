package ingest_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/optcheck"
)

// TestOptions_Validate: every option outside its range is reported at once, named by
// its configuration key.
func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	valid := func() ingest.Options {
		return ingest.Options{QueueSize: ingest.DefaultQueueSize, BatchSize: ingest.DefaultBatchSize,
			EnqueueTimeout: ingest.DefaultEnqueueTimeout, TombstoneTTL: 24 * time.Hour}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	for _, tc := range []struct {
		field string
		set   func(o *ingest.Options)
	}{
		{"queue_size", func(o *ingest.Options) { o.QueueSize = ingest.MaxQueueSize + 1 }},
		{"batch_size", func(o *ingest.Options) { o.BatchSize = ingest.MaxBatchSize + 1 }},
		{"enqueue_timeout", func(o *ingest.Options) { o.EnqueueTimeout = time.Minute + 1 }},
		{"linger", func(o *ingest.Options) { o.Linger = ingest.MaxLinger + 1 }},
		{"linger", func(o *ingest.Options) { o.Linger = -1 }},
		{"tombstone_ttl", func(o *ingest.Options) { o.TombstoneTTL = time.Second }},
	} {
		o := valid()
		tc.set(&o)
		err := o.Validate()
		if got := optcheck.Fields(err); !slices.Equal(got, []string{tc.field}) || !errors.Is(err, optcheck.ErrOutOfRange) {
			t.Errorf("%s: Validate() = %v (fields %q), want only %s out of range", tc.field, err, got, tc.field)
		}
	}
	got := optcheck.Fields(ingest.Options{}.Validate())
	if want := []string{"queue_size", "batch_size", "enqueue_timeout", "tombstone_ttl"}; !slices.Equal(got, want) {
		t.Fatalf("zero options: fields %q, want %q", got, want)
	}
}
