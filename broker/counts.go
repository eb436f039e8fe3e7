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

// counts keeps the retained topics <prefix>/<content_id> up to date: it watches the
// change feed, gathers the contents that changed, and at most once per interval
// publishes each one's counts, read from the store. With perReaction, it also keeps
// <prefix>/<content_id>/<reaction_type> (a bare integer) for each reaction that
// changed. It runs on its own goroutine,
// never on the writer's, and a publish that stalls behind a slow subscriber stalls
// only this goroutine.
type counts struct {
	s        *Server
	hub      *feed.Hub
	reader   CountsReader
	prefix   string
	interval time.Duration
	// perReaction: also publish <prefix>/<content_id>/<reaction_type>.
	perReaction bool
	ha          *homeAssistant // nil: no Home Assistant discovery
	// contents holds what each content's topics last carried and what changed since
	// (run's goroutine only): a topic is published only when its value changes.
	contents map[string]*contentState
	buf      []byte // publish's scratch for the count JSON
	stop     chan struct{}
	wg       sync.WaitGroup
}

// contentState is what the count topics of one content last carried, and which of its
// reactions changed since. Slices, not maps: a content has a few reactions, and this
// is read for every change and every publish.
type contentState struct {
	id        string
	json      []byte // the payload of <prefix>/<content_id>; nil: not published yet
	reactions []reactionState
	queued    bool // in run's list of contents to publish at the next tick
}

type reactionState struct {
	name    string
	count   int64 // the count its topic carries
	present bool  // its topic carries a count (false: not published yet, or cleared)
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

// StartCounts starts publishing retained count topics under prefix for the changes
// of hub. Close stops it. An empty prefix disables count topics.
func (s *Server) StartCounts(hub *feed.Hub, r CountsReader, prefix string, interval time.Duration) {
	if prefix == "" || s.counts != nil {
		return
	}
	if interval <= 0 {
		interval = DefaultCountsInterval
	}
	c := &counts{s: s, hub: hub, reader: r, prefix: prefix, interval: interval, stop: make(chan struct{}),
		perReaction: !s.opts.NoReactionCountTopics, contents: make(map[string]*contentState)}
	if s.opts.HomeAssistant != nil {
		c.ha = newHomeAssistant(c, *s.opts.HomeAssistant)
	}
	s.counts = c
	c.wg.Add(1)
	go c.run()
}

func (c *counts) close() {
	close(c.stop)
	c.wg.Wait()
}

func (c *counts) run() {
	defer c.wg.Done()
	// dirty: the contents changed since the last tick, their changed reactions marked
	// (the per-reaction topics are published only for those).
	var dirty []*contentState
	w := c.hub.Watch()
	if c.ha != nil {
		c.s.publishStatus("online")
	}
	c.resync() // retained messages do not survive a restart: publish every content once
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			c.hub.Unwatch(w)
			return
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
			c.hub.Unwatch(w)
			w = c.hub.Watch()
			for i, st := range dirty {
				st.queued = false
				dirty[i] = nil
			}
			dirty = dirty[:0]
			c.resync()
		case <-tick.C:
			for i, st := range dirty {
				st.queued = false
				c.publish(st, false)
				dirty[i] = nil
			}
			dirty = dirty[:0]
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

func (c *counts) resync() {
	for after := ""; ; {
		ids, err := c.reader.Contents(context.Background(), "", after, 1000)
		if err != nil {
			c.s.log.Warn("count topics: listing contents", "err", err)
			return
		}
		for _, id := range ids {
			select {
			case <-c.stop:
				return
			default:
			}
			c.publish(c.state(id), true)
		}
		if len(ids) < 1000 {
			return
		}
		after = ids[len(ids)-1]
	}
}

// publish publishes a content's count JSON and, with perReaction, the count of each
// reaction marked changed (all: of every reaction the content has), each after its
// Home Assistant config the first time. A changed reaction that the store no longer
// holds has its topics cleared (empty retained messages). A topic whose value is the
// one it last carried is not published again: changes that cancel out within an
// interval publish nothing, and neither does a resync for what did not change.
func (c *counts) publish(st *contentState, all bool) {
	rc, err := c.reader.Counts(context.Background(), st.id)
	if err != nil {
		return
	}
	// The seed's JSON, keys in order, as encoding/json writes a map.
	if !slices.IsSortedFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) }) {
		slices.SortFunc(rc, func(a, b store.ReactionCount) int { return strings.Compare(a.ReactionType, b.ReactionType) })
	}
	c.buf = appendCountsJSON(c.buf[:0], st.id, rc)
	if !bytes.Equal(c.buf, st.json) {
		st.json = bytes.Clone(c.buf) // not reused: the broker keeps it retained
		c.inject(c.prefix+"/"+st.id, st.json,
			packets.Properties{ContentType: "application/json", PayloadFormat: 1, PayloadFormatFlag: true})
	}
	if !c.perReaction && c.ha == nil {
		for i := range st.reactions {
			st.reactions[i].changed = false
		}
		return
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
		if r.present == present && r.count == n {
			continue // unchanged (or absent and already cleared)
		}
		if c.ha != nil {
			c.ha.reaction(st.id, r.name, present) // the config before the state
		}
		if c.perReaction {
			var p []byte // empty: clears the retained message
			if present {
				p = strconv.AppendInt(nil, n, 10) // not reused: the broker keeps it retained
			}
			c.inject(c.prefix+"/"+st.id+"/"+r.name, p, packets.Properties{PayloadFormat: 1, PayloadFormatFlag: true})
		}
		r.present, r.count = present, n
	}
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

// inject publishes a retained QoS 1 message from the broker itself. With nobody
// subscribed to the topic the message is only retained, as mochi's publish would do,
// without its publish path (the hooks, the packet copies): at 40k events/s over 1000
// contents x 8 reactions that path was ~5% of the broker's CPU. A client subscribing
// meanwhile gets the message either way: mochi retains before it looks for
// subscribers, and a new subscription scans the retained messages after it is added.
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
		c.s.log.Debug("count topics: publishing", "topic", pk.TopicName, "err", err)
	}
	c.s.hook.uncount() // not a message received from a client
}
