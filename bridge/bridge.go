// Package bridge takes events from remote MQTT brokers (upstreams): a paho client per
// upstream subscribes with a persistent session, hands each message on a topic its
// patterns match to the ingest writer, and acknowledges it upstream once the writer
// applied it. Nothing is acknowledged that was not applied; what is not acknowledged
// at shutdown the upstream delivers again to the next session.
package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/optcheck"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/store"
)

// Sink takes the events the bridge accepts. *ingest.Writer implements it.
type Sink interface {
	Enqueue(ctx context.Context, ev ingest.Event, ack ingest.Ack) error
	Reject(src ingest.Source, code ingest.Code)
}

// Upstream is one remote broker the bridge subscribes to.
type Upstream struct {
	Name     string // label in logs, metrics and /readyz; unique among upstreams
	URL      string // tcp://, ssl://, ws:// or wss:// host:port
	ClientID string // fixed and unique per node and upstream: it names the session
	Username string
	Password string
	TLS      *tls.Config // for ssl:// and wss://; nil: system roots
	// Topics are the remote topics to take events from, each a topic filter in which
	// one level is {content} and one is {reaction}, e.g. "site1/kitchen/{content}/{reaction}".
	// Other levels are literal or +; # may end a pattern after both placeholders.
	Topics []string
	// ShareGroup, if set, subscribes with $share/<ShareGroup>/ so that the nodes of one
	// group split the stream: each message goes to one of them.
	ShareGroup string
	// MaxPayload is the largest payload taken as an event; default ingest.DefaultMaxPayload.
	MaxPayload int
	// MaxReconnectInterval caps the back-off between connection attempts; default 30s.
	MaxReconnectInterval time.Duration
	// ConnectTimeout bounds one connection attempt; default 10s.
	ConnectTimeout time.Duration
	// Sparkplug: also subscribe to spBv1.0/# and decode those messages as the embedded
	// broker does (bridge_sparkplug.go); Topics may then be empty.
	Sparkplug bool
}

// ErrInvalidUpstream is returned for an upstream configuration that cannot work.
var ErrInvalidUpstream = errors.New("invalid upstream")

// topicPattern is an Upstream topic: the filter to subscribe to and where, in a
// matching topic, the content and reaction levels are.
type topicPattern struct {
	filter            string
	levels            int  // levels of the pattern, counting a final #
	hashTail          bool // the pattern ends in #: topics may have more levels
	content, reaction int  // level indexes of {content} and {reaction}
}

// parsePattern parses one Upstream topic.
func parsePattern(p string) (topicPattern, error) {
	tp := topicPattern{content: -1, reaction: -1}
	if p == "" {
		return tp, fmt.Errorf("%w: empty topic", ErrInvalidUpstream)
	}
	if strings.HasPrefix(p, "$share/") {
		return tp, fmt.Errorf("%w: topic %q: set share_group instead of writing $share/ in the topic", ErrInvalidUpstream, p)
	}
	levels := strings.Split(p, "/")
	filter := make([]string, len(levels))
	for i, l := range levels {
		switch {
		case l == "{content}" || l == "{reaction}":
			idx := &tp.content
			if l == "{reaction}" {
				idx = &tp.reaction
			}
			if *idx >= 0 {
				return tp, fmt.Errorf("%w: topic %q names %s twice", ErrInvalidUpstream, p, l)
			}
			*idx = i
			filter[i] = "+"
		case l == "#":
			if i != len(levels)-1 {
				return tp, fmt.Errorf("%w: topic %q: # must be the last level", ErrInvalidUpstream, p)
			}
			tp.hashTail = true
			filter[i] = l
		case l == "+":
			filter[i] = l
		case strings.ContainsAny(l, "+#{}") || strings.ContainsRune(l, 0):
			return tp, fmt.Errorf("%w: topic %q: level %q mixes wildcards or braces with text", ErrInvalidUpstream, p, l)
		default:
			filter[i] = l
		}
	}
	if tp.content < 0 || tp.reaction < 0 {
		return tp, fmt.Errorf("%w: topic %q must have a {content} and a {reaction} level", ErrInvalidUpstream, p)
	}
	tp.levels = len(levels)
	tp.filter = strings.Join(filter, "/")
	return tp, nil
}

