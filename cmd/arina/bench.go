package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/arina-dev/arina/bench/loadgen"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/config"
)

func newBenchCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load-test an MQTT broker with add/remove events and report rates and latencies",
		Long: `Bench publishes generated add/remove events to any MQTT broker from many connections
and reports the publish rate, the acknowledged rate and the latency percentiles from
publish to PUBACK. With --http pointing at an Arina API it also measures the latency
from publish until the count is visible over HTTP. A progress line goes to stderr every
second; the report goes to stdout (one JSON object with --json).

Bench's events are real events: against Arina they are applied to its store, stay
there and show on its web page. So its content ids start with --content-prefix
(default "bench-": bench-c0, bench-c1, ..., and bench-probe-... for --http probes), and
before publishing bench asks the daemon's HTTP API (--http, or http.listen of the
configuration when --broker is not given or is mqtt.listen's address) whether its store
holds any content without that prefix. If it does, or if bench cannot ask, it refuses
and publishes nothing. Benchmark a daemon of its own (e.g. arina serve --durability
none --mqtt-listen 127.0.0.1:1884 --http-listen 127.0.0.1:4001), or pass
--no-store-check: for a broker that is not Arina (e.g. mosquitto), or to add bench's
events to that store on purpose. Bench does not remove what it added.

With --idle N it measures connections at rest instead: it opens N MQTT connections
(CONNECT with a clean session and, unless --keepalive is set, no keepalive; nothing
else), 64 at a time, and holds them open for --hold (default: until interrupted), so
that the broker's memory per idle connection can be read off its RSS (see bench/idle).
--broker, --protocol and the login options apply; the publishing flags do not. A progress line goes to
stderr while opening, then "N idle connections open after Xs; holding ...".

Against a secured site, bench logs in as pub does (-u/--username with --password-file
or $ARINA_PASSWORD, or --cert/--key; --client-id is the start of its client ids) and
reads the API with a token (--token or $ARINA_TOKEN; the read scope). One --cafile
serves the broker and the API, so TLS is asked for by the scheme: mqtts:// or wss://
for the broker, https:// for --http; a bare host:port is plain.`,
		Example: `  arina bench --duration 20s
  arina bench --protocol 311 --qos 1 --events 1000000 --http 127.0.0.1:4000
  arina bench --broker 127.0.0.1:1884 --http 127.0.0.1:4001 # an Arina of its own
  arina bench --broker 127.0.0.1:1884 --no-store-check --subscribe --json    # any broker, e.g. mosquitto
  arina bench --idle 10000 --hold 30s --json                # 10k idle connections for 30s
  arina bench -u bench --password-file pw --broker mqtts://127.0.0.1:8884 --http https://127.0.0.1:4001 --cafile ca.pem`,
		Args: cobra.NoArgs,
	}
	f := addBenchFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return runBench(cmd, f, stdout, stderr, getenv) }
	return cmd
}

// benchFlags are the flags of arina bench, which runBench reads.
type benchFlags struct {
	tls           *tlsFlags  // one --cafile for the broker and the API
	login         *mqttFlags // --broker and the MQTT login
	api           *apiFlags  // --token
	protocol      string
	qos           int
	client        string
	publishers    int
	inflight      int
	events        int64
	duration      time.Duration
	warmup        time.Duration
	pace          float64
	contents      int
	contentPrefix string
	noStoreCheck  bool
	reactions     int
	users         int
	zipf          float64
	removeRatio   float64
	topicPrefix   string
	payload       string
	stamp         bool
	httpURL       string
	sampleEvery   int
	pollInterval  time.Duration
	subscribe     bool
	ackTimeout    time.Duration
	seed          uint64
	asJSON        bool
	pipeline      bool
	writeEach     bool
	brokerPID     int
	cpuProfile    string
	queries       bool
	idle          int
	hold          time.Duration
	keepAlive     time.Duration
}

