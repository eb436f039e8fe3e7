package api_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/internal/optcheck"
)

// TestOptions_Validate: every option outside its range is reported at once, named by
// its configuration key.
func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	valid := func() api.Options {
		return api.Options{MaxBodyBytes: api.DefaultMaxBodyBytes, MaxHeaderBytes: 64 << 10, ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	for _, tc := range []struct {
		field string
		set   func(o *api.Options)
	}{
		{"max_body_bytes", func(o *api.Options) { o.MaxBodyBytes = api.MaxMaxBodyBytes + 1 }},
		{"max_header_bytes", func(o *api.Options) { o.MaxHeaderBytes = api.MinMaxHeaderBytes - 1 }},
		{"read_header_timeout", func(o *api.Options) { o.ReadHeaderTimeout = 99 * time.Millisecond }},
		{"read_timeout", func(o *api.Options) { o.ReadTimeout = time.Hour + 1 }},
		{"write_timeout", func(o *api.Options) { o.WriteTimeout = -time.Second }},
		{"idle_timeout", func(o *api.Options) { o.IdleTimeout = 0 }},
	} {
		o := valid()
		tc.set(&o)
		err := o.Validate()
		if got := optcheck.Fields(err); !slices.Equal(got, []string{tc.field}) || !errors.Is(err, optcheck.ErrOutOfRange) {
			t.Errorf("%s: Validate() = %v (fields %q), want only %s out of range", tc.field, err, got, tc.field)
		}
	}
	got := optcheck.Fields(api.Options{}.Validate())
	if want := []string{"max_header_bytes", "read_header_timeout", "read_timeout", "write_timeout", "idle_timeout", "max_body_bytes"}; !slices.Equal(got, want) {
		t.Fatalf("zero options: fields %q, want %q", got, want)
	}
}