// match returns the content and reaction a topic names under the pattern.
func (tp *topicPattern) match(topic string) (content, reaction string, ok bool) {
	n := strings.Count(topic, "/") + 1
	if (tp.hashTail && n < tp.levels-1) || (!tp.hashTail && n != tp.levels) { // a/# matches a too
		return "", "", false
	}
	f := tp.filter
	for i := 0; ; i++ {
		level, rest, more := strings.Cut(topic, "/")
		fl, frest, _ := strings.Cut(f, "/")
		switch {
		case fl == "#":
			return content, reaction, true
		case i == tp.content:
			content = level
		case i == tp.reaction:
			reaction = level
		case fl != "+" && fl != level:
			return "", "", false
		}
		if !more {
			return content, reaction, true
		}
		topic, f = rest, frest
	}
}

// Valid range of Upstream.MaxReconnectInterval when it is set (0: the default, 30s).
const (
	MinReconnectInterval = 100 * time.Millisecond
	MaxReconnectInterval = time.Hour
)

// CheckUpstreams validates upstream configurations; every problem is reported, named
// by its configuration key (bridge.upstreams[i]...).
func CheckUpstreams(ups []Upstream) error {
	var errs []error
	names := make(map[string]bool)
	ids := make(map[string]bool)
	for i, u := range ups {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("bridge.upstreams[%d]: %w: %s", i, ErrInvalidUpstream, fmt.Sprintf(format, args...)))
		}
		if u.Name == "" {
			bad("name is required")
		} else if names[u.Name] {
			bad("name %q is used twice", u.Name)
		}
		names[u.Name] = true
		if u.ClientID == "" {
			bad("client_id is required: it names the persistent session on the upstream broker")
		} else if ids[u.URL+"\x00"+u.ClientID] {
			bad("client_id %q is used twice for %s: the sessions would take each other over", u.ClientID, u.URL)
		}
		ids[u.URL+"\x00"+u.ClientID] = true
		if pu, err := url.Parse(u.URL); err != nil || pu.Host == "" {
			bad("url %q: want scheme://host:port", u.URL)
		} else {
			switch pu.Scheme {
			case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
			default:
				bad("url %q: scheme %q is not tcp, ssl, ws or wss", u.URL, pu.Scheme)
			}
		}
		if len(u.Topics) == 0 && !u.Sparkplug {
			bad("topics: at least one is required")
		}
		for _, t := range u.Topics {
			if _, err := parsePattern(t); err != nil {
				errs = append(errs, fmt.Errorf("bridge.upstreams[%d].topics: %w", i, err))
			}
		}
		if strings.ContainsAny(u.ShareGroup, "/+#") {
			bad("share_group %q must be one topic level without wildcards", u.ShareGroup)
		}
		if d := u.MaxReconnectInterval; d < 0 || (d > 0 && d < MinReconnectInterval) || d > MaxReconnectInterval {
			errs = append(errs, &optcheck.FieldError{Field: fmt.Sprintf("bridge.upstreams[%d].max_reconnect_interval", i), Value: d,
				Err: fmt.Errorf("%w: want 0 (the default, 30s) or 100ms to 1h", optcheck.ErrOutOfRange)})
		}
	}
	return errors.Join(errs...)
}

// Bridge subscribes to upstream brokers and hands the events it reads there to the
// sink. A message is acknowledged upstream only once its event is applied (and, with
// durable storage, committed): the subscription uses a persistent session (clean
// session off, a fixed client id) and QoS 1, so what the bridge has not acknowledged
// the upstream broker delivers again after a reconnect.
//
// Paho calls the message handler on its router goroutine; the handler only appends to
// an in-memory queue and returns. It never blocks paho. The queue holds at most what
// the upstream lets be unacknowledged (its in-flight window) for QoS 1; QoS 0 messages
// beyond maxQueuedQoS0 are dropped and counted.
type Bridge struct {
	sink Sink
	log  *slog.Logger
	ups  []*upstream
	wg   sync.WaitGroup
	stop chan struct{} // closed by StopIntake: forwarders stop handing events to the sink
	once sync.Once
	m    *bridgeMetrics

	sparkplug *sparkplug.Decoder // for upstreams with Sparkplug; set by UseSparkplug
}

// maxQueuedQoS0 bounds the QoS 0 messages waiting for the writer per upstream.
const maxQueuedQoS0 = 65536

