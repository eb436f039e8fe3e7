package broker

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/store"
)

// CountsReader reads what the count topics publish. store.Store implements it.
type CountsReader interface {
	Counts(ctx context.Context, contentID string) ([]store.ReactionCount, error)
	Contents(ctx context.Context, prefix, after string, limit int) ([]string, error)
}

// Count topic defaults.
const (
	DefaultCountsPrefix   = "arina/counts"
	DefaultCountsInterval = 250 * time.Millisecond
)

// countsMessage is the seed's count JSON, the payload of a count topic.
type countsMessage struct {
	ContentID     string           `json:"content_id"`
	ReactionCount map[string]int64 `json:"reaction_count"`
}

// counts serves the count topics <prefix>/<content_id> (the seed's count JSON) and,
// with perReaction, <prefix>/<content_id>/<reaction_type> (a bare integer). They are
// not retained messages in mochi's topic index: a new subscription gets their current
// values read from the store as retained messages (serve, through mochi's
// RetainedSource, patch 31), and while some subscription matches a count topic, the
// counts goroutine watches the change feed, gathers the contents that changed and, at
// most once per interval, publishes to the subscribers each changed topic's new value
// (retain flag set, not stored). While none does, it does not watch the feed at all.
// It runs on its own goroutine, never on the writer's, and a publish that stalls behind
// a slow subscriber stalls only this goroutine.
//
// Ordering. mu serializes serving a subscription, publishing at a tick, and starting or
// stopping the watch. A subscription's retained values are read after the watch
// started (onSubscribe starts it before mochi adds the subscription), so a change
// applied before the read is in the values and one applied after reaches the goroutine
// and is published at a later tick. A topic whose value equals the one last published
// is not published again; but a new subscriber's value, read from the store, may be
// newer than that one, so every serve bumps epoch, and a topic's first publish after
// it is made whatever it last carried.
type counts struct {
	s        *Server
	hub      *feed.Hub
	reader   CountsReader
	prefix   string
	interval time.Duration
	// perReaction: also publish <prefix>/<content_id>/<reaction_type>.
	perReaction bool
	levels      int            // levels of a count topic below prefix: 2 with perReaction, else 1
	ha          *homeAssistant // nil: no Home Assistant discovery

	mu      sync.Mutex
	closed  bool          // close ran: no more watching (mu)
	w       *feed.Watcher // the feed's watcher; nil: not watching (mu)
	pending int           // SUBSCRIBEs with a count filter between onSubscribe and onSubscribed (mu)
	epoch   uint64        // bumped by every serve (mu)
	// contents holds what each content's topics last carried and what changed since
	// (run's goroutine, under mu): a topic is published only when its value changes.
	// Only contents with a subscribed topic are kept; it is emptied when the watch stops.
	contents map[string]*contentState
	buf      []byte        // publish's scratch for the count JSON (mu)
	wake     chan struct{} // the watch started
	stop     chan struct{}
	wg       sync.WaitGroup
}

// contentState is what the count topics of one content last carried, and which of its
// reactions changed since. Slices, not maps: a content has a few reactions, and this
// is read for every change and every publish.
type contentState struct {
	id        string
	epoch     uint64 // the epoch of json and reactions' values; older: unknown
	json      []byte // the payload of <prefix>/<content_id> last published; nil: unknown
	reactions []reactionState
	queued    bool // in run's list of contents to publish at the next tick
}

type reactionState struct {
	name    string
	known   bool  // present and count are what its topic last carried
	count   int64 // the count its topic carries
	present bool  // its topic carries a count (false: cleared)
	changed bool  // changed since the content was last published
}

// mark records a change of reaction.
func (st *contentState) mark(reaction string) {
	for i := range st.reactions {
		if st.reactions[i].name == reaction {
			st.reactions[i].changed = true
			return
		}
	}
	st.reactions = append(st.reactions, reactionState{name: reaction, changed: true})
}

