// Package daemon assembles Arina's parts (store, ingest writer, MQTT broker, HTTP API)
// into one running daemon, and shuts them down in order. cmd/arina and the end-to-end
// tests both use it. It is the product's wiring, which no other module should build on,
// hence internal/ (docs/ARCHITECTURE.md, Rooms, says why not a top-level package or
// one under cmd/).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/bridge"
	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/redis"
)

// Options configure a daemon; each part fills its own defaults.
type Options struct {
	MQTT            broker.Options
	HTTP            api.Options // Checks, Gatherer and Registerer are set by Start
	Ingest          ingest.Options
	ShutdownTimeout time.Duration // bound on Close when its ctx has no deadline; default 30s

	// Durability is "sync", "async" or "none" (memory only, the default here).
	Durability string
	Durable    durable.Options // data directory and sync settings for sync/async

	// Store, if not nil, is used instead of opening one. The daemon closes it.
	Store store.Store

	// Upstreams are remote brokers to take events from (the bridge); none by default.
	Upstreams []bridge.Upstream

	// Reloaders re-read files on Reload (SIGHUP): users, tokens, certificates.
	Reloaders []func() error

	// Redis, if set, makes the store a Redis one shared by several nodes (Durability
	// and Durable are then not used). Its Logger and StartUnreachable are set by Start.
	Redis *redis.Options

	// MemoryLimit is the Go runtime's soft memory limit in bytes (0: none), which the
	// caller sets (debug.SetMemoryLimit: it is the process's). Start exports it as a
	// metric, reports in /readyz when the use nears it, and sizes the engine's
	// memtable and cache from it (PebbleSizes) unless Durable sets them.
	MemoryLimit int64

	// Build says which build runs, for the arina_build_info metric.
	Build Build

	// History configures the recent history of the counts (the page's sparklines and
	// activity chart, GET .../history and /api/v1/activity); NoHistory turns it off.
	History   history.Options
	NoHistory bool
}

// Build identifies a build of arina: its version, VCS commit and build date as stamped
// by the release script (or read from Go's build information), and the Go version.
type Build struct {
	Version   string
	Commit    string
	Date      string // RFC 3339, UTC
	GoVersion string
	Modified  bool // built from a checkout with uncommitted changes
}

// openStore opens the store opts name; a Redis one is also returned as such, for Start
// to connect it to the writer.
func openStore(opts Options, logger *slog.Logger, reg prometheus.Registerer) (store.Store, func() bool, *redis.Store, error) {
	if opts.Store != nil {
		return opts.Store, func() bool { return true }, nil, nil
	}
	if opts.Redis != nil {
		ro := *opts.Redis
		ro.Logger = logger
		// A node may start before Redis (a whole site powering up): it waits, not
		// ready, instead of exiting.
		ro.StartUnreachable = true
		redis.SetLibraryLogger(logger)
		rs, err := redis.Open(context.Background(), ro)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := reg.Register(rs); err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("registering redis metrics: %w", err), rs.Close())
		}
		return rs, rs.Healthy, rs, nil
	}
	switch opts.Durability {
	case store.DurabilitySync, store.DurabilityAsync:
		do := opts.Durable
		do.Sync = opts.Durability == store.DurabilitySync
		if mt, cache := PebbleSizes(opts.MemoryLimit); do.MemTableSize == 0 && do.CacheSize == 0 {
			do.MemTableSize, do.CacheSize = mt, cache
		}
		do.Logger = logger
		d, err := durable.Open(do)
		if err != nil {
			return nil, nil, nil, err
		}
		if err := reg.Register(d); err != nil {
			return nil, nil, nil, errors.Join(fmt.Errorf("registering store metrics: %w", err), d.Close())
		}
		return d, d.Healthy, nil, nil
	case store.DurabilityNone, "":
		return store.NewMemory(), func() bool { return true }, nil, nil
	}
	return nil, nil, nil, fmt.Errorf("store: unknown durability %q", opts.Durability)
}

