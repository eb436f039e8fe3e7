package broker

import (
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// acker completes one client's held-back QoS 1/2 publishes, in the order the writer
// applied them (which is the order the client sent them), on its own goroutine: the
// writer only appends to its queue and never blocks on a client's socket.
//
// Race freedom: the writer goroutine calls pending.Done, which only appends under mu
// and signals wake without blocking; the acker goroutine alone reads the queue and
// writes to the client. A packet is re-injected with injecting set to its packet id,
// so OnPublish, called synchronously by InjectPacket on the acker goroutine, lets it
// through instead of ingesting it again. A client cannot reuse a packet id before it
// got the ack, so no other publish of the client carries that id meanwhile.
type acker struct {
	h         *ingestHook
	cl        *mqtt.Client
	mu        sync.Mutex
	queue     []*pending // guarded by mu
	wake      chan struct{}
	done      chan struct{}
	stopOnce  sync.Once
	injecting atomic.Uint32 // packet id + 1 of the packet being re-injected, or 0
}

// pending is one held-back publish; it is the ingest.Ack of its event.
type pending struct {
	a   *acker
	pk  packets.Packet
	err error
}

var _ ingest.Ack = (*pending)(nil)

// Done is called by the writer goroutine once the event is applied (or failed).
func (p *pending) Done(_ store.Result, err error) {
	p.err = err
	a := p.a
	a.mu.Lock()
	a.queue = append(a.queue, p)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (h *ingestHook) ackerFor(cl *mqtt.Client) *acker {
	if v, ok := h.ackers.Load(cl); ok {
		return v.(*acker)
	}
	a := &acker{h: h, cl: cl, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.ackers.Store(cl, a) // only this client's read goroutine creates its acker
	h.ackerWG.Add(1)
	go a.run()
	return a
}

// reinjected reports whether pk is a held-back publish being completed by its acker.
func (h *ingestHook) reinjected(cl *mqtt.Client, pk packets.Packet) bool {
	v, ok := h.ackers.Load(cl)
	return ok && v.(*acker).injecting.Load() == uint32(pk.PacketID)+1
}

func (a *acker) newPending(pk packets.Packet) *pending {
	p, _ := a.h.pending.Get().(*pending)
	if p == nil {
		p = new(pending)
	}
	p.a, p.pk, p.err = a, pk, nil
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
		a.mu.Lock()
		batch, a.queue = a.queue, batch[:0]
		a.mu.Unlock()
		for i, p := range batch {
			a.complete(p)
			a.release(p)
			batch[i] = nil
		}
	}
}

func (a *acker) complete(p *pending) {
	cl, pk := a.cl, p.pk
	if p.err != nil {
		a.h.log.Debug("mqtt event not applied", "client_id", cl.ID, "topic", pk.TopicName, "err", p.err)
		if cl.Properties.ProtocolVersion == 5 {
			_ = a.h.nack(cl, pk, packets.ErrUnspecifiedError)
		}
		return // 3.1.1: no ack, the client resends
	}
	// The topic alias was resolved on the first pass; resolving it again could undo a
	// newer mapping the client made meanwhile.
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 0, false
	a.injecting.Store(uint32(pk.PacketID) + 1)
	err := a.h.server.InjectPacket(cl, pk)
	a.injecting.Store(0)
	// InjectPacket counts the packet as received again.
	atomic.AddInt64(&a.h.server.Info.MessagesReceived, -1)
	atomic.AddInt64(&a.h.server.Info.PacketsReceived, -1)
	if err != nil {
		a.h.log.Debug("completing held-back publish", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
	}
}
