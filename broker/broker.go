package broker

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
)

// Sink takes the events the broker accepts. *ingest.Writer implements it.
type Sink interface {
	Enqueue(ctx context.Context, ev ingest.Event, ack ingest.Ack) error
	Reject(src ingest.Source, code ingest.Code)
}

// Options configure a Server.
type Options struct {
	Listen          string // TCP address to listen on, e.g. "127.0.0.1:1883"
	TopicPrefix     string // ingest topics are <TopicPrefix>/<content_id>/<reaction_type>
	MaxEventPayload int    // largest payload accepted on an ingest topic; default 4096
	MaxBatchPayload int    // largest payload accepted on <TopicPrefix>/batch; default 256 KiB

	CountsPrefix   string        // retained count topics <CountsPrefix>/<content_id>; "": none
	CountsInterval time.Duration // at most one count message per content per interval; default 250ms
	// NoReactionCountTopics: no <CountsPrefix>/<content_id>/<reaction_type> topics (a
	// bare count per reaction, published besides the JSON one).
	NoReactionCountTopics bool
	// HomeAssistant, if set, publishes Home Assistant MQTT discovery configs for the
	// count topics and the availability topic StatusTopic (homeassistant.go).
	HomeAssistant *HomeAssistant

	// Users, if set, is the users file: clients must log in and the ACLs apply (see
	// auth.go). nil: every client may connect and use every topic.
	Users *auth.UsersFile

	// TLS, if set, serves MQTT over TLS on TLSListen and secure WebSocket on WSSListen.
	TLS       *tls.Config
	TLSListen string // e.g. ":8883"; "": none
	WSListen  string // MQTT over WebSocket (ws://), e.g. ":8083"; "": none
	WSSListen string // MQTT over secure WebSocket (wss://); needs TLS; "": none

	Limits Limits // connections, packet size, client ids, publish rate, WebSocket origins

	// Sparkplug, if set, ingests Sparkplug B messages (spBv1.0/...) with a decoder of
	// these options (package sparkplug); nil: they are relayed as any topic.
	Sparkplug *sparkplug.Options
}

// DefaultMaxEventPayload is the default limit on an ingest payload, in bytes.
const DefaultMaxEventPayload = ingest.DefaultMaxPayload

// ErrInvalidTopicPrefix is returned by New for a prefix that cannot start a topic.
var ErrInvalidTopicPrefix = errors.New("invalid topic prefix")

// Server is the embedded MQTT broker.
type Server struct {
	opts    Options
	log     *slog.Logger
	mochi   *mqtt.Server
	hook    *ingestHook
	tcp     *tcpListener
	extra   []listeners.Listener // TLS and WebSocket listeners, if configured
	limits  *limitsHook
	running atomic.Bool
	closed  atomic.Bool
	counts  atomic.Pointer[counts] // count topics, once StartCounts ran

	stateOnline atomic.Bool // the Sparkplug primary host STATE says online
}

// ValidatePrefix checks a topic prefix: one or more non-empty topic levels without
// wildcards, not starting with '$'.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: empty", ErrInvalidTopicPrefix)
	}
	if strings.HasPrefix(prefix, "$") {
		return fmt.Errorf("%w %q: topics starting with $ are reserved", ErrInvalidTopicPrefix, prefix)
	}
	if strings.ContainsAny(prefix, "+#\x00") {
		return fmt.Errorf("%w %q: wildcards are not allowed", ErrInvalidTopicPrefix, prefix)
	}
	for level := range strings.SplitSeq(prefix, "/") {
		if level == "" {
			return fmt.Errorf("%w %q: empty topic level", ErrInvalidTopicPrefix, prefix)
		}
	}
	return nil
}

// ValidateCountsPrefix checks a count topic prefix: a valid prefix whose topics
// <countsPrefix>/<content_id> are not ingest topics under topicPrefix.
func ValidateCountsPrefix(countsPrefix, topicPrefix string) error {
	if err := ValidatePrefix(countsPrefix); err != nil {
		return err
	}
	if _, _, ok := ingest.TopicEvent(topicPrefix, countsPrefix+"/x"); ok {
		return fmt.Errorf("%w %q: its topics would be ingest topics under %q", ErrInvalidTopicPrefix, countsPrefix, topicPrefix)
	}
	return nil
}