// StartCounts starts serving the count topics under Options.CountsPrefix (the prefix
// the RetainedSource set up in New owns) for the changes of hub. Close stops it. An
// empty prefix disables count topics.
func (s *Server) StartCounts(hub *feed.Hub, r CountsReader, interval time.Duration) {
	prefix := s.opts.CountsPrefix
	if prefix == "" || s.counts.Load() != nil {
		return
	}
	if interval <= 0 {
		interval = DefaultCountsInterval
	}
	c := &counts{s: s, hub: hub, reader: r, prefix: prefix, interval: interval, stop: make(chan struct{}),
		perReaction: !s.opts.NoReactionCountTopics, levels: 1, contents: make(map[string]*contentState),
		wake: make(chan struct{}, 1)}
	if c.perReaction {
		c.levels = 2
	}
	if s.opts.HomeAssistant != nil {
		c.ha = newHomeAssistant(c, *s.opts.HomeAssistant)
	}
	c.wg.Add(1)
	s.counts.Store(c)
	go c.run()
}

func (c *counts) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
}

// watchLocked starts watching the feed, if it is not yet; c.mu is held.
func (c *counts) watchLocked() {
	if c.w != nil || c.closed {
		return
	}
	c.w = c.hub.Watch()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// wantedLocked reports whether the feed must be watched: Home Assistant discovery needs
// every change, count topics only a subscription that matches one; c.mu is held.
func (c *counts) wantedLocked() bool {
	return c.ha != nil || c.pending > 0 || c.s.mochi.Topics.SubscribedUnder(c.prefix, c.levels)
}

func (c *counts) run() {
	defer c.wg.Done()
	// dirty: the contents changed since the last tick, their changed reactions marked
	// (the per-reaction topics are published only for those).
	var dirty []*contentState
	if c.ha != nil {
		c.s.publishStatus("online")
	}
	c.mu.Lock()
	watching := c.wantedLocked()
	if watching {
		c.watchLocked()
	}
	c.mu.Unlock()
	if watching {
		// Subscribers from before the start, and Home Assistant's configs (retained
		// messages do not survive a restart).
		c.resync()
	}
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		c.mu.Lock()
		w := c.w
		c.mu.Unlock()
		if w == nil {
			tick.Stop()
			select {
			case <-c.stop:
				return
			case <-c.wake:
				tick.Reset(c.interval)
				continue
			}
		}
		select {
		case <-c.stop:
			c.mu.Lock()
			c.hub.Unwatch(w)
			c.w = nil
			c.mu.Unlock()
			return
		case <-c.wake:
		case batch := <-w.C:
			for i := range batch {
				st := c.state(batch[i].ContentID)
				st.mark(batch[i].ReactionType)
				if !st.queued {
					st.queued = true
					dirty = append(dirty, st)
				}
			}
		case <-w.Lagged():
			// Fell behind: start over from the store.
			c.mu.Lock()
			c.hub.Unwatch(w)
			c.w = nil
			c.watchLocked() // wakes nothing but this loop, which needs no waking
			c.mu.Unlock()
			for i, st := range dirty {
				st.queued = false
				dirty[i] = nil
			}
			dirty = dirty[:0]
			c.resync()
		case <-tick.C:
			c.mu.Lock()
			for i, st := range dirty {
				st.queued = false
				c.publish(st, false)
				dirty[i] = nil
			}
			dirty = dirty[:0]
			if !c.wantedLocked() {
				// Nobody left to publish to: stop watching, forget what was published
				// (the next subscriber reads the store).
				c.hub.Unwatch(w)
				c.w = nil
				clear(c.contents)
			}
			c.mu.Unlock()
		}
	}
}

// state returns the state of a content, made on its first change.
func (c *counts) state(contentID string) *contentState {
	st := c.contents[contentID]
	if st == nil {
		st = &contentState{id: contentID}
		c.contents[contentID] = st
	}
	return st
}

// resync publishes every content as at a tick, for the changes it may not have seen.
func (c *counts) resync() {
	for after := ""; ; {
		ids, err := c.reader.Contents(context.Background(), "", after, 1000)
		if err != nil {
			c.s.log.Warn("count topics: listing contents", "err", err)
			return
		}
		c.mu.Lock()
		for _, id := range ids {
			select {
			case <-c.stop:
				c.mu.Unlock()
				return
			default:
			}
			if st := c.state(id); !st.queued {
				c.publish(st, true)
			}
		}
		c.mu.Unlock()
		if len(ids) < 1000 {
			return
		}
		after = ids[len(ids)-1]
	}
}

