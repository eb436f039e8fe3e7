package broker

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// compatHook corrects what mochi v2.7.9 tells standard clients where it departs from
// the MQTT specification and from mosquitto (see test/broker_compat_test.go).
type compatHook struct {
	mqtt.HookBase
	topicAliasMaximum uint16
	maxPacketSize     uint32 // announced to MQTT 5 clients, which then send nothing larger
}

func (h *compatHook) ID() string { return "arina-compat" }

func (h *compatHook) Provides(b byte) bool {
	return b == mqtt.OnPacketEncode || b == mqtt.OnSubscribe
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