// addBenchFlags defines bench's flags on cmd and returns where they land.
func addBenchFlags(cmd *cobra.Command) *benchFlags {
	f := &benchFlags{}
	fs := cmd.Flags()
	f.tls = addTLSFlags(fs, true) // one --cafile for the broker and the API
	f.login = addMQTTFlags(fs, f.tls, "start of the MQTT client ids: connection i is <prefix><i>, the subscriber <prefix>sub (default: arina-bench-<run id>-; with --idle: idle-<random>-)")
	f.api = addAPIFlags(fs, f.tls, true)
	fs.StringVar(&f.protocol, "protocol", "5", "MQTT protocol version: 311 or 5")
	fs.IntVar(&f.qos, "qos", 1, "QoS level, 0 or 1")
	fs.StringVar(&f.client, "client", loadgen.ClientWire, "MQTT client to publish with: wire (the generator's own, batching each connection's packets into few writes; least CPU per event) or paho (the Eclipse paho libraries, one call per event as an application makes it)")
	fs.IntVar(&f.publishers, "publishers", loadgen.DefaultPublishers, "connections publishing in parallel")
	fs.IntVar(&f.inflight, "inflight", loadgen.DefaultInFlight, "publishes outstanding per connection (QoS 1: awaiting PUBACK; MQTT 5 caps it at the broker's receive maximum)")
	fs.Int64Var(&f.events, "events", 0, "events to send in total, then stop (default: run for --duration)")
	fs.DurationVar(&f.duration, "duration", 0, "how long to publish (default 10s unless --events is set)")
	fs.DurationVar(&f.warmup, "warmup", 0, "publish this long first and leave it out of the report")
	fs.Float64Var(&f.pace, "rate", 0, "publish at most this many events/s over all publishers (e.g. a share of the broker's maximum, to measure queries under load); with --queries: requests/s; 0: as fast as possible")
	fs.IntVar(&f.contents, "contents", loadgen.DefaultContents, "number of distinct content ids (<content-prefix>c0, c1, ...)")
	fs.StringVar(&f.contentPrefix, "content-prefix", "bench-", "start of every content id bench writes (and --queries reads), so its data can be told from real contents")
	fs.BoolVar(&f.noStoreCheck, "no-store-check", false, "publish without first checking over the HTTP API that the target store holds only contents starting with --content-prefix (for a broker that is not Arina, or to add bench's events to a store on purpose)")
	fs.IntVar(&f.reactions, "reactions", loadgen.DefaultReactions, "number of distinct reaction types (r0, r1, ...)")
	fs.IntVar(&f.users, "users", loadgen.DefaultUsers, "number of distinct user ids (u0, u1, ...), drawn uniformly")
	fs.Float64Var(&f.zipf, "zipf", 0, "draw contents and reactions from a Zipf distribution with this exponent (> 1); 0: uniform")
	fs.Float64Var(&f.removeRatio, "remove-ratio", 0.2, "share of events that are removes, 0..1")
	fs.StringVar(&f.topicPrefix, "topic-prefix", "", "ingest topic prefix (default: from mqtt.topic_prefix, kitchen)")
	fs.StringVar(&f.payload, "payload", loadgen.PayloadText, `payload format: text ("add u17") or json ({"user_id":"u17","action":"add"})`)
	fs.BoolVar(&f.stamp, "ts", false, `give every event a "ts" (unix ms, this machine's clock), as devices of a scaled-out site do; implies --payload json`)
	fs.StringVar(&f.httpURL, "http", "", "Arina HTTP API (host:port or URL): also measure publish-to-visible latency by sampling")
	fs.IntVar(&f.sampleEvery, "sample-every", loadgen.DefaultSampleEvery, "with --http: probe every K-th event of the first publisher (one probe outstanding at a time)")
	fs.DurationVar(&f.pollInterval, "poll-interval", loadgen.DefaultPollInterval, "with --http: pause between polls of a probe's count")
	fs.BoolVar(&f.subscribe, "subscribe", false, "also run one subscriber on <prefix>/# (at --qos) and report how many messages the broker relayed to it")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", loadgen.DefaultAckTimeout, "how long to wait for each PUBACK (and for each probe to become visible)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the event generators")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as one JSON object")
	fs.BoolVar(&f.pipeline, "pipeline", true, "wire client, QoS 1: each connection's reader sends a slot's next publish as its PUBACK arrives (least CPU; with --rate a ticker per connection sends its share every 2ms); false: a goroutine per in-flight publish")
	fs.BoolVar(&f.writeEach, "write-each", false, "wire client: write every publish with a write of its own, as paho and devices do (default: what a connection's workers queued goes out in one write)")
	fs.IntVar(&f.brokerPID, "broker-pid", 0, "process id of the broker on this machine: report its CPU time (from /proc) over the measured phase, and per event")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the load generator itself to this file (go tool pprof)")
	fs.BoolVar(&f.queries, "queries", false, "measure the query side instead: --publishers readers GET counts from --http (default: from http.listen) for --duration; no MQTT")
	fs.IntVar(&f.idle, "idle", 0, "open this many idle connections and hold them, instead of publishing")
	fs.DurationVar(&f.hold, "hold", 0, "with --idle: how long to hold the connections once open (default: until interrupted)")
	fs.DurationVar(&f.keepAlive, "keepalive", 0, "with --idle: MQTT keepalive in whole seconds, a PINGREQ every half of it (default 0: none, and no traffic at all)")
	cmd.MarkFlagsMutuallyExclusive("events", "duration")
	cmd.MarkFlagsMutuallyExclusive("idle", "queries")
	return f
}

