package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/arina-dev/arina/internal/daemon"
)

// Set at build time by deploy/release (and the Dockerfile) with
//
//	-ldflags "-X main.version=v0.3.0 -X main.commit=<sha> -X main.date=<RFC 3339>"
//
// A plain `go build` or `go run` leaves them empty; the module's build information
// (the VCS revision and time Go records) fills in what it can.
var version, commit, date string

// currentBuild says which build this binary is.
func currentBuild() daemon.Build {
	b := daemon.Build{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" {
			b.Version = bi.Main.Version // "(devel)" for a build from a checkout
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && b.Commit == "":
				b.Commit = s.Value
			case s.Key == "vcs.time" && b.Date == "":
				b.Date = s.Value
			case s.Key == "vcs.modified" && s.Value == "true" && commit == "":
				b.Modified = true
			}
		}
	}
	if b.Version == "" {
		b.Version = "(unknown)"
	}
	if len(b.Commit) > 12 {
		b.Commit = b.Commit[:12]
	}
	if t, err := time.Parse(time.RFC3339, b.Date); err == nil {
		b.Date = t.UTC().Format(time.RFC3339)
	}
	return b
}

// buildLine is `arina version`'s line: version, commit, build date, Go version.
func buildLine(b daemon.Build) string {
	parts := []string{b.Version}
	if b.Commit != "" {
		c := b.Commit
		if b.Modified {
			c += "-dirty"
		}
		parts = append(parts, "commit "+c)
	}
	if b.Date != "" {
		parts = append(parts, "built "+b.Date)
	}
	return strings.Join(append(parts, b.GoVersion), ", ")
}
