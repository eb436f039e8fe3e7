package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
)

// ingestHook turns PUBLISH packets on ingest topics into events. It keeps nothing of the
// packet after a call returns.
type ingestHook struct {
	mqtt.HookBase
	prefix     string
	maxPayload int
	// countTopics is "<counts prefix>/", the start of the count topics, which only
	// arina publishes; "": none.
	countTopics string
	batchTopic  string // <prefix>/batch: many events in one message
	// allowItem reports whether cl may write the topic of one batch item
	// (<prefix>/<content>/<reaction>); nil without a users file.
	allowItem       func(cl *mqtt.Client, topic string) bool
	maxBatchPayload int
	sink            Sink
	log             *slog.Logger
	closing         *atomic.Bool // the broker is shutting down: wills are not ingested
	server          *mqtt.Server // for re-injecting held-back publishes
	relay           *mqtt.Client // inline client that relays acknowledged QoS 1 publishes
	ackers          sync.Map     // *mqtt.Client -> *acker
	ackerWG         sync.WaitGroup
	flusher         flusher  // writes the PUBACKs of TCP clients (flusher.go)
	injecting       sync.Map // *byte -> struct{}: first payload byte of each publish being re-injected
	pending         sync.Pool
	refused         *prometheus.CounterVec // publishes refused before any processing, by reason
	sparkplug       *sparkplug.Decoder     // spBv1.0/... messages; nil: not ingested
}

// Reasons of arina_mqtt_publishes_refused_total.
const (
	refusedSys        = "sys_topic"
	refusedCountTopic = "count_topic"
)

func newRefusedCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_mqtt_publishes_refused_total",
		Help: "MQTT publishes refused before any processing, by reason (sys_topic: a client published to $SYS; count_topic: a client published, or left a will, on a count topic).",
	}, []string{"reason"})
	c.WithLabelValues(refusedSys)
	c.WithLabelValues(refusedCountTopic)
	return c
}

func (h *ingestHook) ID() string { return "arina-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWillSent || b == mqtt.OnDisconnect
}

// OnDisconnect stops the client's acker: acks still pending are for a connection that
// is gone; the client resends those messages (their events were applied all the same).
func (h *ingestHook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if v, ok := h.ackers.LoadAndDelete(cl); ok {
		cl.HookData.Store((*acker)(nil))
		v.(*acker).stop()
	}
}

// Stop stops every acker and waits for them; mochi calls it on Close, after the
// clients are gone.
func (h *ingestHook) Stop() error {
	h.ackers.Range(func(k, v any) bool {
		h.ackers.Delete(k)
		v.(*acker).stop()
		return true
	})
	h.flusher.stop()
	h.ackerWG.Wait()
	return nil
}

func (h *ingestHook) parse(cl *mqtt.Client, topic string, payload []byte) (ingest.Event, bool, error) {
	content, reaction, ok := ingest.TopicEvent(h.prefix, topic)
	if !ok {
		return ingest.Event{}, false, nil
	}
	var ev ingest.Event
	var err error
	if len(payload) > h.maxPayload {
		err = &ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("payload of %d bytes is over the %d byte limit", len(payload), h.maxPayload)}
	} else {
		ev, err = ingest.ParsePayload(content, reaction, payload, ingest.SourceMQTT)
	}
	if err != nil {
		code := ingest.CodeOf(err)
		h.sink.Reject(ingest.SourceMQTT, code)
		if h.log.Enabled(context.Background(), slog.LevelDebug) {
			h.log.Debug("mqtt event rejected", "client_id", cl.ID, "topic", topic, "reason", string(code), "err", err)
		}
	}
	return ev, true, err
}

// mochi calls the OnPublish hooks with the packet by pointer only when every one that
// provides OnPublish takes it so (mochi patch 35); Arina's all do.
var (
	_ mqtt.PublishPtrHook = (*ingestHook)(nil)
	_ mqtt.PublishPtrHook = (*authHook)(nil)
	_ mqtt.PublishPtrHook = (*limitsHook)(nil)
)

// OnPublish ingests a publish on an ingest topic; see OnPublishPtr.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, h.OnPublishPtr(cl, &pk)
}