// runBench runs arina bench with the flags f of cmd.
func runBench(cmd *cobra.Command, f *benchFlags, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := config.Load(cmd.Flags(), getenv)
	if err != nil {
		return err
	}
	if f.cpuProfile != "" {
		prof, err := os.Create(f.cpuProfile)
		if err != nil {
			return err
		}
		defer prof.Close()
		if err := pprof.StartCPUProfile(prof); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if !cmd.Flags().Changed("idle") {
		for _, name := range []string{"hold", "keepalive"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s needs --idle", name)
			}
		}
	}
	if f.queries {
		ac, err := f.api.client(f.httpURL, cfg, getenv, stderr)
		if err != nil {
			return err
		}
		if err := checkTLSUsed(f.tls, ac, nil); err != nil {
			return err
		}
		// One request first: a missing or refused token is an error, not a run of errors.
		if err := checkQueryAccess(cmd.Context(), ac, f.contentPrefix, f.ackTimeout); err != nil {
			return err
		}
		rep, err := loadgen.RunQueries(cmd.Context(), loadgen.QueryOptions{URL: ac.base, Token: ac.token, TLS: ac.tls,
			Workers: f.publishers, Duration: f.duration, Contents: f.contents, ContentPrefix: f.contentPrefix, Rate: f.pace})
		if err != nil {
			return err
		}
		if f.asJSON {
			return json.NewEncoder(stdout).Encode(rep)
		}
		lat := ""
		if rep.Latency != nil {
			lat = fmt.Sprintf(", latency p50 %.2f ms p99 %.2f ms", rep.Latency.P50MS, rep.Latency.P99MS)
		}
		_, err = fmt.Fprintf(stdout, "%s: %d readers, %d requests in %.1fs: %.0f/s, %d errors%s\n",
			rep.URL, rep.Workers, rep.Requests, rep.DurationS, rep.Rate, rep.Errors, lat)
		return err
	}
	l, err := f.login.resolve(cfg, getenv, stderr)
	if err != nil {
		return err
	}
	if cmd.Flags().Changed("idle") {
		if err := checkTLSUsed(f.tls, nil, l); err != nil {
			return err
		}
		return runIdleBench(cmd, stdout, stderr, getenv, l, f.login.clientID, f.protocol, f.idle, f.hold, f.keepAlive, f.asJSON)
	}
	o := loadgen.Options{
		Broker:         l.target.String(),
		Login:          loadgen.Login{Username: l.username, Password: l.password, TLS: l.tls},
		ClientIDPrefix: f.login.clientID,
		Client:         f.client,
		NoPipeline:     !f.pipeline,
		WriteEach:      f.writeEach,
		BrokerPID:      f.brokerPID,
		Publishers:     f.publishers,
		InFlight:       f.inflight,
		Events:         f.events,
		Duration:       f.duration,
		Warmup:         f.warmup,
		Rate:           f.pace,
		Contents:       f.contents,
		Reactions:      f.reactions,
		Users:          f.users,
		Zipf:           f.zipf,
		RemoveRatio:    f.removeRatio,
		TopicPrefix:    f.topicPrefix,
		ContentPrefix:  f.contentPrefix,
		Payload:        f.payload,
		TS:             f.stamp,
		SampleEvery:    f.sampleEvery,
		PollInterval:   f.pollInterval,
		Subscribe:      f.subscribe,
		AckTimeout:     f.ackTimeout,
		Seed:           f.seed,
	}
	if o.TS && !cmd.Flags().Changed("payload") {
		o.Payload = loadgen.PayloadJSON
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = cfg.MQTT.TopicPrefix
	}
	if o.Protocol, err = parseProtocol(f.protocol); err != nil {
		return err
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"publishers", f.publishers}, {"inflight", f.inflight}, {"contents", f.contents}, {"reactions", f.reactions},
		{"users", f.users}, {"sample-every", f.sampleEvery}} {
		if n.v < 1 { // 0 would mean "default" to loadgen
			return fmt.Errorf("--%s %d: want at least 1", n.name, n.v)
		}
	}
	if f.events < 0 || f.duration < 0 || f.warmup < 0 || f.pace < 0 || f.pollInterval <= 0 || f.ackTimeout <= 0 {
		return fmt.Errorf("--events, --duration, --warmup and --rate must not be negative; --poll-interval and --ack-timeout must be positive")
	}
	if f.qos != 0 && f.qos != 1 {
		return fmt.Errorf("--qos %d: want 0 or 1", f.qos)
	}
	o.QoS = byte(f.qos)
	var ac *apiClient // the API of --http, or of the store check
	if f.httpURL != "" || !f.noStoreCheck {
		base, err := benchStoreAPI(f.login.broker, l, f.httpURL, cfg)
		if err == nil || f.httpURL != "" {
			if ac, err = f.api.client(base, cfg, getenv, stderr); err != nil {
				return err
			}
		} else if !f.noStoreCheck {
			return fmt.Errorf("not publishing: %w", err)
		}
	}
	if f.httpURL != "" {
		o.HTTPURL, o.HTTPToken, o.HTTPTLS = ac.base, ac.token, ac.tls
	}
	if err := checkTLSUsed(f.tls, ac, l); err != nil {
		return err
	}
	if f.contentPrefix != "" {
		if err := ingest.CheckID("--content-prefix", f.contentPrefix+"c0", ingest.MaxIDLen); err != nil {
			return err
		}
	}
	if !f.noStoreCheck {
		if err := checkBenchStore(cmd.Context(), ac, f.contentPrefix, f.ackTimeout); err != nil {
			return fmt.Errorf("not publishing: %w", err)
		}
	}
	pl := newProgressLine(stderr, getenv, o.QoS)
	o.Progress = pl.print
	rep, err := loadgen.Run(cmd.Context(), o)
	pl.end()
	if err != nil {
		return l.explain(err)
	}
	if f.asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	return writeBenchReport(stdout, rep)
}

