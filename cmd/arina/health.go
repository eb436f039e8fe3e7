package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/internal/config"
)

// newHealthCmd probes a running daemon, for container health checks that have no shell
// or curl: it exits 0 only when /healthz (or /readyz with --ready) answers 200.
func newHealthCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Probe a running daemon's /healthz (or /readyz); exit 0 only on 200",
		Long: `Health probes a running daemon's /healthz (or /readyz) and exits 0 only when it
answers 200: the container's health check, which needs no shell or curl.

Without --server it asks this configuration's own http.listen; with http.tls on, over
HTTPS, trusting exactly the certificate of http.tls.cert_file (so a certificate made out
to the site's name passes when probed at 127.0.0.1). With --server https://..., the
certificate is verified against --cafile (default: the system's CAs). /healthz and
/readyz need no token.`,
		Example: "  arina health\n" +
			"  arina health --ready --server 10.0.0.7:4000\n" +
			"  arina health --server https://arina.example:4000 --cafile ca.pem",
		Args: cobra.NoArgs,
	}
	fs := cmd.Flags()
	server := fs.String("server", "", "HTTP API host:port or URL, http:// or https:// (default: from http.listen)")
	api := addAPIFlags(fs, addTLSFlags(fs, false), false)
	ready := fs.Bool("ready", false, "probe /readyz (ready to serve) instead of /healthz (alive)")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		path := "/healthz"
		if *ready {
			path = "/readyz"
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), *timeout)
		defer cancel()
		ac, err := api.client(*server, cfg, getenv, cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		resp, body, err := ac.get(ctx, path, 4096)
		if err != nil {
			return fmt.Errorf("probing %s%s: %w", ac.base, path, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("probing %s: %w", path, ac.statusError(resp, body))
		}
		_, err = stdout.Write(body)
		return err
	}
	return cmd
}
