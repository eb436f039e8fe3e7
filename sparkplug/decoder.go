package sparkplug

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// Decoder turns Sparkplug B messages into ingest events. It remembers, per edge node,
// what the births said (bdSeq, metric aliases, the sequence number) and, per device,
// the memberships Sparkplug gave it, so that a birth can remove what it no longer
// declares and a death can remove everything. It is safe for concurrent use.
//
// The state is updated when a message is decoded, before its events are applied: a
// message whose events are then refused (overload) is resent by its QoS 1 publisher
// and decoded again, which data messages make harmless (their events follow from
// their values alone). The state lives in memory: after a restart a death removes only
// what was said since.
type Decoder struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	payloads sync.Pool // *payload, reused between messages

	mu    sync.Mutex
	nodes map[nodeKey]*node // guarded by mu
}

type nodeKey struct{ group, edge string }

// gapLogInterval is the least time between two log lines about one node's seq gaps.
const gapLogInterval = time.Minute

type node struct {
	bdSeq int64 // of the last NBIRTH; -1: unknown
	seq   int64 // of the last message; -1: unknown
	// gaps in seq since gapLogged, when a gap was last logged
	gaps      int
	gapLogged time.Time
	self      *device
	devices   map[string]*device
}

// device is the state of one device, or of an edge node's own metrics (node.self).
type device struct {
	content string              // of its memberships
	aliases map[uint64]string   // metric alias -> name, from the birth
	members map[member]struct{} // memberships Sparkplug gave this device
	values  map[string]string   // metric name -> user, for UserValue rules
}

type member struct{ reaction, user string }

func newDevice(content string) *device {
	return &device{content: content, aliases: map[uint64]string{}, members: map[member]struct{}{}, values: map[string]string{}}
}

// New returns a decoder. Its metrics are registered with reg (nil: not registered).
func New(opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Decoder, error) {
	opts.Rules = append([]Rule(nil), opts.Rules...)
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Decoder{opts: opts, log: logger, nodes: map[nodeKey]*node{}}
	m, err := newMetrics(reg, d)
	if err != nil {
		return nil, fmt.Errorf("sparkplug: registering metrics: %w", err)
	}
	d.m = m
	return d, nil
}

// Options returns the options the decoder runs with, defaults filled in.
func (d *Decoder) Options() Options { return d.opts }

// Result is what one message decodes to.
type Result struct {
	Events []ingest.Event
	// Rejected lists the metrics refused as bad input (an id a user value cannot be, a
	// timestamp far ahead): they are never applied; the message's other metrics are,
	// as the valid items of a batch are.
	Rejected []error
}