// errStoreCheck is wrapped by the errors of bench's store check.
var errStoreCheck = errors.New("bench checks the target store first")

// benchStoreAPI returns the HTTP API of the daemon bench would publish to: --http, or
// ("") the configuration's http.listen when the broker is the configuration's own.
func benchStoreAPI(brokerFlag string, l *mqttLogin, httpFlag string, cfg config.Config) (string, error) {
	if httpFlag != "" {
		return httpFlag, nil
	}
	own := l.target.Host == clientAddr(cfg.MQTT.Listen) || (cfg.MQTT.TLS.Enabled() && l.target.Host == clientAddr(cfg.MQTT.TLS.Listen))
	if brokerFlag != "" && !own {
		return "", fmt.Errorf("%w: --broker %s is not this configuration's mqtt.listen, so its HTTP API is unknown: "+
			"give it with --http (this also measures visibility), or pass --no-store-check "+
			"(for a broker that is not Arina, such as mosquitto, or to add bench's events to its store on purpose)",
			errStoreCheck, brokerFlag)
	}
	return "", nil
}

// checkTLSUsed refuses TLS options that neither the API client nor the broker
// connection (either may be nil) would use.
func checkTLSUsed(t *tlsFlags, ac *apiClient, l *mqttLogin) error {
	if !t.given() || (ac != nil && ac.tls != nil) || (l != nil && l.target.TLS()) {
		return nil
	}
	return errors.New("--cafile, --cert, --key and --insecure would not be used: the broker is plain MQTT and the API plain HTTP: use mqtts:// or wss://, https://")
}