// OnPublishPtr ingests a publish on an ingest topic; see the package doc for the acks.
// mochi calls it in place of OnPublish (mochi patch 35), with the packet by pointer: a
// held-back QoS 1 publish, which goes no further than here on the client's read
// goroutine, so needs ~3 KB of its stack, not ~18 KB, and the stack no longer grows
// past 16 KB (and is shrunk by every GC and grown again by the next event). It never
// changes the packet; the cold paths, which pass it by value, are out of line.
func (h *ingestHook) OnPublishPtr(cl *mqtt.Client, pk *packets.Packet) error {
	if cl.Net.Inline || h.reinjected(pk) {
		return nil
	}
	if mqtt.IsSysTopic(pk.TopicName) {
		return h.refuse(cl, pk, refusedSys, packets.ErrNotAuthorized)
	}
	if h.isCountTopic(pk.TopicName) {
		return h.refuse(cl, pk, refusedCountTopic, errCountTopic)
	}
	if pk.TopicName == h.batchTopic {
		return h.onBatchPtr(cl, pk)
	}
	if h.sparkplug != nil && sparkplug.IsTopic(pk.TopicName) {
		return h.onSparkplugPtr(cl, pk)
	}
	ev, isEvent, err := h.parse(cl, pk.TopicName, pk.Payload)
	if !isEvent {
		return nil
	}
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	if err != nil {
		if v5 && qos > 0 {
			// The reason string says what is wrong ("user_id is required", "payload of
			// 5004 bytes is over the 4096 byte limit"), not just the code's name.
			return h.nackBadPayload(cl, pk, err)
		}
		return packets.CodeSuccessIgnore // acked, not applied, not relayed
	}

	ctx := context.Background()
	if qos == 0 {
		if err := h.sink.Enqueue(ctx, ev, nil); err != nil {
			h.log.Debug("mqtt qos0 event dropped", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
			return packets.CodeSuccessIgnore
		}
		return nil
	}
	// QoS 1/2: the ack must wait for the writer, but the client's read goroutine must
	// not, or one connection would get one event per commit. The packet is held back
	// (ErrRejectPacket: mochi sends nothing) and, once the event is applied, the
	// client's acker re-injects it so that mochi acks, retains and relays it as usual.
	a := h.ackerFor(cl)
	p := a.newPending(pk)
	if err := h.sink.Enqueue(ctx, ev, p); err != nil {
		a.release(p)
		h.log.Debug("mqtt event not accepted", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
		if !v5 {
			return h.refuse311(cl, err)
		}
		return h.nackQuota(cl, pk)
	}
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.Debug("mqtt event accepted; ack held until applied", "client_id", cl.ID, "topic", pk.TopicName,
			"qos", qos, "packet_id", pk.PacketID)
	}
	return errHeldBack
}

// onBatchPtr and onSparkplugPtr are OnPublishPtr's cold paths: out of line, so that its
// frame holds no copy of the packet. Neither changes the packet.
//
//go:noinline
func (h *ingestHook) onBatchPtr(cl *mqtt.Client, pk *packets.Packet) error {
	_, err := h.onBatch(cl, *pk)
	return err
}

//go:noinline
func (h *ingestHook) onSparkplugPtr(cl *mqtt.Client, pk *packets.Packet) error {
	_, err := h.onSparkplug(cl, *pk)
	return err
}

// nackQuota answers an MQTT 5 QoS 1/2 publish whose event the pipeline could not take.
//
//go:noinline
func (h *ingestHook) nackQuota(cl *mqtt.Client, pk *packets.Packet) error {
	return h.nack(cl, *pk, packets.ErrQuotaExceeded)
}

// nackBadPayload answers an MQTT 5 QoS 1/2 publish whose event is malformed: the reason
// string says what is wrong ("user_id is required", "payload of 5004 bytes is over the
// 4096 byte limit"), not just the code's name.
//
//go:noinline
func (h *ingestHook) nackBadPayload(cl *mqtt.Client, pk *packets.Packet, err error) error {
	return h.nack(cl, *pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: truncateReason(err.Error())})
}

// errHeldBack is what OnPublish returns for a QoS 1/2 publish whose event was accepted:
// mochi must send nothing now (it is packets.ErrRejectPacket to mochi), the client's
// acker answers once the event is applied. It is not a rejection, and mochi does not
// log it as one (HeldBack, mochi patch 15).
var errHeldBack error = heldBackError{}

type heldBackError struct{}

// errRejectPacket is packets.ErrRejectPacket (a packets.Code value) boxed once: Unwrap
// runs for every accepted event, and boxing it there allocated each time.
var errRejectPacket error = packets.ErrRejectPacket

