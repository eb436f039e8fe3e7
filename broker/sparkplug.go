package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/sparkplug"
)

// Sparkplug returns the broker's Sparkplug B decoder; nil when Options.Sparkplug is.
func (s *Server) Sparkplug() *sparkplug.Decoder { return s.hook.sparkplug }

// onSparkplug ingests a Sparkplug B message (package sparkplug decodes it and keeps
// the edge nodes' state). Its events are applied as a batch's are: a QoS 1/2 publish
// is acknowledged once every one of them is applied. A message that is not Sparkplug B
// is refused like a malformed event (MQTT 5: 0x99); a message with no membership in it
// (STATE, commands, other metrics) is relayed as by any broker.
func (h *ingestHook) onSparkplug(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	v5 := cl.Properties.ProtocolVersion == 5
	refuse := func(err error) (packets.Packet, error) {
		if v5 && pk.FixedHeader.Qos > 0 {
			return pk, h.nack(cl, pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: truncateReason(err.Error())})
		}
		return pk, packets.CodeSuccessIgnore // acked, not applied, not relayed
	}
	res, err := h.sparkplug.Decode(pk.TopicName, pk.Payload, ingest.SourceMQTT)
	if err != nil {
		h.sink.Reject(ingest.SourceMQTT, ingest.CodeOf(err))
		h.log.Debug("sparkplug message rejected", "client_id", cl.ID, "topic", pk.TopicName, "reason", string(ingest.CodeOf(err)), "err", err)
		return refuse(err)
	}
	for _, err := range res.Rejected {
		h.sink.Reject(ingest.SourceMQTT, ingest.CodeOf(err))
	}
	if len(res.Rejected) > 0 && h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("sparkplug metrics rejected", "client_id", cl.ID, "topic", pk.TopicName, "rejected", len(res.Rejected), "first", res.Rejected[0])
	}
	if len(res.Events) == 0 {
		if len(res.Rejected) > 0 {
			return refuse(res.Rejected[0])
		}
		return pk, nil
	}
	return h.enqueueAll(cl, pk, res.Events)
}

// sparkplugWill ingests an edge node's will, its NDEATH: mochi publishes wills
// without OnPublish. Nothing waits for an ack; an event the queue refuses is lost,
// and logged.
func (h *ingestHook) sparkplugWill(cl *mqtt.Client, pk packets.Packet) {
	res, err := h.sparkplug.Decode(pk.TopicName, pk.Payload, ingest.SourceMQTT)
	if err != nil {
		h.sink.Reject(ingest.SourceMQTT, ingest.CodeOf(err))
		h.log.Warn("sparkplug will rejected", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
		return
	}
	for _, ev := range res.Events {
		if err := h.sink.Enqueue(context.Background(), ev, nil); err != nil {
			h.log.Warn("sparkplug will event dropped", "client_id", cl.ID, "topic", pk.TopicName, "err", err)
		}
	}
}

// publishSparkplugState publishes, when sparkplug.host_id is set, the primary host
// application's retained state spBv1.0/STATE/<host_id> as Sparkplug 3.0 specifies it,
// {"online":true|false,"timestamp":<unix ms>}: edge nodes configured to wait for their
// primary host send data once it says online. The broker is the host, so it has no
// will: a clean shutdown says offline, a crash leaves the last online in place.
func (s *Server) publishSparkplugState(online bool) {
	dec := s.hook.sparkplug
	if dec == nil || dec.Options().HostID == "" {
		return
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   sparkplug.Namespace + "/" + sparkplug.STATE + "/" + dec.Options().HostID,
		Payload:     fmt.Appendf(nil, `{"online":%t,"timestamp":%d}`, online, time.Now().UnixMilli()),
		PacketID:    1, // inline publishes are not acknowledged; mochi wants an id for QoS > 0
	}
	if err := s.mochi.InjectPacket(s.hook.relay, pk); err != nil {
		s.log.Warn("sparkplug: publishing primary host state", "topic", pk.TopicName, "err", err)
		return
	}
	s.hook.uncount() // not a message received from a client
	s.stateOnline.Store(online)
}