// checkQueryAccess makes one request of bench --queries' route and turns a refusal
// (no token, a refused one, a missing scope, a TLS problem) into an error.
func checkQueryAccess(ctx context.Context, ac *apiClient, prefix string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, body, err := ac.get(ctx, "/api/v1/reaction/reaction_counts/"+url.PathEscape(prefix+"c0"), 1<<20)
	if err != nil {
		return fmt.Errorf("not querying: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("not querying: %w", ac.statusError(resp, body))
	}
	return nil
}

// checkBenchStore asks the Arina API at base whether its store holds a content that
// does not start with prefix (any content, when prefix is empty): bench's events would
// be mixed with real data there, and stay. It is an error when it does, or when the
// API cannot say.
func checkBenchStore(ctx context.Context, ac *apiClient, prefix string, timeout time.Duration) error {
	base := ac.base
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	first := func(after string) (string, error) {
		q := url.Values{"limit": {"1"}}
		if after != "" {
			q.Set("after", after)
		}
		path := "/api/v1/contents?" + q.Encode()
		u := base + path
		resp, body, err := ac.get(ctx, path, 1<<20)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %w", u, ac.statusError(resp, body))
		}
		var page struct {
			Contents []struct {
				ContentID string `json:"content_id"`
			} `json:"contents"`
		}
		if err := json.Unmarshal(body, &page); err != nil || page.Contents == nil {
			return "", fmt.Errorf("GET %s: not an Arina contents page: %.100q", u, body)
		}
		if len(page.Contents) == 0 {
			return "", nil
		}
		return page.Contents[0].ContentID, nil
	}
	// Contents come sorted: one lies outside the prefix if the first one does, or if
	// one sorts after every id that has the prefix.
	other, err := first("")
	if err == nil && other != "" && prefix != "" && strings.HasPrefix(other, prefix) {
		other, err = first(prefix + strings.Repeat("\U0010FFFF", ingest.MaxIDLen/4))
	}
	if err != nil {
		return fmt.Errorf("%w: cannot ask the Arina API at %s whether its store holds other data: %v; "+
			"give the API of the daemon behind --broker with --http, or pass --no-store-check "+
			"(for a broker that is not Arina, or to add bench's events to its store on purpose)", errStoreCheck, base, err)
	}
	if other != "" {
		return fmt.Errorf("%w: the store behind %s already holds contents bench did not write (e.g. %q); bench's events "+
			"(contents %sc0, %sc1, ...) would stay there and show on its web page. Benchmark a daemon of its own "+
			"(arina serve --durability none --mqtt-listen 127.0.0.1:1884 --http-listen 127.0.0.1:4001), "+
			"or pass --no-store-check to add them to this store anyway", errStoreCheck, base, other, prefix, prefix)
	}
	return nil
}

func parseProtocol(s string) (loadgen.Protocol, error) {
	switch s {
	case "311", "3.1.1", "4":
		return loadgen.MQTT311, nil
	case "5":
		return loadgen.MQTT5, nil
	}
	return 0, fmt.Errorf("--protocol %s: want 311 or 5", s)
}

