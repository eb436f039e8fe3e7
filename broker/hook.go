package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/ingest"
)

// ingestHook turns PUBLISH packets on ingest topics into events. It keeps nothing of the
// packet after a call returns.
type ingestHook struct {
	mqtt.HookBase
	prefix     string
	maxPayload int
	sink       Sink
	log        *slog.Logger
	closing    *atomic.Bool // the broker is shutting down: wills are not ingested
}

func (h *ingestHook) ID() string { return "arina-ingest" }

func (h *ingestHook) Provides(b byte) bool {
	return b == mqtt.OnPublish || b == mqtt.OnWillSent
}

func (h *ingestHook) parse(cl *mqtt.Client, topic string, payload []byte) (ingest.Event, bool, error) {
	content, reaction, ok := ingest.TopicEvent(h.prefix, topic)
	if !ok {
		return ingest.Event{}, false, nil
	}
	if len(payload) > h.maxPayload {
		return ingest.Event{}, true, &ingest.Error{Code: ingest.CodePayloadTooLarge, Msg: fmt.Sprintf("payload of %d bytes is over the %d byte limit", len(payload), h.maxPayload)}
	}
	ev, err := ingest.ParsePayload(content, reaction, payload, ingest.SourceMQTT)
	if err != nil {
		code := ingest.CodeOf(err)
		h.sink.Reject(ingest.SourceMQTT, code)
		if h.log.Enabled(context.Background(), slog.LevelDebug) {
			h.log.Debug("mqtt event rejected", "client_id", cl.ID, "topic", topic, "reason", string(code), "err", err)
		}
	}
	return ev, true, err
}

// OnPublish ingests a publish on an ingest topic; see the package doc for the acks.
func (h *ingestHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	ev, isEvent, err := h.parse(cl, pk.TopicName, pk.Payload)
	if !isEvent {
		return pk, nil
	}
	qos := pk.FixedHeader.Qos
	v5 := cl.Properties.ProtocolVersion == 5
	if err != nil {
		if v5 && qos > 0 {
			return pk, h.nack(cl, pk, packets.ErrPayloadFormatInvalid)
		}
		return pk, packets.CodeSuccessIgnore // acked, not applied, not relayed
	}

	ctx := context.Background()
	if qos == 0 {
		if err := h.sink.Enqueue(ctx, ev, nil); err != nil {
			h.log.Debug("mqtt qos0 event dropped", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
			return pk, packets.CodeSuccessIgnore
		}
		return pk, nil
	}
	if _, err := h.sink.Submit(ctx, ev); err != nil {
		h.log.Debug("mqtt event not applied", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
		if !v5 {
			// MQTT 3.1.1 has no negative ack, and mochi would turn a reason code into a
			// success ack: send none, so the client resends.
			return pk, packets.ErrRejectPacket
		}
		code := packets.ErrQuotaExceeded
		if !errors.Is(err, ingest.ErrQueueFull) && !errors.Is(err, ingest.ErrClosed) {
			code = packets.ErrUnspecifiedError
		}
		return pk, h.nack(cl, pk, code)
	}
	return pk, nil
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
	ev, isEvent, err := h.parse(cl, pk.TopicName, pk.Payload)
	if !isEvent || err != nil {
		return
	}
	if err := h.sink.Enqueue(context.Background(), ev, nil); err != nil {
		h.log.Warn("mqtt will event dropped", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
	}
}
