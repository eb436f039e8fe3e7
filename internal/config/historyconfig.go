package config

import (
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

// apply sets the daemon's history options.
func (h HistoryConfig) apply(o *daemon.Options) {
	o.NoHistory = !h.Enabled
	o.History = history.Options{Resolution: h.Resolution, Window: h.Window, MaxSets: h.MaxSets}
}
