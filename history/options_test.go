package history_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/internal/optcheck"
)

// TestOptions_Validate: every option outside its range is reported at once, named by
// its configuration key; the window is checked against a valid resolution only.
func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	valid := history.Options{Resolution: history.DefaultResolution, Window: history.DefaultWindow, MaxSets: history.DefaultMaxSets}
	if err := valid.Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	for _, tc := range []struct {
		name   string
		o      history.Options
		fields []string
	}{
		{"ResolutionLow", history.Options{Resolution: time.Millisecond, Window: time.Hour, MaxSets: 1}, []string{"resolution"}},
		{"WindowBelowResolution", history.Options{Resolution: time.Minute, Window: time.Second, MaxSets: 1}, []string{"window"}},
		{"WindowTooManySteps", history.Options{Resolution: time.Second, Window: (history.MaxSteps + 1) * time.Second, MaxSets: 1}, []string{"window"}},
		{"MaxSetsHigh", history.Options{Resolution: time.Second, Window: time.Minute, MaxSets: history.MaxMaxSets + 1}, []string{"max_sets"}},
		{"Zero", history.Options{}, []string{"resolution", "max_sets"}},
	} {
		err := tc.o.Validate()
		if got := optcheck.Fields(err); !slices.Equal(got, tc.fields) || !errors.Is(err, optcheck.ErrOutOfRange) {
			t.Errorf("%s: Validate() = %v (fields %q), want %q out of range", tc.name, err, got, tc.fields)
		}
	}
}
