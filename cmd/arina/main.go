// Command arina is the Arina daemon and its command-line tools.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/internal/daemon"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "arina:", err)
		}
		os.Exit(1)
	}
}

// errReported is returned when the error was already written for the user.
var errReported = errors.New("reported")

// run executes the command line args. It returns when the command is done or, for
// serve, after ctx is cancelled and shutdown is complete.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	root := newRootCmd(stdout, stderr, getenv)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func newRootCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "arina",
		Short:         "Live reaction counts from MQTT and HTTP events",
		Long:          "Arina keeps, per (content, reaction), the set of users who added it and have not removed it,\nand answers counts live over HTTP. With no subcommand it runs `arina serve`.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", "", "configuration file (YAML); see configs/arina.example.yaml")

	serve := newServeCmd(stderr, getenv)
	root.AddCommand(serve, newCheckConfigCmd(stdout, getenv), newVersionCmd(stdout),
		newPubCmd(stdout, getenv), newCountsCmd(stdout, getenv), newBenchCmd(stdout, stderr, getenv),
		newWatchCmd(stdout, getenv), newHealthCmd(stdout, getenv), newPasswdCmd(), newTokenCmd())
	// Bare `arina` serves.
	root.Flags().AddFlagSet(serve.LocalFlags())
	root.RunE = serve.RunE
	return root
}

func newServeCmd(stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: MQTT broker, ingest writer and HTTP API",
		Args:  cobra.NoArgs,
	}
	addServeFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(cmd.Flags(), getenv)
		if err != nil {
			return err
		}
		log := newLogger(stderr, cfg.Log)
		b := currentBuild()
		log.Info("arina starting", "version", b.Version, "commit", b.Commit, "built", b.Date, "go", b.GoVersion)
		log.Debug("C allocator", "malloc_arenas", mallocArenas) // malloc_cgo.go
		raiseProcs(getenv, log)
		return serve(cmd.Context(), cfg, log)
	}
	return cmd
}

func addServeFlags(cmd *cobra.Command) {
	d := config.Default()
	fs := cmd.Flags()
	fs.String("mqtt-listen", d.MQTT.Listen, "MQTT TCP listen address (mqtt.listen)")
	fs.String("mqtt-topic-prefix", d.MQTT.TopicPrefix, "ingest topic prefix (mqtt.topic_prefix)")
	fs.String("http-listen", d.HTTP.Listen, "HTTP listen address (http.listen)")
	fs.String("data-dir", d.Store.DataDir, "data directory (store.data_dir)")
	fs.String("durability", d.Store.Durability, "sync, async or none (store.durability)")
	fs.String("log-level", d.Log.Level, "log level: debug, info, warn, error (log.level)")
	fs.String("log-format", d.Log.Format, "log format: text, json (log.format)")
}

func newLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	level, _ := config.ParseLevel(c.Level) // validated
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the daemon until ctx is cancelled, then shuts it down within the
// configured timeout. A second signal during shutdown ends the process at once.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	// SIGHUP reloads the users and tokens files without dropping connections. Caught
	// from before the start, so a reload that comes early cannot end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	opts, err := cfg.DaemonOptions(log)
	if err != nil {
		return err
	}
	opts.Build = currentBuild()
	if opts.MemoryLimit > 0 {
		debug.SetMemoryLimit(daemon.RuntimeMemoryLimit(opts.MemoryLimit))
	}
	setGCPercent(os.Getenv, log)
	d, err := daemon.Start(opts, log)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" { // with GOGC set the collector is the operator's
		idle, stopIdle := context.WithCancel(ctx)
		idleDone := make(chan struct{})
		r := defaultIdleReturn
		r.before = func(ctx context.Context) {
			start := time.Now()
			if n, err := d.CompactIndex(ctx); err != nil {
				log.Debug("ingest quiet: compacting the index stopped", "err", err)
			} else if n > 0 {
				log.Debug("ingest quiet: index compacted", "sets", n, "took", time.Since(start))
			}
		}
		go func() {
			defer close(idleDone)
			r.run(idle, func(free uint64) {
				log.Debug("ingest quiet: free heap returned to the system", "bytes", free)
			})
		}()
		defer func() { stopIdle(); <-idleDone }()
	}
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-hup:
			if err := d.Reload(); err != nil {
				log.Error("reload failed; the previous files stay in force", "err", err)
			}
		}
	}
	log.Info("shutting down: no new publishes or requests; applying what was accepted; a second signal exits at once",
		"timeout", cfg.Ingest.ShutdownTimeout)
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)

	sctx, cancel := context.WithTimeout(context.Background(), cfg.Ingest.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Close(sctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("shutdown incomplete", "err", err)
			return errReported
		}
		return nil
	case <-second:
		log.Error("second signal: exiting at once", "queued_events_abandoned", d.Writer.QueueLen())
		return errReported
	}
}

func newCheckConfigCmd(stdout io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Validate the configuration (file, environment, flags) and exit 0 or 1",
		Args:  cobra.NoArgs,
	}
	addServeFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, err := config.Load(cmd.Flags(), getenv); err != nil {
			return fmt.Errorf("configuration is invalid:\n%w", err)
		}
		fmt.Fprintln(stdout, "configuration ok")
		return nil
	}
	return cmd
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(stdout, "arina", buildLine(currentBuild()))
			return nil
		},
	}
}