type upstream struct {
	b        *Bridge
	cfg      Upstream
	patterns []topicPattern
	client   paho.Client
	connTok  paho.Token // of the first Connect: done once it connected or gave up
	up       atomic.Bool

	// This upstream's series, looked up once: the acker counts every message.
	upGauge  prometheus.Gauge
	connects prometheus.Counter
	results  map[string]prometheus.Counter // by arina_bridge_messages_total's result

	in    *ingest.Drain[paho.Message] // handler -> forwarder
	acks  *ingest.Drain[*bridgeMsg]   // writer (and forwarder) -> acker
	ackCh chan struct{}               // closed by Close: the acker flushes and returns
}

// bridgeMsg is one upstream message on its way through the writer; it is the
// ingest.Ack of its event.
type bridgeMsg struct {
	u      *upstream
	msg    paho.Message
	ev     ingest.Event
	result string         // the metric label once acknowledged: acked, rejected or unmatched
	err    error          // the store failed to apply ev
	evs    []ingest.Event // a Sparkplug B message's events, instead of ev
}

// Done is called by the writer goroutine; it only queues the message for the acker.
func (m *bridgeMsg) Done(_ store.Result, err error) {
	m.err = err
	m.u.pushAck(m)
}

type bridgeMetrics struct {
	up       *prometheus.GaugeVec
	connects *prometheus.CounterVec
	messages *prometheus.CounterVec
}

func newBridgeMetrics(reg prometheus.Registerer) (*bridgeMetrics, error) {
	m := &bridgeMetrics{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "arina_bridge_up",
			Help: "1 while the bridge is connected and subscribed to the upstream broker.",
		}, []string{"upstream"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_bridge_connects_total",
			Help: "Successful connections to the upstream broker.",
		}, []string{"upstream"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_bridge_messages_total",
			Help: "Upstream messages by outcome: acked (applied, then acknowledged), rejected (bad event, acknowledged and dropped), unmatched (no topic pattern matched), dropped (QoS 0 beyond the queue bound), retried (store failure, handed to the writer again).",
		}, []string{"upstream", "result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.up, m.connects, m.messages} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// New returns a bridge to the given upstreams, feeding sink. Its metrics are
// registered with reg (nil: not registered). Start connects.
func New(ups []Upstream, sink Sink, logger *slog.Logger, reg prometheus.Registerer) (*Bridge, error) {
	if err := CheckUpstreams(ups); err != nil {
		return nil, err
	}
	m, err := newBridgeMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("registering bridge metrics: %w", err)
	}
	b := &Bridge{sink: sink, log: logger, stop: make(chan struct{}), m: m}
	for _, cfg := range ups {
		if cfg.MaxPayload <= 0 {
			cfg.MaxPayload = ingest.DefaultMaxPayload
		}
		if cfg.MaxReconnectInterval <= 0 {
			cfg.MaxReconnectInterval = 30 * time.Second
		}
		if cfg.ConnectTimeout <= 0 {
			cfg.ConnectTimeout = 10 * time.Second
		}
		u := &upstream{b: b, cfg: cfg, in: ingest.NewDrain[paho.Message](), acks: ingest.NewDrain[*bridgeMsg](), ackCh: make(chan struct{})}
		for _, t := range cfg.Topics {
			tp, _ := parsePattern(t) // checked above
			u.patterns = append(u.patterns, tp)
		}
		u.client = paho.NewClient(u.clientOptions())
		u.upGauge = m.up.WithLabelValues(cfg.Name)
		u.connects = m.connects.WithLabelValues(cfg.Name)
		u.results = make(map[string]prometheus.Counter)
		for _, r := range []string{"acked", "rejected", "unmatched", "dropped", "retried"} {
			u.results[r] = m.messages.WithLabelValues(cfg.Name, r)
		}
		b.ups = append(b.ups, u)
	}
	return b, nil
}

func (u *upstream) clientOptions() *paho.ClientOptions {
	cfg := u.cfg
	o := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false).
		SetOrderMatters(true). // the handler only queues; order is kept for the writer
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(time.Second, cfg.MaxReconnectInterval)).
		SetMaxReconnectInterval(cfg.MaxReconnectInterval).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(u.onMessage).
		SetOnConnectHandler(u.onConnect).
		SetConnectionLostHandler(u.onConnectionLost)
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	return o
}

