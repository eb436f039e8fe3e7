package config

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/arina-dev/arina/internal/daemon"
)

// MemoryConfig is the memory section.
type MemoryConfig struct {
	// Limit is the Go runtime's soft memory limit: a size ("2GiB", "512MiB", "800MB"),
	// "auto" (the default: daemon.CgroupShare of the container's memory limit when one
	// is set, else none, or GOMEMLIMIT when that is set) or "none".
	Limit string `mapstructure:"limit"`
}

// Values of memory.limit besides sizes.
const (
	MemoryLimitAuto = "auto"
	MemoryLimitNone = "none"
	minMemoryLimit  = 32 << 20
)

// parseMemoryLimit returns the limit memory.limit sets in bytes: -1 for auto, 0 for
// none.
func parseMemoryLimit(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case MemoryLimitAuto, "":
		return -1, nil
	case MemoryLimitNone, "off", "0":
		return 0, nil
	}
	n, err := daemon.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %v, or auto or none", ErrInvalidChoice, err)
	}
	if n < minMemoryLimit {
		return 0, fmt.Errorf("%w: want at least 32MiB (or none)", ErrOutOfRange)
	}
	return n, nil
}

// cgroupRoot is where memoryLimit looks for /proc and /sys; tests point it elsewhere.
var cgroupRoot = "/"

// memoryLimit resolves memory.limit (validated) to bytes, 0 for none, and logs what
// it decided and why.
func (c *Config) memoryLimit(log *slog.Logger) int64 {
	n, _ := parseMemoryLimit(c.Memory.Limit)
	switch {
	case n > 0:
		log.Info("memory limit", "limit", daemon.FormatSize(n), "from", "memory.limit")
		return n
	case n == 0:
		return 0
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		// The runtime read it at start; report it as it is.
		if cur := debug.SetMemoryLimit(-1); cur > 0 && cur < 1<<62 {
			log.Info("memory limit", "limit", daemon.FormatSize(cur), "from", "GOMEMLIMIT")
			return cur
		}
		return 0
	}
	if max, ok := daemon.CgroupMemoryMax(cgroupRoot); ok {
		n := int64(daemon.CgroupShare * float64(max))
		log.Info("memory limit", "limit", daemon.FormatSize(n), "from", fmt.Sprintf("%.0f%% of the container's %s", 100*daemon.CgroupShare, daemon.FormatSize(max)))
		return n
	}
	return 0
}