// Decode decodes one message published on topic. A message that is not ingested
// (NCMD, DCMD, STATE) gives an empty Result. An error (an *ingest.Error) means the
// whole message is refused: a topic or payload that is not Sparkplug B, or over the
// size limit; nothing of it is applied and the state is unchanged.
func (d *Decoder) Decode(topic string, data []byte, src ingest.Source) (Result, error) {
	t, err := splitTopic(topic)
	if err != nil {
		return Result{}, err
	}
	switch t.Type {
	case NCMD, DCMD, STATE:
		return Result{}, nil
	}
	if len(data) > d.opts.MaxPayload {
		return Result{}, &ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("sparkplug payload of %d bytes is over the %d byte limit", len(data), d.opts.MaxPayload)}
	}
	p, _ := d.payloads.Get().(*payload)
	if p == nil {
		p = new(payload)
	}
	defer func() { // the events hold copies of its strings, never its storage
		p.body = nil
		d.payloads.Put(p)
	}()
	if err := decodePayload(data, p); err != nil {
		return Result{}, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "not a Sparkplug B payload: " + err.Error()}
	}
	if p.compressed {
		inner, err := decompress(p, d.opts.MaxPayload)
		if err != nil {
			return Result{}, err
		}
		if err := decodePayload(inner, p); err != nil {
			return Result{}, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "compressed Sparkplug B payload: not a Sparkplug B payload inside: " + err.Error()}
		}
		if p.compressed {
			return Result{}, &ingest.Error{Code: ingest.CodeBadPayload, Msg: "compressed Sparkplug B payload: compressed twice"}
		}
	}
	dc := decoding{d: d, t: t, p: p, src: src, now: time.Now().UnixMilli()}

	d.mu.Lock()
	defer d.mu.Unlock()
	key := nodeKey{t.Group, t.Edge}
	n := d.nodes[key]
	var dev *device // the device's state; for node messages, the node's own
	if n != nil {
		dev = n.self
		if t.Device != "" {
			dev = n.devices[t.Device]
		}
	}
	// The ids of known nodes and devices were checked when they were first seen.
	if n == nil {
		if err := t.checkNode(); err != nil {
			return Result{}, err
		}
	}
	if dev == nil {
		if err := t.checkDevice(); err != nil {
			return Result{}, err
		}
	}
	if n == nil && (t.Type == NDEATH || t.Type == DDEATH) {
		d.m.messages[t.Type].Inc()
		return Result{}, nil // nothing known to remove
	}
	if n == nil {
		if len(d.nodes) >= d.opts.MaxNodes {
			return Result{}, &ingest.Error{Code: ingest.CodeOverload, Msg: fmt.Sprintf("sparkplug: %d edge nodes known, the limit (max_nodes)", len(d.nodes))}
		}
		n = &node{bdSeq: -1, seq: -1, self: newDevice(t.Edge), devices: map[string]*device{}}
		d.nodes[key] = n
		if t.Device == "" {
			dev = n.self
		}
	}
	if dev == nil && t.Type != DDEATH {
		if len(n.devices) >= d.opts.MaxDevices {
			return Result{}, &ingest.Error{Code: ingest.CodeOverload, Msg: fmt.Sprintf("sparkplug: edge node %s has %d devices, the limit (max_devices)", t.Edge, len(n.devices))}
		}
		content := t.Edge
		if d.opts.Content == ContentEdgeDevice {
			content = t.Edge + DeviceSeparator + t.Device
			if err := ingest.CheckID("content_id", content, ingest.MaxIDLen); err != nil {
				return Result{}, err
			}
		}
		dev = newDevice(content)
		n.devices[t.Device] = dev
	}
	d.m.messages[t.Type].Inc()
	dc.user = t.Edge
	if t.Device != "" {
		dc.user = t.Device
	}
	if dev != nil {
		dc.content = dev.content
	}
	switch t.Type {
	case NBIRTH:
		n.bdSeq = bdSeq(p)
		n.seq = -1
		dc.seq(n)
		dc.birth(dev, nil)
	case DBIRTH:
		dc.seq(n)
		dc.birth(dev, n.self)
	case NDATA:
		dc.seq(n)
		dc.metrics(dev, nil)
	case DDATA: // without a birth seen, names still map, aliases cannot
		dc.seq(n)
		dc.metrics(dev, n.self)
	case DDEATH:
		dc.seq(n)
		if dev != nil {
			dc.removeAll(dev, dc.payloadTS())
			delete(n.devices, t.Device)
		}
	case NDEATH:
		if b := bdSeq(p); b >= 0 && n.bdSeq >= 0 && b != n.bdSeq {
			// The will of an earlier session, delivered after the node was born again.
			d.m.staleDeaths.Inc()
			d.log.Debug("sparkplug NDEATH of an earlier session ignored", "group", t.Group, "edge_node", t.Edge, "bd_seq", b, "birth_bd_seq", n.bdSeq)
			break
		}
		// No ts: the will was written when the node connected, so its timestamp is
		// older than the data since; removes in arrival order.
		dc.removeAll(n.self, 0)
		for _, dev := range n.devices {
			dc.removeAll(dev, 0)
		}
		delete(d.nodes, key)
	}
	return dc.res, nil
}

