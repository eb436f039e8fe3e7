package broker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	mochiauth "github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/tlsconf"
)

// Reasons a CONNECT is refused, the label values of arina_mqtt_auth_failures_total.
const (
	refusedAnonymous     = "anonymous"        // no username
	refusedCredentials   = "bad_credentials"  // unknown user or wrong password
	refusedClientIDInUse = "client_id_in_use" // the client id's session belongs to another user
	refusedWill          = "will_denied"      // the ACL does not let the user publish the will
)

// authHook authenticates MQTT clients against a users file and checks every publish,
// subscription and delivery against its ACLs (see package auth), denying by default.
// Arina's own clients (the relay and count-topic publisher) are inline: mochi checks
// neither their publishes nor hands them to OnPublish as a client's.
//
// What a refused client gets:
//   - CONNECT: CONNACK 0x86 "bad username or password" (3.1.1: 4) for unknown users
//     and wrong passwords; 0x87 "not authorized" (3.1.1: 5) without a username, for a
//     will the user may not publish, and for a client id whose session belongs to
//     another user (taking it over would hand that user's subscriptions and queued
//     messages to this one). mochi would send 0x86 (3.1.1: 5) for all of them, so
//     OnPacketEncode puts the code chosen here into the CONNACK.
//   - PUBLISH that no rule allows, MQTT 5: PUBACK 0x87 (QoS 1) or PUBREC 0x87 (QoS 2).
//     mochi does this itself when OnACLCheck says no.
//   - PUBLISH, MQTT 3.1.1: mochi would disconnect the client, and a device would
//     reconnect and resend forever. So OnACLCheck lets 3.1.1 publishes through and
//     OnPublish, which runs before the ingest hook's, drops the message: QoS 1/2 is
//     acknowledged (3.1.1 has no negative ack, and a resend could never help) but never
//     ingested, retained or relayed.
//   - SUBSCRIBE: SUBACK 0x87 (3.1.1: 0x80) for that filter.
//   - Messages on topics the subscriber may not read are not delivered: mochi asks
//     OnACLCheck for every delivery too, so a reload applies to live subscriptions.
//
// Every refusal is counted by reason or access.
type authHook struct {
	mqtt.HookBase
	users    *auth.UsersFile
	server   *mqtt.Server
	nack     func(*mqtt.Client, packets.Packet, packets.Code) error // writes a PUBACK/PUBREC with a reason code
	log      *slog.Logger
	failures *prometheus.CounterVec // by reason
	denied   *prometheus.CounterVec // by access

	// refused holds, from OnConnectAuthenticate until its CONNACK is encoded, the
	// reason code a refused client gets instead of mochi's: *mqtt.Client -> packets.Code.
	// mochi writes that CONNACK right after the hook returns, on the same goroutine.
	refused sync.Map
}

// newAuthHook returns the hook deciding who may connect and what they may do: mochi's
// allow-all hook without a users file, an authHook otherwise, whose metrics it
// registers with reg (nil: not registered).
func newAuthHook(users *auth.UsersFile, s *Server, reg prometheus.Registerer) (mqtt.Hook, error) {
	if users == nil {
		return new(mochiauth.AllowHook), nil
	}
	h := &authHook{
		users:  users,
		server: s.mochi,
		nack:   s.hook.nack,
		log:    s.log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_mqtt_auth_failures_total",
			Help: "MQTT connections refused, by reason: anonymous, bad_credentials, client_id_in_use, will_denied.",
		}, []string{"reason"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "arina_mqtt_acl_denied_total",
			Help: "MQTT publishes (write) and subscriptions or deliveries (read) the ACL denied.",
		}, []string{"access"}),
	}
	for _, r := range []string{refusedAnonymous, refusedCredentials, refusedClientIDInUse, refusedWill} {
		h.failures.WithLabelValues(r)
	}
	h.denied.WithLabelValues(auth.Read.String())
	h.denied.WithLabelValues(auth.Write.String())
	if reg != nil {
		for _, c := range []prometheus.Collector{h.failures, h.denied} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering mqtt auth metrics: %w", err)
			}
		}
	}
	return h, nil
}

func (h *authHook) ID() string { return "arina-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck || b == mqtt.OnPublish || b == mqtt.OnPacketEncode
}

