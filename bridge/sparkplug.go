package bridge

import (
	"sync"
	"sync/atomic"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/store"
)

// UseSparkplug sets the decoder of the upstreams with Sparkplug set; the daemon passes
// the embedded broker's (Server.Sparkplug), so the edge nodes' state is one. Call it
// before Start. Without it, their Sparkplug messages are acknowledged as unmatched.
func (b *Bridge) UseSparkplug(d *sparkplug.Decoder) { b.sparkplug = d }

// sparkplugFilter is the subscription of a Sparkplug upstream.
func (u *upstream) sparkplugFilter() string {
	f := sparkplug.Namespace + "/#"
	if u.cfg.ShareGroup != "" {
		f = "$share/" + u.cfg.ShareGroup + "/" + f
	}
	return f
}

// handleSparkplug decodes an upstream's Sparkplug B message and hands its events to
// the sink; the message is acknowledged upstream once all of them are applied. A
// message that is not Sparkplug B is acknowledged and dropped, as a bad event is.
func (u *upstream) handleSparkplug(m *bridgeMsg) bool {
	if u.b.sparkplug == nil {
		m.result = "unmatched"
		u.pushAck(m)
		return true
	}
	res, err := u.b.sparkplug.Decode(m.msg.Topic(), m.msg.Payload(), ingest.SourceBridge)
	for _, e := range res.Rejected {
		u.b.sink.Reject(ingest.SourceBridge, ingest.CodeOf(e))
	}
	if err != nil {
		u.b.sink.Reject(ingest.SourceBridge, ingest.CodeOf(err))
		u.b.log.Debug("bridge sparkplug message rejected", "upstream", u.cfg.Name, "topic", m.msg.Topic(), "err", err)
	}
	if err != nil || len(res.Events) == 0 {
		m.result = "rejected"
		if err == nil && len(res.Rejected) == 0 {
			m.result = "acked" // nothing to apply (STATE, commands, no membership in it)
		}
		u.pushAck(m)
		return true
	}
	m.evs = res.Events
	return u.submit(m)
}

// multiAck completes a bridged message once the writer answered for all its events.
type multiAck struct {
	m    *bridgeMsg
	left atomic.Int64
	mu   sync.Mutex
	err  error
}

func (a *multiAck) Done(_ store.Result, err error) {
	if err != nil {
		a.mu.Lock()
		if a.err == nil {
			a.err = err
		}
		a.mu.Unlock()
	}
	if a.left.Add(-1) == 0 {
		a.m.Done(store.Result{}, a.err)
	}
}

// submitAll hands every event of m to the sink, each retried with capped back-off
// while the queue is full, as submit does; a store failure has the ack path retry
// them all. It returns false when the bridge is stopping (m is then never
// acknowledged: the upstream delivers it again to the next session).
func (u *upstream) submitAll(m *bridgeMsg) bool {
	m.err, m.result = nil, "acked"
	a := &multiAck{m: m}
	a.left.Store(int64(len(m.evs)))
	for _, ev := range m.evs {
		if !u.enqueue(ev, a) {
			return false
		}
	}
	return true
}
