package main

import (
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/config"
)

func TestHistoryConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*config.HistoryConfig)
	}{
		{"Defaults", "", func(*config.HistoryConfig) {}},
		{"Boundaries", "", func(h *config.HistoryConfig) {
			h.Resolution, h.Window, h.MaxSets = 100*time.Millisecond, 4096*100*time.Millisecond, 1
		}},
		{"Disabled", "", func(h *config.HistoryConfig) { h.Enabled = false }},
		{"ResolutionLow", "history.resolution", func(h *config.HistoryConfig) { h.Resolution = 99 * time.Millisecond }},
		{"ResolutionHigh", "history.resolution", func(h *config.HistoryConfig) { h.Resolution = time.Hour + 1 }},
		{"WindowBelowResolution", "history.window", func(h *config.HistoryConfig) { h.Window = 5 * time.Second }},
		{"WindowTooManySteps", "history.window", func(h *config.HistoryConfig) { h.Resolution, h.Window = time.Second, 4097*time.Second }},
		{"MaxSetsZero", "history.max_sets", func(h *config.HistoryConfig) { h.MaxSets = 0 }},
		{"MaxSetsHigh", "history.max_sets", func(h *config.HistoryConfig) { h.MaxSets = 10_000_001 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.mutate(&c.History)
			wantValidate(t, c, tc.key, config.ErrOutOfRange)
		})
	}
}

func TestHistoryConfig_Env(t *testing.T) {
	t.Parallel()
	o := mustEnvOptions(t, map[string]string{"ARINA_HISTORY_WINDOW": "5m", "ARINA_HISTORY_RESOLUTION": "1s",
		"ARINA_HISTORY_MAX_SETS": "7", "ARINA_STORE_DURABILITY": "none"})
	if o.NoHistory || o.History.Window != 5*time.Minute || o.History.Resolution != time.Second || o.History.MaxSets != 7 {
		t.Fatalf("daemon history options %+v (off %v), want 1s over 5m, 7 sets", o.History, o.NoHistory)
	}
	env := mapEnv(map[string]string{"ARINA_HISTORY_ENABLED": "false", "ARINA_HISTORY_WINDOW": "1s"})
	if _, err := config.Load(MustFlags(t, env, "check-config"), env); err == nil || !strings.Contains(err.Error(), "history.window") {
		t.Fatalf("a window below the resolution: %v, want a history.window error", err)
	}
}