// publish publishes, to the subscribers of each, a content's count JSON and, with
// perReaction, the count of each reaction marked changed (all: of every reaction the
// content has), each after its Home Assistant config the first time. A changed
// reaction that the store no longer holds has its topics cleared (an empty message).
// A topic that nobody subscribes to is not published; one whose value is the one it
// last carried is not published again: changes that cancel out within an interval
// publish nothing, and neither does a resync for what did not change. c.mu is held.
func (c *counts) publish(st *contentState, all bool) {
	rc, err := c.reader.Counts(context.Background(), st.id)
	if err != nil {
		return
	}
	if st.epoch != c.epoch {
		// A subscription was served since these were published: its values may be
		// newer (see counts).
		st.epoch = c.epoch
		st.json = nil
		for i := range st.reactions {
			st.reactions[i].known = false
		}
	}
	subscribed := false // some topic of the content has a subscriber
	// The seed's JSON, keys in order, as encoding/json writes a map.
	if !slices.IsSortedFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) }) {
		slices.SortFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
	}
	if topic := c.prefix + "/" + st.id; !c.s.hook.subscribed(topic) {
		st.json = nil
	} else {
		subscribed = true
		c.buf = appendCountsJSON(c.buf[:0], st.id, rc)
		if !bytes.Equal(c.buf, st.json) {
			st.json = bytes.Clone(c.buf) // not reused: queued to the subscribers
			c.publishLive(topic, st.json, jsonProps)
		}
	}
	if all {
		for _, r := range rc {
			st.mark(r.ReactionType)
		}
	}
	for i := range st.reactions {
		r := &st.reactions[i]
		if !r.changed {
			continue
		}
		r.changed = false
		var n int64
		present := false
		for _, x := range rc {
			if x.ReactionType == r.name {
				n, present = x.Count, true
				break
			}
		}
		if c.ha != nil {
			c.ha.reaction(st.id, r.name, present) // the config before the state
		}
		if !c.perReaction {
			continue
		}
		topic := c.prefix + "/" + st.id + "/" + r.name
		if !c.s.hook.subscribed(topic) {
			r.known = false
			continue
		}
		subscribed = true
		if r.known && r.present == present && r.count == n {
			continue // unchanged (or absent and already cleared)
		}
		var p []byte // empty: clears the value
		if present {
			p = strconv.AppendInt(nil, n, 10) // not reused: queued to the subscribers
		}
		c.publishLive(topic, p, reactionProps)
		r.known, r.present, r.count = true, present, n
	}
	if !subscribed && !st.queued {
		delete(c.contents, st.id) // nothing to remember for nobody
	}
}

// The MQTT 5 properties of the count topics' messages.
var (
	jsonProps     = packets.Properties{ContentType: "application/json", PayloadFormat: 1, PayloadFormatFlag: true}
	reactionProps = packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true}
)

// countMessage is the message of a count topic, retained as every count topic's is.
func (c *counts) countMessage(topic string, payload []byte, props packets.Properties) packets.Packet {
	return packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:       topic,
		Payload:         payload,
		Properties:      props,
		Origin:          c.s.hook.relay.ID,
		Created:         time.Now().Unix(),
		ProtocolVersion: c.s.hook.relay.Properties.ProtocolVersion,
	}
}

// publishLive publishes a count topic's new value to its subscribers, retain flag set
// (as a retained message's live update: subscribers asking for retain as published
// see it) but not stored: the next subscriber reads the store.
func (c *counts) publishLive(topic string, payload []byte, props packets.Properties) {
	c.s.mochi.PublishToSubscribers(c.countMessage(topic, payload, props))
}

// countSelection is what a topic filter matches of the count topics.
type countSelection struct {
	oneContent  bool   // only content (else every one)
	content     string //
	json        bool   // <prefix>/<content>
	reactions   bool   // <prefix>/<content>/<reaction>
	oneReaction bool   // only reaction (else every one)
	reaction    string
}