// Start connects to every upstream in the background: an upstream that is down is
// retried with capped back-off and shows as not ready meanwhile.
func (b *Bridge) Start() {
	for _, u := range b.ups {
		b.wg.Add(2)
		go u.forward()
		go u.ack()
		u.connTok = u.client.Connect() // with ConnectRetry, keeps trying in the background
		b.log.Info("bridge connecting", "upstream", u.cfg.Name, "url", u.cfg.URL, "client_id", u.cfg.ClientID)
	}
}

// Checks returns one readiness condition per upstream: connected and subscribed.
func (b *Bridge) Checks() []UpstreamCheck {
	cs := make([]UpstreamCheck, len(b.ups))
	for i, u := range b.ups {
		cs[i] = UpstreamCheck{Name: u.cfg.Name, Up: u.up.Load}
	}
	return cs
}

// UpstreamCheck reports whether one upstream is connected and subscribed.
type UpstreamCheck struct {
	Name string
	Up   func() bool
}

// StopIntake stops handing upstream messages to the sink; messages already handed
// over are still acknowledged once applied. Call it before closing the writer.
func (b *Bridge) StopIntake() {
	b.once.Do(func() { close(b.stop) })
}

// Close stops intake, acknowledges what the writer applied, and disconnects. Call it
// after the writer has drained so that every applied event is acknowledged; what is
// not acknowledged the upstream delivers again to the next session.
func (b *Bridge) Close(ctx context.Context) error {
	b.StopIntake()
	for _, u := range b.ups {
		close(u.ackCh)
	}
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		for _, u := range b.ups {
			u.client.Disconnect(250) // lets queued acks go out
			u.setUp(false)
		}
		// An upstream that never connected is still in paho's retry loop, which
		// notices the Disconnect after its current pause: wait for it to give up.
		for _, u := range b.ups {
			if u.connTok != nil {
				u.connTok.Wait()
			}
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bridge: still acknowledging at shutdown deadline: %w", ctx.Err())
	}
}

func (u *upstream) onConnect(c paho.Client) {
	filters := make(map[string]byte, len(u.patterns))
	for _, tp := range u.patterns {
		f := tp.filter
		if u.cfg.ShareGroup != "" {
			f = "$share/" + u.cfg.ShareGroup + "/" + f
		}
		filters[f] = 1
	}
	if u.cfg.Sparkplug {
		filters[u.sparkplugFilter()] = 1
	}
	log := u.b.log.With("upstream", u.cfg.Name)
	t := c.SubscribeMultiple(filters, nil) // nil: messages go to the default handler
	// On failure the upstream stays not ready; the next reconnect subscribes again.
	if !t.WaitTimeout(u.cfg.ConnectTimeout) {
		log.Error("bridge subscribe timed out")
		return
	}
	if err := t.Error(); err != nil {
		log.Error("bridge subscribe failed", "err", err)
		return
	}
	if st, ok := t.(*paho.SubscribeToken); ok {
		for f, q := range st.Result() {
			if q > 2 { // 0x80: the broker refused this filter
				log.Error("bridge subscription refused by the upstream broker", "filter", f, "code", q)
				return // stays not ready: someone must fix the ACL or the filter
			}
		}
	}
	u.setUp(true)
	u.connects.Inc()
	log.Info("bridge subscribed", "filters", len(filters))
}

// setUp records whether the upstream is connected and subscribed.
func (u *upstream) setUp(up bool) {
	u.up.Store(up)
	if up {
		u.upGauge.Set(1)
	} else {
		u.upGauge.Set(0)
	}
}

func (u *upstream) onConnectionLost(_ paho.Client, err error) {
	u.setUp(false)
	u.b.log.Warn("bridge connection lost; reconnecting", "upstream", u.cfg.Name, "err", err)
}

// onMessage runs on paho's router goroutine, the only one pushing to u.in (so the
// queue cannot grow between Len and Push): it queues and returns.
func (u *upstream) onMessage(_ paho.Client, msg paho.Message) {
	if msg.Qos() == 0 && u.in.Len() >= maxQueuedQoS0 {
		u.results["dropped"].Inc()
		return
	}
	u.in.Push(msg)
}

func (u *upstream) pushAck(m *bridgeMsg) { u.acks.Push(m) }