// homeAssistantUnder reports an error if Home Assistant's retained topics (its
// availability topic and discovery configs) would lie under the count topics' prefix:
// only the count topics are served there, from the store, and nothing is retained
// under it.
func homeAssistantUnder(countsPrefix string, ha *HomeAssistant) error {
	if ha == nil || countsPrefix == "" {
		return nil
	}
	discovery := cmp.Or(ha.DiscoveryPrefix, DefaultDiscoveryPrefix)
	for _, topic := range []string{StatusTopic, discovery + "/sensor"} {
		if strings.HasPrefix(topic, countsPrefix+"/") {
			return fmt.Errorf("%w %q: Home Assistant's retained topic %s would be under it", ErrInvalidTopicPrefix, countsPrefix, topic)
		}
	}
	return nil
}

// New returns a broker that hands events to sink. Its metrics are registered with reg
// (nil: not registered). Start binds its listener.
func New(opts Options, sink Sink, logger *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if err := ValidatePrefix(opts.TopicPrefix); err != nil {
		return nil, err
	}
	if opts.CountsPrefix != "" {
		if err := ValidateCountsPrefix(opts.CountsPrefix, opts.TopicPrefix); err != nil {
			return nil, err
		}
	}
	if opts.HomeAssistant != nil && opts.HomeAssistant.DiscoveryPrefix != "" {
		if err := ValidatePrefix(opts.HomeAssistant.DiscoveryPrefix); err != nil {
			return nil, fmt.Errorf("home assistant discovery prefix: %w", err)
		}
	}
	if err := homeAssistantUnder(opts.CountsPrefix, opts.HomeAssistant); err != nil {
		return nil, err
	}
	if opts.MaxEventPayload <= 0 {
		opts.MaxEventPayload = DefaultMaxEventPayload
	}
	if opts.MaxBatchPayload <= 0 {
		opts.MaxBatchPayload = DefaultMaxBatchPayload
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0 // retained messages must not expire unless the publisher asks
	// Acks carry no properties of the PUBLISH they answer, as with mosquitto; mochi
	// would echo the publisher's user properties in its PUBACK/PUBREC.
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	// Topic aliases a client may use, announced in CONNACK by compatHook; mosquitto's
	// default. mochi's 65535 would let one client make the broker hold 65535 topic names.
	caps.TopicAliasMaximum = 10
	opts.Limits.setDefaults()
	caps.MaximumPacketSize = opts.Limits.MaxPacketSize
	mo := &mqtt.Options{
		Capabilities: caps,
		Logger:       logger,
	}
	var src *countsSource
	if opts.CountsPrefix != "" {
		src = &countsSource{prefix: opts.CountsPrefix + "/"}
		mo.RetainedSource = src
	}
	m := mqtt.New(mo)
	s := &Server{opts: opts, log: logger, mochi: m}
	s.hook = &ingestHook{prefix: opts.TopicPrefix, maxPayload: opts.MaxEventPayload, sink: sink,
		batchTopic: opts.TopicPrefix + "/" + BatchTopicSuffix, maxBatchPayload: opts.MaxBatchPayload, log: logger, closing: &s.closed,
		server: m, relay: m.NewClient(nil, "local", "arina-relay", true), refused: newRefusedCounter()}
	if src != nil {
		src.s = s
		s.hook.countTopics = src.prefix
	}
	// The flusher writes small rounds of PUBACKs on the writer goroutine (flusher.go).
	if ab, ok := sink.(interface{ SetAckBatcher(ingest.AckBatcher) }); ok {
		ab.SetAckBatcher(&s.hook.flusher)
	}
	if opts.Sparkplug != nil {
		dec, err := sparkplug.New(*opts.Sparkplug, logger, reg)
		if err != nil {
			return nil, err
		}
		s.hook.sparkplug = dec
	}
	// Without a users file every client is allowed; the daemon binds loopback only in
	// that case. The auth hook goes first: its OnPublish must see a publish before the
	// ingest hook does.
	ah, err := newAuthHook(opts.Users, s, reg)
	if err != nil {
		return nil, err
	}
	if err := m.AddHook(ah, nil); err != nil {
		return nil, fmt.Errorf("adding auth hook: %w", err)
	}
	if users, ok := ah.(*authHook); ok {
		s.hook.allowItem = func(cl *mqtt.Client, topic string) bool { return users.allow(cl, topic, auth.Write) }
	}
	// Limits next: a publish over the rate is refused before it is ingested.
	s.limits = newLimitsHook(opts.Limits, m)
	s.limits.nack = s.hook.nack
	if err := m.AddHook(s.limits, nil); err != nil {
		return nil, fmt.Errorf("adding limits hook: %w", err)
	}
	if reg != nil {
		if err := reg.Register(s.limits.hits); err != nil {
			return nil, fmt.Errorf("registering limit metrics: %w", err)
		}
	}
	if err := m.AddHook(s.hook, nil); err != nil {
		return nil, fmt.Errorf("adding ingest hook: %w", err)
	}
	if err := m.AddHook(&compatHook{topicAliasMaximum: caps.TopicAliasMaximum, maxPacketSize: caps.MaximumPacketSize}, nil); err != nil {
		return nil, fmt.Errorf("adding compat hook: %w", err)
	}
	if src != nil {
		// After the compat hook: it sees the filters as mochi will add them.
		if err := m.AddHook(&countsHook{s: s}, nil); err != nil {
			return nil, fmt.Errorf("adding counts hook: %w", err)
		}
	}
	if reg != nil {
		if err := registerMetrics(reg, m); err != nil {
			return nil, fmt.Errorf("registering mqtt metrics: %w", err)
		}
		if err := reg.Register(s.hook.refused); err != nil {
			return nil, fmt.Errorf("registering mqtt metrics: %w", err)
		}
	}
	return s, nil
}

// Start binds the TCP listener (a port in use is a returned error) and starts serving.
func (s *Server) Start() error {
	s.tcp = newTCPListener("tcp", s.opts.Listen, nil, s.clientConns)
	if err := s.mochi.AddListener(s.tcp); err != nil {
		return fmt.Errorf("mqtt: listening on %s: %w", s.opts.Listen, err)
	}
	if s.opts.TLS != nil && s.opts.TLSListen != "" {
		s.extra = append(s.extra, newTCPListener("tls", s.opts.TLSListen, s.opts.TLS, s.clientConns))
	}
	if s.opts.WSListen != "" {
		s.extra = append(s.extra, newWSListener("ws", s.opts.WSListen, nil, s.limits.checkOrigin()))
	}
	if s.opts.TLS != nil && s.opts.WSSListen != "" {
		s.extra = append(s.extra, newWSListener("wss", s.opts.WSSListen, s.opts.TLS, s.limits.checkOrigin()))
	}
	for _, l := range s.extra {
		if err := s.mochi.AddListener(l); err != nil {
			s.closeListeners()
			return fmt.Errorf("mqtt: listening on %s (%s): %w", l.ID(), s.listenAddr(l.ID()), err)
		}
	}
	if err := s.mochi.Serve(); err != nil {
		_ = s.Close(context.Background())
		return fmt.Errorf("mqtt: serving: %w", err)
	}
	s.running.Store(true)
	s.publishSparkplugState(true)
	return nil
}

// Addr returns the address the TCP listener is bound to.
func (s *Server) Addr() string {
	if s.tcp == nil {
		return s.opts.Listen
	}
	return s.tcp.Address()
}

// Running reports whether the broker is serving.
func (s *Server) Running() bool { return s.running.Load() && !s.closed.Load() }

// Close stops the listener and disconnects every client, then stops the broker. It
// returns once no client goroutine, and so no hook call, is still running, or with an
// error when ctx ends first. It is safe to call more than once.
//
// mochi v2.7.9's own Close could deadlock when a client disconnects while it runs
// (Clients.GetByListener read-locked twice; mochi-mqtt/server#488, fixed in the
// patched copy: PATCHES.md 36). Close first closes the listener with its own closer,
// which reads the clients once, and waits for the client goroutines; mochi's Close
// then finds the listener already closed and does not scan the clients again.
func (s *Server) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.running.Store(false)
	offline := false // an offline status was published
	if c := s.counts.Load(); c != nil {
		c.close()
		if c.ha != nil {
			s.publishStatus("offline")
			offline = true
		}
	}
	if s.stateOnline.Load() {
		s.publishSparkplugState(false)
		offline = true
	}
	if offline {
		// Retained for whoever subscribes later, and written to the subscribers before
		// they are disconnected (bounded: a stalled one does not hold us).
		wait := time.Second
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl)/2)
		}
		s.drainWrites(wait)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.closeListeners()
		s.mochi.Listeners.ClientsWg.Wait()
		_ = s.mochi.Close()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: clients still connected at shutdown deadline: %w", ctx.Err())
	}
}