// has reports whether sel holds the topic of content and, if not "", reaction.
func (sel countSelection) has(content, reaction string) bool {
	if sel.oneContent && content != sel.content {
		return false
	}
	if reaction == "" {
		return sel.json
	}
	return sel.reactions && (!sel.oneReaction || reaction == sel.reaction)
}

// matchFilter returns which count topics under prefix filter (not shared) matches, as
// MQTT matches topic names (4.7): '+' one level, a last '#' any number, its parent
// level included. ok is false when it matches none. Topic ids hold no '/', '+' or '#',
// so a level of the filter is a content or a reaction, or a wildcard.
func matchFilter(prefix, filter string, perReaction bool) (sel countSelection, ok bool) {
	all := countSelection{json: true, reactions: perReaction}
	for p := range strings.SplitSeq(prefix, "/") {
		level, rest, more := strings.Cut(filter, "/")
		switch {
		case level == "#":
			return all, true
		case level != "+" && level != p, !more:
			return sel, false
		}
		filter = rest
	}
	levels := strings.Split(filter, "/")
	switch {
	case levels[0] == "#":
		return all, true
	case levels[0] != "+":
		sel.oneContent, sel.content = true, levels[0]
	}
	switch {
	case len(levels) == 1:
		sel.json = true
	case levels[1] == "#" && len(levels) == 2:
		sel.json, sel.reactions = true, perReaction
	case len(levels) == 2 || len(levels) == 3 && levels[2] == "#":
		sel.reactions = perReaction
		if levels[1] != "+" {
			sel.oneReaction, sel.reaction = true, levels[1]
		}
	}
	return sel, sel.json || sel.reactions
}

// serve calls fn with the current value of each count topic that filter matches, read
// from the store, as a retained message (mochi's RetainedSource, patch 31; mochi has
// checked retain handling and shared subscriptions, and applies the ACL, QoS and
// retain as published to each message). It runs on the subscribing client's goroutine.
func (c *counts) serve(filter string, fn func(packets.Packet)) {
	sel, ok := matchFilter(c.prefix, filter, c.perReaction)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watchLocked() // normally onSubscribe did
	c.epoch++
	ctx := context.Background()
	var buf []byte
	content := func(id string) {
		rc, err := c.reader.Counts(ctx, id)
		if err != nil {
			return
		}
		if !slices.IsSortedFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) }) {
			slices.SortFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
		}
		if sel.has(id, "") {
			buf = appendCountsJSON(buf[:0], id, rc)
			fn(c.countMessage(c.prefix+"/"+id, bytes.Clone(buf), jsonProps))
		}
		if sel.reactions {
			for _, r := range rc {
				if sel.has(id, r.ReactionType) {
					fn(c.countMessage(c.prefix+"/"+id+"/"+r.ReactionType, strconv.AppendInt(nil, r.Count, 10), reactionProps))
				}
			}
		}
	}
	if sel.oneContent {
		content(sel.content)
		return
	}
	for after := ""; ; {
		ids, err := c.reader.Contents(ctx, "", after, 1000)
		if err != nil {
			c.s.log.Warn("count topics: listing contents", "err", err)
			return
		}
		for _, id := range ids {
			content(id)
		}
		if len(ids) < 1000 {
			return
		}
		after = ids[len(ids)-1]
	}
}

// onSubscribe starts watching the feed for a SUBSCRIBE with a filter that may match
// count topics, before mochi adds its subscriptions; onSubscribed ends the window
// in which the tick, not yet seeing them in the index, must not stop the watch.
func (c *counts) onSubscribe(pk *packets.Packet) bool {
	if !c.anyCountFilter(pk) {
		return false
	}
	c.mu.Lock()
	c.pending++
	c.watchLocked()
	c.mu.Unlock()
	return true
}

func (c *counts) onSubscribed(pk *packets.Packet) {
	if !c.anyCountFilter(pk) {
		return
	}
	c.mu.Lock()
	if c.pending > 0 {
		c.pending--
	}
	c.mu.Unlock()
}

func (c *counts) anyCountFilter(pk *packets.Packet) bool {
	for _, sub := range pk.Filters {
		f := sub.Filter
		if mqtt.IsSharedFilter(f) {
			_, f, _ = strings.Cut(f, "/") // $share/<group>/<filter>
			_, f, _ = strings.Cut(f, "/")
		}
		if _, ok := matchFilter(c.prefix, f, c.perReaction); ok {
			return true
		}
	}
	return false
}