// forward hands queued messages to the sink in arrival order, waiting while the
// writer's queue is full: nothing is dropped for overload, the upstream just waits for
// its acks.
func (u *upstream) forward() {
	defer u.b.wg.Done()
	var batch []paho.Message
	for {
		select {
		case <-u.b.stop:
			return
		case <-u.in.Wake():
		}
		batch = u.in.Take(batch)
		for i, msg := range batch {
			if !u.handle(msg) {
				return
			}
			batch[i] = nil
		}
	}
}

// handle turns one message into an event and hands it to the sink; it returns false
// when the bridge is stopping.
func (u *upstream) handle(msg paho.Message) bool {
	m := &bridgeMsg{u: u, msg: msg}
	if u.cfg.Sparkplug && sparkplug.IsTopic(msg.Topic()) {
		return u.handleSparkplug(m)
	}
	var content, reaction string
	var ok bool
	for i := range u.patterns {
		if content, reaction, ok = u.patterns[i].match(msg.Topic()); ok {
			break
		}
	}
	if !ok {
		// Only a shared subscription or a broker quirk delivers a topic no pattern
		// matches; it is no event, so it is acknowledged and counted.
		m.result = "unmatched"
		u.pushAck(m)
		return true
	}
	payload := msg.Payload()
	var err error
	if len(payload) > u.cfg.MaxPayload {
		err = &ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("payload of %d bytes is over the %d byte limit", len(payload), u.cfg.MaxPayload)}
	} else {
		m.ev, err = ingest.ParsePayload(content, reaction, payload, ingest.SourceBridge)
	}
	if err != nil {
		u.b.sink.Reject(ingest.SourceBridge, ingest.CodeOf(err))
		u.b.log.Debug("bridge event rejected", "upstream", u.cfg.Name, "topic", msg.Topic(), "err", err)
		m.result = "rejected" // acknowledged and dropped: resending cannot help
		u.pushAck(m)
		return true
	}
	return u.submit(m)
}

// submit hands m's event to the sink, retrying with capped back-off while the queue is
// full; it returns false when the bridge is stopping (m is then not acknowledged: the
// upstream delivers it again to the next session).
func (u *upstream) submit(m *bridgeMsg) bool {
	if m.evs != nil {
		return u.submitAll(m)
	}
	m.err, m.result = nil, "acked"
	return u.enqueue(m.ev, m)
}

// enqueue hands ev to the sink with ack, retrying with capped back-off while the queue
// is full; it returns false when the writer or the bridge is stopping.
func (u *upstream) enqueue(ev ingest.Event, ack ingest.Ack) bool {
	backoff := 10 * time.Millisecond
	for {
		err := u.b.sink.Enqueue(context.Background(), ev, ack)
		if err == nil {
			return true
		}
		if errors.Is(err, ingest.ErrClosed) {
			return false
		}
		u.b.log.Debug("bridge waiting for the writer", "upstream", u.cfg.Name, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-u.b.stop:
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// ack acknowledges upstream messages whose events were applied, in the order the
// writer applied them. msg.Ack may wait for paho's outgoing queue, so it runs here and
// not on the writer goroutine. Events the store failed to apply go to the writer
// again after a pause.
func (u *upstream) ack() {
	defer u.b.wg.Done()
	var batch, retry []*bridgeMsg
	closing := false
	for {
		if !closing {
			select {
			case <-u.acks.Wake():
			case <-u.ackCh:
				closing = true
			}
		}
		batch = u.acks.Take(batch)
		if closing && len(batch) == 0 {
			return
		}
		for i, m := range batch {
			batch[i] = nil
			if m.err != nil {
				retry = append(retry, m)
				continue
			}
			m.msg.Ack()
			u.results[m.result].Inc()
		}
		if len(retry) > 0 {
			u.retry(retry)
			clear(retry)
			retry = retry[:0]
		}
	}
}

// retry hands events the store failed to apply to the writer again, after a pause;
// when the bridge is stopping they are left unacknowledged, and the upstream delivers
// them again to the next session.
func (u *upstream) retry(ms []*bridgeMsg) {
	u.results["retried"].Add(float64(len(ms)))
	t := time.NewTimer(250 * time.Millisecond)
	defer t.Stop()
	select {
	case <-u.b.stop:
		return
	case <-t.C:
	}
	for _, m := range ms {
		if !u.submit(m) {
			return
		}
	}
}