// Daemon is a running Arina.
type Daemon struct {
	Store    store.Store
	Writer   *ingest.Writer
	Broker   *broker.Server
	API      *api.Server
	Registry *prometheus.Registry
	Feed     *feed.Hub
	Bridge   *bridge.Bridge   // nil without upstreams
	History  *history.History // nil with NoHistory

	log       *slog.Logger
	timeout   time.Duration
	reloaders []func() error // what Reload runs
	closed    atomic.Bool
	started   bool // Start completed; only Start and Close touch it
}

// Start builds and starts every part. Listeners are bound before it returns, so an
// address in use is an error here. On failure, what had started is stopped again.
func Start(opts Options, logger *slog.Logger) (d *Daemon, err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "arina_build_info",
			Help: "Always 1; its labels say which build of arina runs.",
			ConstLabels: prometheus.Labels{"version": opts.Build.Version, "commit": opts.Build.Commit,
				"date": opts.Build.Date, "goversion": opts.Build.GoVersion},
		}, func() float64 { return 1 }))
	d = &Daemon{Registry: reg, log: logger, timeout: opts.ShutdownTimeout, reloaders: opts.Reloaders}
	if d.timeout <= 0 {
		d.timeout = 30 * time.Second
	}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = errors.Join(err, d.Close(ctx))
		}
	}()

	var storeOK func() bool
	d.Feed = feed.New(0)
	if !opts.NoHistory {
		// A watcher of the feed with its own goroutine: off the writer's path.
		d.History = history.New(opts.History)
		for _, c := range d.History.Collectors() {
			if err = reg.Register(c); err != nil {
				return d, fmt.Errorf("registering history metrics: %w", err)
			}
		}
		d.History.Start(d.Feed)
	}
	var rs *redis.Store // the store, if a Redis one
	if d.Store, storeOK, rs, err = openStore(opts, logger.With("component", "store"), reg); err != nil {
		return d, err
	}
	memoryOK, err := registerMemory(reg, opts.MemoryLimit)
	if err != nil {
		return d, fmt.Errorf("registering memory metrics: %w", err)
	}
	ingestOpts := opts.Ingest
	ingestOpts.OnChanges = d.Feed.Publish
	if d.Writer, err = ingest.NewWriter(d.Store, ingestOpts, logger.With("component", "ingest"), reg); err != nil {
		return d, err
	}
	if rs != nil {
		// The writer could not read the memberships with an expiry at its start if
		// Redis did not answer then: it reads them once Redis answers.
		rs.OnReachable(d.Writer.ReloadExpiries)
		// Changes applied by other nodes reach this node's change stream and count
		// topics as its own do, and its writer checks their expiries too. Subscribed
		// before the writer starts, so what its start does not read arrives here.
		if err = rs.Follow(context.Background(), d.Writer.RemoteChanges); err != nil {
			return d, err
		}
	}
	d.Writer.Start()

	if ha := opts.MQTT.HomeAssistant; ha != nil && ha.SWVersion == "" {
		h := *ha
		h.SWVersion = opts.Build.Version
		opts.MQTT.HomeAssistant = &h
	}
	if d.Broker, err = broker.New(opts.MQTT, d.Writer, logger.With("component", "mqtt"), reg); err != nil {
		return d, err
	}
	if err = d.Broker.Start(); err != nil {
		return d, err
	}
	d.Broker.StartCounts(d.Feed, d.Store, opts.MQTT.CountsInterval)

	httpOpts := opts.HTTP
	httpOpts.Gatherer, httpOpts.Registerer = reg, reg
	httpOpts.TTL = opts.Ingest.TTL
	httpOpts.Feed = d.Feed
	httpOpts.History = d.History
	httpOpts.Checks = []api.Check{
		{Name: "broker", OK: d.Broker.Running},
		{Name: "writer", OK: d.Writer.Running},
		{Name: "store", OK: func() bool { return !d.closed.Load() && storeOK() }},
		// Degraded, not unready: past MemoryNearShare of the limit the GC runs often to
		// stay below it, which costs CPU; more memory or fewer memberships help.
		{Name: "memory", OK: memoryOK, Optional: true},
	}
	if len(opts.Upstreams) > 0 {
		if d.Bridge, err = bridge.New(opts.Upstreams, d.Writer, logger.With("component", "bridge"), reg); err != nil {
			return d, err
		}
		d.Bridge.UseSparkplug(d.Broker.Sparkplug())
		for _, c := range d.Bridge.Checks() {
			httpOpts.Checks = append(httpOpts.Checks, api.Check{Name: "bridge:" + c.Name, OK: c.Up, Optional: true})
		}
		d.Bridge.Start()
	}
	if d.API, err = api.New(httpOpts, d.Store, d.Writer, logger.With("component", "http")); err != nil {
		return d, err
	}
	if err = d.API.Start(); err != nil {
		return d, err
	}
	d.started = true
	started := []any{"mqtt", d.Broker.Addr(), "http", d.API.Addr(), "topic_prefix", opts.MQTT.TopicPrefix}
	addrs := d.Broker.Addrs()
	for _, id := range []string{"tls", "ws", "wss"} {
		if a, ok := addrs[id]; ok {
			started = append(started, "mqtt_"+id, a)
		}
	}
	logger.Info("arina started", started...)
	return d, nil
}