// runIdleBench is bench --idle: open n idle connections, hold them, close them.
func runIdleBench(cmd *cobra.Command, stdout, stderr io.Writer, getenv func(string) string, l *mqttLogin,
	clientIDPrefix, protocol string, n int, hold, keepAlive time.Duration, asJSON bool) error {
	if n < 1 {
		return fmt.Errorf("--idle %d: want at least 1", n)
	}
	if hold < 0 {
		return fmt.Errorf("--hold %v: want 0 (until interrupted) or more", hold)
	}
	if keepAlive < 0 || keepAlive%time.Second != 0 || keepAlive > 65535*time.Second {
		return fmt.Errorf("--keepalive %v: want whole seconds, 0..65535s", keepAlive)
	}
	proto, err := parseProtocol(protocol)
	if err != nil {
		return err
	}
	o := loadgen.IdleOptions{Broker: l.target.String(), Login: loadgen.Login{Username: l.username, Password: l.password, TLS: l.tls},
		ClientIDPrefix: clientIDPrefix, Protocol: proto, Connections: n, Hold: hold, KeepAlive: keepAlive}
	pl := newProgressLine(stderr, getenv, 0)
	o.Progress = func(p loadgen.IdleProgress) {
		pl.printLine(fmt.Sprintf("[%4.0fs] opened %d of %d  failed %d", p.Elapsed.Seconds(), p.Opened, p.Connections, p.Failed))
	}
	o.Opened = func(p loadgen.IdleProgress) {
		pl.end()
		if cmd.Context().Err() != nil || p.Opened == 0 {
			return
		}
		failed := ""
		if p.Failed > 0 {
			failed = fmt.Sprintf(" (%d failed)", p.Failed)
		}
		holding := "holding until interrupted (Ctrl-C to stop)"
		if hold > 0 {
			holding = fmt.Sprintf("holding for %v (Ctrl-C to stop)", hold)
		}
		fmt.Fprintf(stderr, "%d idle connections open%s after %.1fs; %s\n", p.Opened, failed, p.Elapsed.Seconds(), holding)
	}
	rep, err := loadgen.HoldIdle(cmd.Context(), o)
	pl.end()
	if err != nil {
		return l.explain(err)
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(rep)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	ka := "none"
	if rep.KeepAliveSeconds > 0 {
		ka = fmt.Sprintf("%ds", rep.KeepAliveSeconds)
	}
	if rep.ServerKeepAlives > 0 {
		ka += fmt.Sprintf(" (overridden by the broker's Server Keep Alive on %d)", rep.ServerKeepAlives)
	}
	fmt.Fprintf(tw, "broker\t%s, MQTT %s, keepalive %s\n", rep.Broker, rep.Protocol, ka)
	fmt.Fprintf(tw, "opened\t%d of %d in %.3fs\t%.0f/s\n", rep.Opened, rep.Connections, rep.OpenSeconds, rep.OpenRate)
	fmt.Fprintf(tw, "failed\t%d\n", rep.Failed)
	if rep.FirstError != "" {
		fmt.Fprintf(tw, "  first\t%s\n", rep.FirstError)
	}
	held := fmt.Sprintf("%.1fs", rep.HeldSeconds)
	if rep.Interrupted {
		held += ", interrupted"
	}
	fmt.Fprintf(tw, "held\t%s\n", held)
	if rep.KeepAliveSeconds > 0 || rep.ServerKeepAlives > 0 {
		fmt.Fprintf(tw, "lost while held\t%d\n", rep.Lost)
	}
	return tw.Flush()
}

// progressLine writes the live progress line: rewritten in place with \r on a terminal,
// one line per update otherwise.
type progressLine struct {
	w       io.Writer
	inPlace bool
	done    string // "acked" or "written"
	wrote   bool
}

func newProgressLine(w io.Writer, getenv func(string) string, qos byte) *progressLine {
	p := &progressLine{w: w, done: "acked"}
	if qos == 0 {
		p.done = "written"
	}
	if f, ok := w.(*os.File); ok && getenv("TERM") != "dumb" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.inPlace = true
		}
	}
	return p
}

func (p *progressLine) print(pr loadgen.Progress) {
	phase := ""
	if pr.Warmup {
		phase = " warm-up"
	}
	line := fmt.Sprintf("[%4.0fs%s] sent %d (%.0f/s)  %s %d (%.0f/s)  in flight %d  errors %d",
		pr.Elapsed.Seconds(), phase, pr.Sent, pr.SentRate, p.done, pr.Completed, pr.DoneRate, pr.InFlight, pr.Errors)
	if pr.Received > 0 {
		line += fmt.Sprintf("  received %d", pr.Received)
	}
	p.printLine(line)
}