// decoding is one message being decoded, under the decoder's lock.
type decoding struct {
	d       *Decoder
	t       Topic
	p       *payload
	src     ingest.Source
	now     int64
	content string // of the device's (or node's) memberships
	user    string // UserDevice: the device id, or the edge node id
	res     Result
}

func (dc *decoding) seq(n *node) {
	if !dc.p.hasSeq {
		return
	}
	s := int64(dc.p.seq & math.MaxInt64)
	if n.seq >= 0 && s != (n.seq+1)%256 {
		dc.d.m.seqGaps.Inc()
		n.gaps++
		// At most one line per node per gapLogInterval: a node that keeps reordering
		// must not flood the log; the metric counts every gap.
		if now := time.UnixMilli(dc.now); now.Sub(n.gapLogged) >= gapLogInterval {
			dc.d.log.Warn("sparkplug sequence gap: messages of the edge node were lost or reordered",
				"group", dc.t.Group, "edge_node", dc.t.Edge, "type", dc.t.Type, "expected", (n.seq+1)%256, "got", s,
				"gaps_since_last_logged", n.gaps)
			n.gapLogged, n.gaps = now, 0
		}
	}
	n.seq = s
}

// payloadTS is the payload's timestamp, or 0 when it has none or one that cannot be
// used (far ahead of this server's clock).
func (dc *decoding) payloadTS() int64 {
	ts := dc.p.timestamp
	if ts == 0 || ts > math.MaxInt64 || int64(ts)-dc.now > ingest.MaxClockAhead.Milliseconds() {
		return 0
	}
	return int64(ts)
}

// metricTS is a metric's timestamp, else the payload's; an error if it is far ahead.
func (dc *decoding) metricTS(m *metric) (int64, error) {
	ts := m.timestamp
	if ts == 0 {
		ts = dc.p.timestamp
	}
	if ts > math.MaxInt64 || int64(ts)-dc.now > ingest.MaxClockAhead.Milliseconds() {
		return 0, &ingest.Error{Code: ingest.CodeInvalidField, Field: "timestamp", Msg: fmt.Sprintf(
			"of metric %q is more than %v ahead of this server's clock: fix the edge node's clock", truncate(m.name), ingest.MaxClockAhead)}
	}
	return int64(ts), nil
}

// emit adds an event. Its ids are valid: the content and the device's user id were
// checked when the node or device was first seen, a reaction from a rule when the
// options were, a metric name or a user value before the call.
func (dc *decoding) emit(action store.Action, reaction, user string, ts int64) {
	dc.res.Events = append(dc.res.Events, ingest.Event{Op: store.Op{ContentID: dc.content, ReactionType: reaction, UserID: user, Action: action, TS: ts}, Source: dc.src})
}

func (dc *decoding) reject(name string, err error) {
	dc.res.Rejected = append(dc.res.Rejected, fmt.Errorf("metric %q: %w", truncate(name), err))
}

// birth sets dev to what a birth certificate declares: its aliases, and its
// memberships (adds, and removes of those it held and no longer does).
func (dc *decoding) birth(dev, parent *device) {
	old := dev.members
	dev.aliases = make(map[uint64]string, len(dc.p.metrics))
	dev.members = make(map[member]struct{}, len(old))
	clear(dev.values)
	for i := range dc.p.metrics {
		if m := &dc.p.metrics[i]; m.hasName && m.hasAlias {
			dev.aliases[m.alias] = m.name
		}
	}
	dc.metrics(dev, parent)
	ts := dc.payloadTS()
	for mem := range old {
		if _, ok := dev.members[mem]; !ok {
			dc.emitRemove(mem, ts)
		}
	}
}

