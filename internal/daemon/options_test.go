package daemon

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
)

// TestOptions_Validate: the daemon's own options (shutdown bound, durability) are
// checked as the configuration sets them; sync and async need a directory, none does
// not.
func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	valid := func() Options {
		return Options{ShutdownTimeout: 30 * time.Second, Durability: store.DurabilitySync,
			Durable: durable.Options{Dir: "data", SyncInterval: 100 * time.Millisecond}}
	}
	for _, tc := range []struct {
		name   string
		set    func(o *Options)
		fields []string
		is     error
	}{
		{"Valid", func(o *Options) {}, nil, nil},
		{"NoneNeedsNoDir", func(o *Options) { o.Durability, o.Durable.Dir = store.DurabilityNone, "" }, nil, nil},
		{"SyncNeedsDir", func(o *Options) { o.Durable.Dir = "" }, []string{"data_dir"}, optcheck.ErrOutOfRange},
		{"AsyncNeedsDir", func(o *Options) { o.Durability, o.Durable.Dir = store.DurabilityAsync, "" }, []string{"data_dir"}, optcheck.ErrOutOfRange},
		{"UnknownMode", func(o *Options) { o.Durability = "fsync" }, []string{"durability"}, optcheck.ErrInvalidChoice},
		{"SyncIntervalHigh", func(o *Options) { o.Durable.SyncInterval = time.Minute + 1 }, []string{"sync_interval"}, optcheck.ErrOutOfRange},
		{"ShutdownLow", func(o *Options) { o.ShutdownTimeout = time.Second - 1 }, []string{"shutdown_timeout"}, optcheck.ErrOutOfRange},
		{"Zero", func(o *Options) { *o = Options{} }, []string{"shutdown_timeout", "durability", "sync_interval"}, optcheck.ErrOutOfRange},
	} {
		o := valid()
		tc.set(&o)
		err := o.Validate()
		if got := optcheck.Fields(err); !slices.Equal(got, tc.fields) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: Validate() = %v (fields %q), want %q wrapping %v", tc.name, err, got, tc.fields, tc.is)
		}
	}
}