// OnConnectAuthenticate admits a client whose username and password are in the users
// file, whose will (if any) it may publish, and whose client id no other user's
// session holds.
func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	username := string(pk.Connect.Username)
	if cn := tlsconf.PeerName(peerTLS(cl.Net.Conn)); cn != "" {
		// A verified client certificate names the user: a username, if sent, must be
		// the same, and no password is asked.
		if (pk.Connect.UsernameFlag && username != "" && username != cn) || !h.users.Has(cn) {
			return h.refuse(cl, refusedCredentials, packets.ErrBadUsernameOrPassword)
		}
		username = cn
		cl.Properties.Username = []byte(cn) // the ACLs (%u) use it
	} else {
		switch {
		case !pk.Connect.UsernameFlag || username == "":
			return h.refuse(cl, refusedAnonymous, packets.ErrNotAuthorized)
		case !h.users.Authenticate(username, pk.Connect.Password):
			return h.refuse(cl, refusedCredentials, packets.ErrBadUsernameOrPassword)
		}
	}
	if old, ok := h.server.Clients.Get(cl.ID); ok && string(old.Properties.Username) != username {
		return h.refuse(cl, refusedClientIDInUse, packets.ErrNotAuthorized)
	}
	// mochi publishes wills without asking OnACLCheck (and the ingest hook ingests
	// them), so the will topic is checked here, as mosquitto does.
	if pk.Connect.WillFlag && !h.users.Allow(username, cl.ID, pk.Connect.WillTopic, auth.Write) {
		return h.refuse(cl, refusedWill, packets.ErrNotAuthorized)
	}
	return true
}

func (h *authHook) refuse(cl *mqtt.Client, reason string, code packets.Code) bool {
	h.failures.WithLabelValues(reason).Inc()
	h.refused.Store(cl, code)
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("mqtt connection refused", "reason", reason, "client_id", cl.ID,
			"username", string(cl.Properties.Username), "remote", cl.Net.Remote)
	}
	return false
}

// OnPacketEncode puts the reason code chosen by OnConnectAuthenticate into the CONNACK
// of a refused client.
func (h *authHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type != packets.Connack {
		return pk
	}
	v, ok := h.refused.LoadAndDelete(cl)
	if !ok {
		return pk
	}
	code := v.(packets.Code)
	if cl.Properties.ProtocolVersion < 5 {
		// MQTT 3.1.1 return codes (3.2.2.3); mochi maps 0x86 to 5, not 4.
		pk.ReasonCode = packets.Err3NotAuthorized.Code
		if code == packets.ErrBadUsernameOrPassword {
			pk.ReasonCode = packets.ErrMalformedUsernameOrPassword.Code // 4: bad user name or password
		}
		return pk
	}
	pk.ReasonCode = code.Code
	pk.Properties.ReasonString = code.Reason
	return pk
}

// OnACLCheck answers mochi's checks of a SUBSCRIBE filter or delivered message (read)
// and of a PUBLISH (write). A 3.1.1 publish is let through to OnPublish, which checks
// it. mochi resolves an MQTT 5 topic alias before this check (mochi patch 18), so the
// topic is never empty here for a client's publish; the empty case stays let through
// to OnPublish, which never allows it.
func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if write && (cl.Properties.ProtocolVersion < 5 || topic == "") {
		return true
	}
	access := auth.Read
	if write {
		access = auth.Write
	} else if mqtt.IsSharedFilter(topic) {
		topic = unshare(topic)
	}
	return h.allow(cl, topic, access)
}

// allow asks the users file and counts a denial.
func (h *authHook) allow(cl *mqtt.Client, topic string, access auth.Access) bool {
	if h.users.Allow(string(cl.Properties.Username), cl.ID, topic, access) {
		return true
	}
	h.denied.WithLabelValues(access.String()).Inc()
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("mqtt acl denied", "access", access.String(), "topic", topic, "client_id", cl.ID,
			"username", string(cl.Properties.Username))
	}
	return false
}

// unshare strips "$share/<group>/" from a shared subscription's filter.
func unshare(filter string) string {
	_, rest, _ := strings.Cut(filter, "/")
	_, rest, _ = strings.Cut(rest, "/")
	return rest
}

// OnPublish denies the publishes OnACLCheck let through unchecked (3.1.1, topic
// aliases, and an MQTT 5 publish with neither topic nor alias) when no rule allows
// them; an empty topic is never allowed. It runs before the ingest hook's OnPublish, and
// an error here ends mochi's OnPublish chain, so a denied event is never ingested.
func (h *authHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, h.OnPublishPtr(cl, &pk)
}

// OnPublishPtr is OnPublish with the packet by pointer, which mochi calls in its place
// (mochi patch 35: no copy of the packet on the read goroutine's stack). The packet is
// only read.
func (h *authHook) OnPublishPtr(cl *mqtt.Client, pk *packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	v5 := cl.Properties.ProtocolVersion >= 5
	if v5 && !pk.Properties.TopicAliasFlag && pk.TopicName != "" {
		return nil // OnACLCheck checked this topic name
	}
	if h.allow(cl, pk.TopicName, auth.Write) {
		return nil
	}
	return h.denyPublish(cl, pk)
}

// denyPublish answers a publish no rule allows; out of line, so that OnPublishPtr's
// frame holds no copy of the packet.
//
//go:noinline
func (h *authHook) denyPublish(cl *mqtt.Client, pk *packets.Packet) error {
	switch {
	case pk.FixedHeader.Qos == 0:
		return packets.ErrRejectPacket // dropped: nothing to answer
	case cl.Properties.ProtocolVersion >= 5:
		return h.nack(cl, *pk, packets.ErrNotAuthorized)
	default:
		// 3.1.1 has no negative ack: acknowledged, but neither retained nor relayed.
		return packets.CodeSuccessIgnore
	}
}