func (p *progressLine) printLine(line string) {
	if p.inPlace {
		fmt.Fprint(p.w, "\r"+line+"\x1b[K")
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.wrote = true
}

// end finishes an in-place line so that what follows starts on a new one.
func (p *progressLine) end() {
	if p.inPlace && p.wrote {
		fmt.Fprintln(p.w)
	}
	p.wrote = false
}

// writeBenchReport prints the human-readable report.
func writeBenchReport(w io.Writer, r *loadgen.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	window := fmt.Sprintf("%d in flight", r.InFlightEffective)
	if r.InFlightEffective != r.InFlight {
		window += fmt.Sprintf(" (--inflight %d capped at the broker's receive maximum %d)", r.InFlight, r.ServerReceiveMaximum)
	}
	dist := "uniform"
	if r.Zipf > 0 {
		dist = fmt.Sprintf("zipf s=%g over contents and reactions", r.Zipf)
	}
	fmt.Fprintf(tw, "broker\t%s, MQTT %s (%s client), QoS %d, %d publishers x %s\n", r.Broker, r.Protocol, r.Client, r.QoS, r.Publishers, window)
	fmt.Fprintf(tw, "events\t%s payloads; %d contents x %d reactions x %d users, %s; %.0f%% removes\n",
		r.Payload, r.Contents, r.Reactions, r.Users, dist, r.RemoveRatio*100)
	d := fmt.Sprintf("%.3fs (publishing %.3fs)", r.DurationSeconds, r.PublishSeconds)
	if r.WarmupSeconds > 0 {
		d += fmt.Sprintf(", after a %gs warm-up of %d events", r.WarmupSeconds, r.WarmupSent)
	}
	if r.Interrupted {
		d += ", interrupted"
	}
	fmt.Fprintf(tw, "duration\t%s\n", d)
	fmt.Fprintf(tw, "sent\t%d events\t%.0f/s\n", r.Sent, r.PublishRate)
	if r.QoS > 0 {
		fmt.Fprintf(tw, "acked\t%d events\t%.0f/s\n", r.Acked, r.AckRate)
	} else {
		fmt.Fprintf(tw, "acked\tn/a at QoS 0\n")
		if r.Confirmed > 0 {
			fmt.Fprintf(tw, "confirmed\t%d events\t%.0f/s read by the broker (PINGREQ round trips at both ends)\n", r.Confirmed, r.ConfirmedRate)
		}
	}
	if r.BrokerCPUSeconds > 0 {
		fmt.Fprintf(tw, "broker CPU\t%.2fs\t%.2f µs per event (generator: %.2fs)\n", r.BrokerCPUSeconds, r.BrokerCPUPerEventUS, r.GeneratorCPUSeconds)
	}
	fmt.Fprintf(tw, "errors\t%d\n", r.Errors)
	kinds := slices.Sorted(maps.Keys(r.ErrorsByKind))
	for _, k := range kinds {
		fmt.Fprintf(tw, "  %s\t%d\n", k, r.ErrorsByKind[k])
	}
	if r.FirstError != "" {
		fmt.Fprintf(tw, "  first\t%s\n", r.FirstError)
	}
	if r.ConnectionsLost > 0 {
		fmt.Fprintf(tw, "connections lost\t%d of %d\n", r.ConnectionsLost, r.Publishers)
	}
	if r.AckLatency != nil {
		fmt.Fprintf(tw, "ack latency\t%s\n", formatLatency(r.AckLatency, "samples"))
	}
	if v := r.Visibility; v != nil {
		s := "no probe became visible"
		if v.Latency != nil {
			s = formatLatency(v.Latency, "probes")
		}
		fmt.Fprintf(tw, "visible over HTTP\t%s; %d sent, %d lost, %d HTTP errors\n", s, v.Probes, v.Lost, v.HTTPErrors)
	} else {
		fmt.Fprintf(tw, "visible over HTTP\tnot measured (no --http)\n")
	}
	if s := r.Subscriber; s != nil {
		fmt.Fprintf(tw, "subscriber\t%d received\t%.0f/s\n", s.Received, s.Rate)
	}
	fmt.Fprintf(tw, "host\t%s, %d CPUs\n", r.GoVersion, r.NumCPU)
	return tw.Flush()
}

func formatLatency(l *loadgen.Latency, unit string) string {
	f := func(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.3f", v), ".000") }
	return fmt.Sprintf("p50 %sms  p99 %sms  p99.9 %sms  (min %s, mean %s, max %sms; %d %s)",
		f(l.P50MS), f(l.P99MS), f(l.P999MS), f(l.MinMS), f(l.MeanMS), f(l.MaxMS), l.Count, unit)
}
