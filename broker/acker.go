package broker

import (
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// acker completes one client's held-back QoS 1/2 publishes, in the order the writer
// applied them (which is the order the client sent them), on its own goroutine: the
// writer only appends to its queue and never blocks on a client's socket.
//
// QoS 1: the acker writes the PUBACKs of everything applied since its last wake-up in
// one write, under the client's lock that mochi's WritePacket also takes (so packets
// never interleave), then relays the messages through an inline client (mochi retains
// and fans out; it sends no ack for inline publishes). QoS 2: the packet is re-injected
// on the client itself, so mochi keeps its PUBREC/PUBREL state.
//
// Race freedom: the writer goroutine calls pending.Done, which only appends under mu
// and signals wake without blocking; the acker goroutine alone reads the queue and
// writes to the client. A QoS 2 packet is re-injected with its payload buffer listed
// in the hook's injecting set, so OnPublish, called synchronously by InjectPacket on
// the acker goroutine, lets it through instead of ingesting it again; mochi decodes
// every received packet into a new buffer, so no other publish can match (a packet id
// could: the client may reuse it as soon as PUBREC is out, inside InjectPacket).
//
// A QoS 1 message is relayed if, when it arrived, some client was subscribed to its
// topic (or it is retained), to whoever is subscribed once it is applied.
//
// Known differences from an unmodified broker: PUBACKs of ingest publishes may come
// after those of later non-ingest publishes on the same connection (clients match acks
// by packet id); relayed ingest messages have the relay as their origin, so a
// no-local subscription of the publisher itself still receives them; and, as the
// acker sends subscribers an ingest message after its PUBACK or PUBREC, a client may
// get the PUBACK, or for QoS 2 the PUBCOMP (the connection's read goroutine answers
// PUBREL), before subscribers get the message.
type acker struct {
	h        *ingestHook
	cl       *mqtt.Client
	mu       sync.Mutex
	queue    []*pending // guarded by mu
	wake     chan struct{}
	done     chan struct{}
	stopOnce sync.Once

	acks   []byte     // acker goroutine only: PUBACKs gathered for one write
	relays []*pending // acker goroutine only: their messages, relayed after the write

	// raw is the socket of a plain TCP connection, nil otherwise (TLS, WebSocket).
	// With raw set, every completed publish of the client goes through the hook's
	// flusher first (flusher.go); it writes the PUBACKs itself when it can, and hands
	// the rest to this acker, in order.
	raw syscall.RawConn
	// Guarded by mu: busy is set when the flusher hands this acker work, and cleared
	// by the acker once it has written and relayed all of it; while it is set, the
	// flusher hands the acker everything of this client, so acks keep their order.
	// carry holds PUBACK bytes the flusher could not write (the socket was full),
	// carryRelays the publishes to relay after them: both come before queue.
	busy        bool
	carry       []byte
	carryRelays []*pending
	fl          flusherState // the flusher's roundMu holder only
}

// pending is one held-back publish; it is the ingest.Ack of its event. It keeps the
// whole packet (800 bytes) only when it will be needed: to relay the message (it is
// retained, or some client was subscribed to its topic when it arrived) or to hand a
// QoS 2 publish back to mochi. Most ingest events need neither, and copying the packet
// for each was ~3% of the broker's CPU.
type pending struct {
	a     *acker
	err   error
	id    uint16 // packet id
	qos   byte
	topic string
	pk    *packets.Packet // nil: nothing to relay
}

var _ ingest.Ack = (*pending)(nil)

// Done is called by the writer goroutine once the event is applied (or failed).
func (p *pending) Done(_ store.Result, err error) {
	p.err = err
	a := p.a
	if a.raw != nil {
		a.h.flusher.add(p)
		return
	}
	a.mu.Lock()
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// ackerFor returns the client's acker, made on its first held-back publish. It is kept
// on the client (mochi patch 26): a lookup in h.ackers for every event was ~2.6% of the
// broker's CPU with 2000 connections; h.ackers lists them for Stop and OnDisconnect.
func (h *ingestHook) ackerFor(cl *mqtt.Client) *acker {
	if a, _ := cl.HookData.Load().(*acker); a != nil {
		return a
	}
	a := &acker{h: h, cl: cl, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if c, ok := cl.Net.Conn.(*net.TCPConn); ok {
		if raw, err := c.SyscallConn(); err == nil {
			a.raw = raw
			h.flusher.start(h)
		}
	}
	h.ackers.Store(cl, a) // only this client's read goroutine creates its acker
	cl.HookData.Store(a)
	h.ackerWG.Add(1)
	go a.run()
	return a
}

// reinjected reports whether pk is a held-back publish being completed by an acker.
// Neither the acker (OnDisconnect may have removed it) nor the packet id (reusable once
// PUBREC/PUBCOMP is out, inside InjectPacket) identifies it; its payload buffer does:
// mochi decodes every received packet into a new buffer.
func (h *ingestHook) reinjected(pk *packets.Packet) bool {
	// Only QoS 2 publishes are re-injected; held-back events always have a payload.
	if pk.FixedHeader.Qos != 2 || len(pk.Payload) == 0 {
		return false
	}
	_, ok := h.injecting.Load(&pk.Payload[0])
	return ok
}

func (a *acker) newPending(pk *packets.Packet) *pending {
	p, _ := a.h.pending.Get().(*pending)
	if p == nil {
		p = new(pending)
	}
	p.a, p.err, p.id, p.qos, p.topic, p.pk = a, nil, pk.PacketID, pk.FixedHeader.Qos, pk.TopicName, nil
	// A client subscribing after the message arrived may or may not get it, as with any
	// publish racing a SUBSCRIBE; one subscribed by then does.
	if pk.FixedHeader.Qos == 2 || pk.FixedHeader.Retain || a.h.subscribed(pk.TopicName) {
		// The topic alias was resolved on the first pass; resolving it again could undo
		// a newer mapping the client made meanwhile.
		kept := *pk // declared here, where it is needed
		kept.Properties.TopicAlias, kept.Properties.TopicAliasFlag = 0, false
		p.pk = &kept
	}
	return p
}

func (a *acker) release(p *pending) {
	*p = pending{}
	a.h.pending.Put(p)
}

func (a *acker) stop() {
	a.stopOnce.Do(func() { close(a.done) })
}

func (a *acker) run() {
	defer a.h.ackerWG.Done()
	var batch []*pending
	for {
		select {
		case <-a.done:
			return
		case <-a.wake:
		}
		for {
			a.mu.Lock()
			batch, a.queue = a.queue, batch[:0]
			a.acks = append(a.acks, a.carry...)
			a.relays = append(a.relays, a.carryRelays...)
			a.carry = a.carry[:0]
			clear(a.carryRelays)
			a.carryRelays = a.carryRelays[:0]
			if len(batch) == 0 && len(a.acks) == 0 && len(a.relays) == 0 {
				a.busy = false // all written: the flusher may write this client's acks again
				a.mu.Unlock()
				break
			}
			a.mu.Unlock()
			for i, p := range batch {
				a.complete(p)
				batch[i] = nil
			}
			a.flush()
		}
	}
}

// complete acknowledges one held-back publish. QoS 1 PUBACKs are gathered and written
// in one go by flush (one syscall for a whole batch instead of one per event); the
// message is relayed after its ack, as mochi does. QoS 2 goes back through mochi,
// which keeps the PUBREC/PUBREL state.
func (a *acker) complete(p *pending) {
	cl := a.cl
	if p.err != nil {
		a.flush()
		a.h.log.Debug("mqtt event not applied", "client_id", cl.ID, "topic", p.topic, "err", p.err)
		if cl.Properties.ProtocolVersion == 5 {
			_ = a.h.nack(cl, packets.Packet{PacketID: p.id, FixedHeader: packets.FixedHeader{Qos: p.qos}}, failCode(p.err))
		} else {
			_ = a.h.refuse311(cl, p.err) // no ack: the client resends after reconnecting
		}
		a.release(p)
		return
	}
	if p.qos == 1 {
		// PUBACK, reason 0x00 and no properties: the 2-byte form, the same in 3.1.1 and 5.
		a.acks = append(a.acks, packets.Puback<<4, 2, byte(p.id>>8), byte(p.id))
		a.relays = append(a.relays, p)
		return
	}
	a.flush()
	if cl.Closed() {
		a.release(p)
		return // the connection is gone: no ack can reach it, the client resends
	}
	pk := *p.pk
	key := &pk.Payload[0]
	a.h.injecting.Store(key, struct{}{})
	err := a.h.server.InjectPacket(cl, pk)
	a.h.injecting.Delete(key)
	a.h.uncount()
	if err != nil {
		a.h.log.Debug("completing held-back publish", "client_id", cl.ID, "topic", p.topic, "err", err)
	}
	a.release(p)
}

// flush writes the gathered PUBACKs to the client, then relays their messages.
func (a *acker) flush() {
	if len(a.acks) > 0 {
		cl := a.cl
		cl.Lock() // mochi's WritePacket holds it while it writes whole packets
		n, err := cl.Net.Conn.Write(a.acks)
		cl.Unlock()
		info := a.h.server.Info
		atomic.AddInt64(&info.BytesSent, int64(n))
		atomic.AddInt64(&info.PacketsSent, int64(len(a.acks)/4))
		if err != nil {
			a.h.log.Debug("writing pubacks", "client_id", cl.ID, "err", err)
		}
		a.acks = a.acks[:0]
	}
	for i, p := range a.relays {
		// The relay client is inline: mochi retains and publishes to subscribers and
		// sends no ack. Most ingest events have no subscriber and are not retained:
		// they skip mochi's publish path (hooks, packet copies) altogether.
		if p.pk != nil {
			if err := a.h.server.InjectPacket(a.h.relay, *p.pk); err != nil {
				a.h.log.Debug("relaying publish", "topic", p.topic, "err", err)
			}
			a.h.uncount()
		}
		a.release(p)
		a.relays[i] = nil
	}
	a.relays = a.relays[:0]
}

// subscribed reports whether any subscription, of a client, a shared group or an
// inline subscriber, matches topic now. It reads mochi's topic index, which is exact;
// a client subscribing while an event is relayed may or may not get it, as with any
// publish racing a SUBSCRIBE.
func (h *ingestHook) subscribed(topic string) bool {
	if h.server.Topics.Empty() {
		return false
	}
	s := h.server.Topics.Subscribers(topic)
	return len(s.Subscriptions) > 0 || len(s.Shared) > 0 || len(s.InlineSubscriptions) > 0
}

// uncount undoes InjectPacket's count of a received packet: it was counted when it
// first arrived.
func (h *ingestHook) uncount() {
	atomic.AddInt64(&h.server.Info.MessagesReceived, -1)
	atomic.AddInt64(&h.server.Info.PacketsReceived, -1)
}
