package broker

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// compatHook corrects what mochi v2.7.9 tells standard clients where it departs from
// the MQTT specification and from mosquitto (see test/broker_compat_test.go).
type compatHook struct {
	mqtt.HookBase
	topicAliasMaximum uint16
	maxPacketSize     uint32 // announced to MQTT 5 clients, which then send nothing larger
	nack              func(*mqtt.Client, packets.Packet, packets.Code) error
	refused           *prometheus.CounterVec // publishes refused, by reason
}

// Reasons of arina_mqtt_publishes_refused_total.
const refusedSys = "sys_topic"

func newCompatHook(caps *mqtt.Capabilities, nack func(*mqtt.Client, packets.Packet, packets.Code) error) *compatHook {
	h := &compatHook{topicAliasMaximum: caps.TopicAliasMaximum, maxPacketSize: caps.MaximumPacketSize, nack: nack,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_mqtt_publishes_refused_total",
			Help: "MQTT publishes refused before any processing, by reason (sys_topic: a client published to $SYS).",
		}, []string{"reason"})}
	h.refused.WithLabelValues(refusedSys)
	return h
}

func (h *compatHook) ID() string { return "arina-compat" }

func (h *compatHook) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnSubscribe || b == mqtt.OnPublish
}

// OnPublish refuses a client's publish to a $SYS topic, which only the broker may
// publish (MQTT 4.7.2). mochi used to drop it without an answer, so a QoS 1/2 sender
// resent it on every reconnect; now (mochi patch 13) it reaches the hooks, and mochi
// never retains or relays it whatever they say. As for a publish outside the ACL:
// MQTT 5 gets 0x87 (not authorized) for QoS 1/2; 3.1.1, which has no negative ack,
// gets its ack and the message is dropped; QoS 0 is dropped. Each one is counted.
func (h *compatHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || !isSysTopic(pk.TopicName) {
		return pk, nil
	}
	h.refused.WithLabelValues(refusedSys).Inc()
	switch {
	case pk.FixedHeader.Qos == 0:
		return pk, packets.ErrRejectPacket
	case cl.Properties.ProtocolVersion >= 5:
		return pk, h.nack(cl, pk, packets.ErrNotAuthorized)
	default:
		return pk, packets.CodeSuccessIgnore
	}
}

// isSysTopic reports whether a topic name is under $SYS (compared as mochi does,
// ignoring case).
func isSysTopic(topic string) bool {
	return len(topic) >= len(mqtt.SysPrefix) && strings.EqualFold(topic[:len(mqtt.SysPrefix)], mqtt.SysPrefix)
}

// OnSubscribe turns a filter whose '+' or '#' does not fill a whole level (MQTT 4.7.1)
// into the empty filter, which mochi refuses with 0x8F (0x80 for 3.1.1); mochi itself
// checks only that '#' is the last character.
func (h *compatHook) OnSubscribe(_ *mqtt.Client, pk packets.Packet) packets.Packet {
	for i, sub := range pk.Filters {
		if !validFilter(sub.Filter) {
			pk.Filters[i].Filter = ""
		}
	}
	return pk
}

func validFilter(filter string) bool {
	levels := strings.Split(filter, "/")
	for i, level := range levels {
		if level == "#" && i != len(levels)-1 {
			return false
		}
		if level != "#" && level != "+" && strings.ContainsAny(level, "+#") {
			return false
		}
	}
	return true
}

// OnPacketEncode adjusts packets on their way out.
func (h *compatHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		// Without Topic Alias Maximum a client may send no aliases (MQTT-3.2.2-18),
		// although mochi accepts them.
		if cl.Properties.ProtocolVersion == 5 && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
			pk.Properties.TopicAliasMaximum = h.topicAliasMaximum
			pk.Properties.MaximumPacketSize = h.maxPacketSize
		}
	case packets.Pubrec:
		// mochi answers a QoS 2 PUBLISH resent before PUBREL with 0x91 (and does not
		// deliver it again); it must be acknowledged as received (MQTT-4.3.3-10).
		if pk.ReasonCode == packets.ErrPacketIdentifierInUse.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
			pk.Properties.ReasonString = ""
		}
	case packets.Publish:
		// A delayed will keeps its delay deadline in Expiry, which WritePacket has just
		// reported as a Message Expiry Interval nobody set.
		if pk.Connect.WillProperties.WillDelayInterval > 0 {
			pk.Properties.MessageExpiryInterval = 0
		}
	}
	return pk
}