// appendCountsJSON appends the seed's count JSON of a content, byte for byte what
// encoding/json makes of countsMessage (rc sorted by reaction type), without its
// reflection and map.
func appendCountsJSON(b []byte, contentID string, rc []store.ReactionCount) []byte {
	b = append(b, `{"content_id":`...)
	b = appendJSONString(b, contentID)
	b = append(b, `,"reaction_count":{`...)
	for i, r := range rc {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, r.ReactionType)
		b = append(b, ':')
		b = strconv.AppendInt(b, r.Count, 10)
	}
	return append(b, "}}"...)
}

// appendJSONString appends s as encoding/json writes a string: HTML characters, U+2028
// and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// inject publishes a retained QoS 1 message from the broker itself, stored in mochi's
// topic index: Home Assistant's discovery configs and availability topic (count topics
// are served from the store, see counts). With nobody subscribed to the topic the
// message is only retained, as mochi's publish would do, without its publish path (the
// hooks, the packet copies). A client subscribing meanwhile gets the message either
// way: mochi retains before it looks for subscribers, and a new subscription scans the
// retained messages after it is added.
func (c *counts) inject(topic string, payload []byte, props packets.Properties) {
	m := c.s.mochi
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   topic,
		Payload:     payload,
		PacketID:    1, // inline publishes are not acknowledged; mochi wants an id for QoS > 0
		Properties:  props,
	}
	if !c.s.hook.subscribed(topic) && m.Options.Capabilities.RetainAvailable != 0 {
		pk.PacketID = 0 // as mochi's retained copy
		pk.Origin = c.s.hook.relay.ID
		pk.Created = time.Now().Unix()
		pk.ProtocolVersion = c.s.hook.relay.Properties.ProtocolVersion
		m.Topics.RetainMessage(pk)
		atomic.StoreInt64(&m.Info.Retained, int64(m.Topics.Retained.Len()))
		return
	}
	if err := m.InjectPacket(c.s.hook.relay, pk); err != nil {
		c.s.log.Debug("publishing retained", "topic", pk.TopicName, "err", err)
	}
	c.s.hook.uncount() // not a message received from a client
}

// countsSource is mochi's RetainedSource for the count topics (patch 31): it owns every
// topic under the counts prefix, and serves them once StartCounts ran.
type countsSource struct {
	s      *Server
	prefix string // <CountsPrefix>/
}

func (src *countsSource) Owns(topic string) bool { return strings.HasPrefix(topic, src.prefix) }

func (src *countsSource) RetainedMessages(filter string, fn func(packets.Packet)) {
	if c := src.s.counts.Load(); c != nil {
		c.serve(filter, fn)
	}
}

// countsHook tells the count topics of SUBSCRIBEs (see counts.onSubscribe) and
// counts the wills on count topics, which mochi does not publish (patch 31).
type countsHook struct {
	mqtt.HookBase
	s *Server
}

func (h *countsHook) ID() string { return "arina-counts" }

func (h *countsHook) Provides(b byte) bool {
	return b == mqtt.OnSubscribe || b == mqtt.OnSubscribed || b == mqtt.OnWill
}

func (h *countsHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	if c := h.s.counts.Load(); c != nil {
		c.onSubscribe(&pk)
	}
	return pk
}

func (h *countsHook) OnSubscribed(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	if c := h.s.counts.Load(); c != nil {
		c.onSubscribed(&pk)
	}
}

func (h *countsHook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	if h.s.hook.isCountTopic(will.TopicName) {
		h.s.hook.refused.WithLabelValues(refusedCountTopic).Inc()
		h.s.log.Debug("will on a count topic not published", "client_id", cl.ID, "topic", will.TopicName)
	}
	return will, nil
}

// CountsWatching reports whether the count topics follow the change feed: while some
// subscription matches a count topic, or Home Assistant discovery is on. Otherwise
// changes cost the count topics nothing.
func (s *Server) CountsWatching() bool {
	c := s.counts.Load()
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w != nil
}
