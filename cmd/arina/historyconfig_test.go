package main

import (
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/config"
)

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