// Reload re-reads the files the daemon was started with that may change while it runs
// (users and tokens), keeping the previous ones on error. Connections stay up.
func (d *Daemon) Reload() error {
	var errs []error
	for _, r := range d.reloaders {
		errs = append(errs, r())
	}
	err := errors.Join(errs...)
	if err == nil {
		d.log.Info("reloaded", "files", len(d.reloaders))
	}
	return err
}

// CompactIndex re-lays the in-memory index's arrays afresh (store.Memory.Compact) if
// the store keeps one (not Redis), and reports how many sets it re-laid. For when
// ingest is quiet: cmd/arina calls it before it returns free memory to the system.
// Under a memory limit it re-lays nothing when the copy could take the process past
// the limit (compactRoom; the error wraps store.ErrCompactRoom).
func (d *Daemon) CompactIndex(ctx context.Context) (int, error) {
	if c, ok := d.Store.(interface {
		Compact(context.Context, int64) (int, error)
	}); ok {
		return c.Compact(ctx, compactRoom())
	}
	return 0, nil
}

// MQTTAddr returns the bound address of the MQTT listener.
func (d *Daemon) MQTTAddr() string { return d.Broker.Addr() }

// HTTPAddr returns the bound address of the HTTP listener.
func (d *Daemon) HTTPAddr() string { return d.API.Addr() }

// Close shuts the daemon down in order: the broker stops taking publishes (and returns
// once no hook call is running), the writer applies everything accepted, the HTTP
// server finishes its requests, and the store is closed. If ctx has no deadline, the
// configured shutdown timeout applies. Every step runs even if an earlier one failed.
// Close must be called from one goroutine.
func (d *Daemon) Close(ctx context.Context) error {
	if d.closed.Load() {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	start := time.Now()
	var errs []error
	if d.Broker != nil {
		errs = append(errs, d.Broker.Close(ctx))
	}
	if d.Bridge != nil {
		d.Bridge.StopIntake()
	}
	if d.Writer != nil {
		queued := d.Writer.QueueLen()
		if err := d.Writer.Close(ctx); err != nil {
			errs = append(errs, err)
		} else if queued > 0 {
			d.log.Info("ingest queue drained", "events", queued)
		}
	}
	if d.Bridge != nil {
		errs = append(errs, d.Bridge.Close(ctx)) // acknowledges upstream what the writer applied
	}
	if d.Feed != nil {
		d.Feed.Close() // ends the change streams, which would hold the HTTP shutdown
	}
	if d.History != nil {
		d.History.Close()
	}
	if d.API != nil {
		errs = append(errs, d.API.Close(ctx))
	}
	d.closed.Store(true)
	if d.Store != nil {
		errs = append(errs, d.Store.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if d.started {
		d.log.Info("arina stopped", "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
