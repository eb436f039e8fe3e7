package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// newHealthCmd probes a running daemon, for container health checks that have no shell
// or curl: it exits 0 only when /healthz (or /readyz with --ready) answers 200.
func newHealthCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe a running daemon's /healthz (or /readyz); exit 0 only on 200",
		Example: "  arina health\n" +
			"  arina health --ready --server 10.0.0.7:4000",
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	server := fs.String("server", "", "HTTP API host:port or URL (default: from http.listen)")
	ready := fs.Bool("ready", false, "probe /readyz (ready to serve) instead of /healthz (alive)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		path := "/healthz"
		if *ready {
			path = "/readyz"
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), *timeout)
		defer cancel()
		u := apiBaseURL(*server, cfg) + path
		resp, body, err := apiGet(ctx, u, 4096)
		if err != nil {
			return fmt.Errorf("probing %s: %w", u, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", u, resp.Status, body)
		}
		_, err = stdout.Write(body)
		return err
	}
	return cmd
}
