package history

import (
	"fmt"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
)

// Valid ranges of the options, as Validate checks them (the window is 1 to MaxSteps
// resolutions).
const (
	MinResolution = 100 * time.Millisecond
	MaxResolution = time.Hour
	MaxMaxSets    = 10_000_000
)

// Validate reports every option outside its range at once, each as an
// *optcheck.FieldError named by its configuration key (resolution, window,
// max_sets). It checks options as a configuration sets them, every field explicit:
// a zero that New replaces by its default is out of range here.
func (o Options) Validate() error {
	var errs optcheck.Errors
	if o.Resolution < MinResolution || o.Resolution > MaxResolution {
		errs.Add("resolution", o.Resolution, fmt.Errorf("%w: want 100ms to 1h", optcheck.ErrOutOfRange))
	} else if steps := o.Window / o.Resolution; o.Window < o.Resolution || steps > MaxSteps {
		errs.Add("window", o.Window, fmt.Errorf("%w: want 1 to %d times history.resolution (%v)", optcheck.ErrOutOfRange, MaxSteps, o.Resolution))
	}
	if o.MaxSets < 1 || o.MaxSets > MaxMaxSets {
		errs.Add("max_sets", o.MaxSets, fmt.Errorf("%w: want 1 to %d", optcheck.ErrOutOfRange, MaxMaxSets))
	}
	return errs.Err()
}