func (heldBackError) Error() string  { return "publish held back until its event is applied" }
func (heldBackError) Unwrap() error  { return errRejectPacket }
func (heldBackError) HeldBack() bool { return true }

// errCountTopic answers an MQTT 5 publish to a count topic.
var errCountTopic = packets.Code{Code: packets.ErrNotAuthorized.Code, Reason: "count topics are published by arina only"}

// isCountTopic reports whether topic is under the count topics' prefix.
func (h *ingestHook) isCountTopic(topic string) bool {
	return h.countTopics != "" && strings.HasPrefix(topic, h.countTopics)
}

// refuse refuses a client's publish to a topic only the broker may publish: $SYS
// (MQTT 4.7.2) and the count topics (their values come from the store; a client's
// message there would be a count nobody counted). mochi used to drop a $SYS publish
// without an answer, so a QoS 1/2 sender resent it on every reconnect; now (mochi
// patch 13) it reaches the hooks, and mochi never retains or relays it whatever they
// say (nor retains anything on a count topic, patch 31). As for a publish outside the
// ACL: MQTT 5 gets 0x87 (not authorized) for QoS 1/2; 3.1.1, which has no negative
// ack, gets its ack and the message is dropped; QoS 0 is dropped. Each one is counted
// by reason. It is checked here, in the hook every publish passes anyway, not in a
// hook of its own: each OnPublish hook is one more dispatch (when it was measured, each
// also took and returned the packet by value, before mochi patch 35), and a separate
// one measured 1.39-1.48 us of broker CPU per QoS 0 event against 1.35-1.39 without.
//
// It takes the packet by pointer and is kept out of line, so that OnPublishPtr's frame
// holds no copy of it.
//
//go:noinline
func (h *ingestHook) refuse(cl *mqtt.Client, pk *packets.Packet, reason string, code packets.Code) error {
	h.refused.WithLabelValues(reason).Inc()
	switch {
	case pk.FixedHeader.Qos == 0:
		return packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion >= 5:
		return h.nack(cl, *pk, code)
	default:
		return packets.CodeSuccessIgnore
	}
}

// refuse311 answers an MQTT 3.1.1 QoS 1/2 publish that could not be accepted or
// applied (overload, shutdown, store failure). 3.1.1 has no negative ack, and mochi
// would turn a reason code into a success ack; a client resends an unacknowledged
// publish only when it reconnects, and until then it stays in the client's in-flight
// window, which a few such publishes fill. So the connection is closed: the client
// reconnects and resends what was not acknowledged, which is the back-pressure.
func (h *ingestHook) refuse311(cl *mqtt.Client, cause error) error {
	h.log.Debug("closing mqtt 3.1.1 connection: publish not accepted; the client resends after reconnecting",
		"client_id", cl.ID, "err", cause)
	_ = h.server.DisconnectClient(cl, packets.ErrServerBusy)
	return packets.ErrRejectPacket
}

// nack answers an MQTT 5 QoS>0 publish with a failure reason code and tells mochi to do
// nothing more with it. mochi would send a PUBACK even for a QoS 2 publish, so the ack
// is written here: a PUBREC with a reason code >= 0x80 ends a QoS 2 exchange.
func (h *ingestHook) nack(cl *mqtt.Client, pk packets.Packet, code packets.Code) error {
	typ := packets.Puback
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	ack := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: typ},
		PacketID:    pk.PacketID,
		ReasonCode:  code.Code,
		Properties:  packets.Properties{ReasonString: code.Reason},
	}
	if err := cl.WritePacket(ack); err != nil {
		h.log.Debug("writing negative ack", "client_id", cl.ID, "err", err)
	}
	return packets.ErrRejectPacket
}

// OnWillSent ingests a will message published on an ingest topic: a device that drops
// without DISCONNECT can so remove itself. Wills caused by Arina's own shutdown are not
// ingested: the device did not leave.
func (h *ingestHook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if h.closing.Load() {
		return
	}
	if h.sparkplug != nil && sparkplug.IsTopic(pk.TopicName) {
		h.sparkplugWill(cl, pk) // an edge node's NDEATH
		return
	}
	ev, isEvent, err := h.parse(cl, pk.TopicName, pk.Payload)
	if !isEvent || err != nil {
		return
	}
	if err := h.sink.Enqueue(context.Background(), ev, nil); err != nil {
		h.log.Warn("mqtt will event dropped", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
	}
}
