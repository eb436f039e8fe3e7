package config

import (
	"fmt"
	"time"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/internal/daemon"
)

// HistoryConfig is the history section: the recent past of the counts kept in memory
// for the page's sparklines and activity chart (GET .../history, /api/v1/activity).
type HistoryConfig struct {
	Enabled    bool          `mapstructure:"enabled"`
	Resolution time.Duration `mapstructure:"resolution"`
	Window     time.Duration `mapstructure:"window"`
	MaxSets    int           `mapstructure:"max_sets"`
}

func defaultHistory() HistoryConfig {
	return HistoryConfig{Enabled: true, Resolution: history.DefaultResolution, Window: history.DefaultWindow,
		MaxSets: history.DefaultMaxSets}
}

// validate reports the problems of the history section through bad.
func (h HistoryConfig) validate(bad func(key string, v any, err error)) {
	if h.Resolution < 100*time.Millisecond || h.Resolution > time.Hour {
		bad("history.resolution", h.Resolution, fmt.Errorf("%w: want 100ms to 1h", ErrOutOfRange))
	} else if steps := h.Window / h.Resolution; h.Window < h.Resolution || steps > history.MaxSteps {
		bad("history.window", h.Window, fmt.Errorf("%w: want 1 to %d times history.resolution (%v)", ErrOutOfRange, history.MaxSteps, h.Resolution))
	}
	if h.MaxSets < 1 || h.MaxSets > 10_000_000 {
		bad("history.max_sets", h.MaxSets, fmt.Errorf("%w: want 1 to 10000000", ErrOutOfRange))
	}
}

// apply sets the daemon's history options.
func (h HistoryConfig) apply(o *daemon.Options) {
	o.NoHistory = !h.Enabled
	o.History = history.Options{Resolution: h.Resolution, Window: h.Window, MaxSets: h.MaxSets}
}