// Addrs returns the bound address of every listener by id: tcp, and tls, ws, wss when
// configured.
func (s *Server) Addrs() map[string]string {
	out := map[string]string{"tcp": s.Addr()}
	for _, l := range s.extra {
		out[l.ID()] = l.Address()
	}
	return out
}

func (s *Server) listenAddr(id string) string {
	switch id {
	case "tls":
		return s.opts.TLSListen
	case "ws":
		return s.opts.WSListen
	case "wss":
		return s.opts.WSSListen
	}
	return s.opts.Listen
}

// closeListeners closes every listener that was added, with Arina's client closer.
func (s *Server) closeListeners() {
	if s.tcp != nil {
		s.mochi.Listeners.Close(s.tcp.ID(), s.disconnectClients)
	}
	for _, l := range s.extra {
		if _, ok := s.mochi.Listeners.Get(l.ID()); ok {
			s.mochi.Listeners.Close(l.ID(), s.disconnectClients)
		}
	}
}

// clientConns returns the connections of the MQTT clients on listener.
func (s *Server) clientConns(listener string) map[net.Conn]bool {
	out := make(map[net.Conn]bool)
	for _, cl := range s.mochi.Clients.GetByListener(listener) {
		if cl.Net.Conn != nil {
			out[cl.Net.Conn] = true
		}
	}
	return out
}