// removeAll removes every membership of dev.
func (dc *decoding) removeAll(dev *device, ts int64) {
	dc.content = dev.content
	for mem := range dev.members {
		dc.emitRemove(mem, ts)
	}
	clear(dev.members)
}

func (dc *decoding) emitRemove(mem member, ts int64) {
	dc.emit(store.Remove, mem.reaction, mem.user, ts)
}

// metrics maps the metrics of a birth or data message onto membership events.
func (dc *decoding) metrics(dev, parent *device) {
	if dc.res.Events == nil {
		dc.res.Events = make([]ingest.Event, 0, len(dc.p.metrics))
	}
	for i := range dc.p.metrics {
		m := &dc.p.metrics[i]
		name := m.name
		if !m.hasName {
			var ok bool
			if name, ok = dev.aliases[m.alias]; !ok && parent != nil {
				name, ok = parent.aliases[m.alias]
			}
			if !ok || !m.hasAlias {
				dc.d.m.ignored(ignoredUnknownAlias).Inc()
				continue
			}
		}
		if m.historical {
			dc.d.m.ignored(ignoredHistorical).Inc()
			continue
		}
		r := dc.d.opts.rule(name)
		if r.Ignore {
			dc.d.m.ignored(ignoredRule).Inc()
			continue
		}
		reaction := r.Reaction
		if reaction == "" {
			if ingest.CheckID("reaction", name, ingest.MaxReactionLen) != nil {
				dc.d.m.ignored(ignoredNotReaction).Inc() // "Node Control/Rebirth", say
				continue
			}
			reaction = name
		}
		var err error
		switch r.User {
		case UserValue:
			err = dc.valueMetric(dev, name, reaction, m)
		default:
			err = dc.boolMetric(dev, reaction, m)
		}
		if err != nil {
			dc.reject(name, err)
		}
	}
}

func (dc *decoding) boolMetric(dev *device, reaction string, m *metric) error {
	var on bool
	switch m.kind {
	case valBool:
		on = m.u == 1
	default:
		if !m.null {
			dc.d.m.ignored(ignoredNotBoolean).Inc()
			return nil
		}
		// A null Boolean is not known to be on.
	}
	ts, err := dc.metricTS(m)
	if err != nil {
		return err
	}
	mem := member{reaction, dc.user}
	if on {
		dc.emit(store.Add, reaction, dc.user, ts)
		dev.members[mem] = struct{}{}
		return nil
	}
	dc.emit(store.Remove, reaction, dc.user, ts)
	delete(dev.members, mem)
	return nil
}

func (dc *decoding) valueMetric(dev *device, name, reaction string, m *metric) error {
	var user string
	switch m.kind {
	case valString:
		user = m.s
	case valInt, valLong:
		user = strconv.FormatUint(m.u, 10)
	default:
		if !m.null {
			dc.d.m.ignored(ignoredNotUser).Inc()
			return nil
		}
	}
	ts, err := dc.metricTS(m)
	if err != nil {
		return err
	}
	if user != "" {
		if err := ingest.CheckID("user_id", user, ingest.MaxIDLen); err != nil {
			return err
		}
	}
	prev := dev.values[name]
	if prev != "" && prev != user {
		dc.emit(store.Remove, reaction, prev, ts)
		delete(dev.members, member{reaction, prev})
		delete(dev.values, name)
	}
	if user == "" {
		return nil
	}
	dc.emit(store.Add, reaction, user, ts)
	dev.members[member{reaction, user}] = struct{}{}
	dev.values[name] = user
	return nil
}

// bdSeq returns the value of the payload's bdSeq metric, or -1.
func bdSeq(p *payload) int64 {
	for i := range p.metrics {
		if m := &p.metrics[i]; m.name == "bdSeq" && (m.kind == valLong || m.kind == valInt) {
			return int64(m.u & math.MaxInt64)
		}
	}
	return -1
}

// Nodes returns how many edge nodes the decoder remembers.
func (d *Decoder) Nodes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.nodes)
}
