package api

import (
	"fmt"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
)

// Valid ranges of the options, as Validate checks them.
const (
	MinMaxBodyBytes   = 1024
	MaxMaxBodyBytes   = 64 << 20
	MinMaxHeaderBytes = 4096
	MaxMaxHeaderBytes = 1 << 20
	MinTimeout        = 100 * time.Millisecond // each of the four client timeouts
	MaxTimeout        = time.Hour
)

// Validate reports every option outside its range at once, each as an
// *optcheck.FieldError named by its configuration key (max_body_bytes). It checks
// options as a configuration sets them, every limit explicit: a zero that New
// replaces by its default is out of range here. The listen address, tokens and TLS
// are the caller's (internal/config).
func (o Options) Validate() error {
	var errs optcheck.Errors
	errs.Range("max_header_bytes", float64(o.MaxHeaderBytes), MinMaxHeaderBytes, MaxMaxHeaderBytes)
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"read_header_timeout", o.ReadHeaderTimeout}, {"read_timeout", o.ReadTimeout},
		{"write_timeout", o.WriteTimeout}, {"idle_timeout", o.IdleTimeout}} {
		errs.Duration(d.field, d.v, MinTimeout, MaxTimeout, "100ms to 1h")
	}
	if o.MaxBodyBytes < MinMaxBodyBytes || o.MaxBodyBytes > MaxMaxBodyBytes {
		errs.Add("max_body_bytes", o.MaxBodyBytes, fmt.Errorf("%w: want %d to %d bytes", optcheck.ErrOutOfRange, MinMaxBodyBytes, MaxMaxBodyBytes))
	}
	return errs.Err()
}