func (s *Server) disconnectClients(listener string) {
	for _, cl := range s.mochi.Clients.GetAll() {
		if cl.Net.Listener == listener && !cl.Closed() {
			_ = s.mochi.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
}

func registerMetrics(reg prometheus.Registerer, m *mqtt.Server) error {
	info := m.Info
	gauge := func(name, help string, v *int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return float64(atomic.LoadInt64(v)) })
	}
	counter := func(name, help string, v *int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(atomic.LoadInt64(v)) })
	}
	var errs []error
	for _, c := range []prometheus.Collector{
		gauge("arina_mqtt_clients_connected", "MQTT clients currently connected.", &info.ClientsConnected),
		counter("arina_mqtt_messages_received_total", "PUBLISH packets received from MQTT clients.", &info.MessagesReceived),
		counter("arina_mqtt_messages_sent_total", "PUBLISH packets sent to MQTT clients.", &info.MessagesSent),
		counter("arina_mqtt_messages_dropped_total", "PUBLISH packets dropped because a subscriber was too slow.", &info.MessagesDropped),
		gauge("arina_mqtt_retained_messages", "Retained messages held in the broker's topic index; count topics, served from the store, are not among them.", &info.Retained),
		gauge("arina_mqtt_inflight_messages", "QoS>0 messages in flight.", &info.Inflight),
		counter("arina_mqtt_connects_low_keepalive_total",
			"MQTT CONNECTs with a keepalive under the recommended minimum of 5 s, 0 (no keepalive) included.", &info.ClientsLowKeepalive),
	} {
		errs = append(errs, reg.Register(c))
	}
	return errors.Join(errs...)
}
