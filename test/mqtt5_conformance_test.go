package test

// MQTT 5 behaviours that standard clients rely on (issue 20, item 3), each checked
// against the specification's normative statements with real packets against the real
// embedded broker. The raw connections use the helpers of broker_compat_test.go
// (compatDialRaw5 and friends).

import (
	"net"
	"testing"
	"time"

	pkt5 "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pkt311 "github.com/eclipse/paho.mqtt.golang/packets"
)

// TestCompat_EmptyPassword: a CONNECT with the password flag set and a zero-length
// password (and a zero-length username) is valid MQTT (the password is Binary Data, of
// any length: MQTT 5 3.1.3.5, 3.1.1 3.1.3.5). Without a users file it connects, as it
// does on mosquitto; Eclipse Tahu's Sparkplug client sends it. mochi refused it as a
// protocol violation ("password flag set but no value").
func TestCompat_EmptyPassword(t *testing.T) {
	t.Parallel()
	d := compatStart(t)

	t.Run("MQTT5", func(t *testing.T) {
		r, _ := compatDialRaw5(t, d.MQTTAddr, &pkt5.Connect{ClientID: "emptypw5", CleanStart: true,
			UsernameFlag: true, PasswordFlag: true, Username: "", Password: []byte{}})
		r.write(pkt5.NewControlPacket(pkt5.PINGREQ))
		r.read(pkt5.PINGRESP)
	})

	t.Run("MQTT311", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", d.MQTTAddr, compatTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = pkt311.NewControlPacket(pkt311.Disconnect).Write(conn)
			conn.Close()
		}()
		_ = conn.SetDeadline(time.Now().Add(compatTimeout))
		connect := pkt311.NewControlPacket(pkt311.Connect).(*pkt311.ConnectPacket)
		connect.ProtocolName, connect.ProtocolVersion = "MQTT", 4
		connect.CleanSession, connect.Keepalive, connect.ClientIdentifier = true, 30, "emptypw311"
		connect.UsernameFlag, connect.PasswordFlag = true, true
		if err := connect.Write(conn); err != nil {
			t.Fatal(err)
		}
		cp, err := pkt311.ReadPacket(conn)
		if err != nil {
			t.Fatalf("reading CONNACK: %v", err)
		}
		if ca, ok := cp.(*pkt311.ConnackPacket); !ok || ca.ReturnCode != 0 {
			t.Fatalf("got %v, want a successful CONNACK", cp)
		}
	})
}

// TestCompat_TopicAliasPerConnection: topic alias mappings belong to one network
// connection and start empty on each [MQTT-3.3.2-10]; a PUBLISH with an empty topic
// name and an alias the receiver has no mapping for is a protocol error: DISCONNECT
// 0x94, Topic Alias invalid [MQTT-3.3.2-7] (4.13). A client that set alias 1, then
// resumed its session on a new connection (Clean Start false) and published by alias 1
// alone had its message accepted, under the topic "".
func TestCompat_TopicAliasPerConnection(t *testing.T) {
	t.Parallel()
	d := compatStart(t)
	sub := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "alias-sub", CleanStart: true}, nil)
	compatSub5(t, sub, "plant/alias/#", 1)

	session := func(clean bool) *pkt5.Connect {
		return &pkt5.Connect{ClientID: "alias-dev", CleanStart: clean,
			Properties: &pkt5.Properties{SessionExpiryInterval: compatU32(300)}}
	}
	publish := func(r *compatRaw5, id uint16, topic string, payload string) {
		t.Helper()
		r.write(&pkt5.Publish{Topic: topic, QoS: 1, PacketID: id, Payload: []byte(payload),
			Properties: &pkt5.Properties{TopicAlias: compatU16(1)}})
	}
	first, _ := compatDialRaw5(t, d.MQTTAddr, session(true))
	publish(first, 1, "plant/alias/x", "set")
	if pa := first.read(pkt5.PUBACK).Content.(*pkt5.Puback); pa.ReasonCode >= 0x80 {
		t.Fatalf("PUBACK reason %#x setting alias 1", pa.ReasonCode)
	}
	publish(first, 2, "", "by alias")
	if pa := first.read(pkt5.PUBACK).Content.(*pkt5.Puback); pa.ReasonCode >= 0x80 {
		t.Fatalf("PUBACK reason %#x publishing by alias 1 on the connection that set it", pa.ReasonCode)
	}
	for _, want := range []string{"set", "by alias"} {
		if p := compatNext(t, sub.msgs, want); p.Topic != "plant/alias/x" || string(p.Payload) != want {
			t.Fatalf("subscriber got %q on %q, want %q on plant/alias/x", p.Payload, p.Topic, want)
		}
	}
	_ = first.conn.Close() // no DISCONNECT: the session lives on
	compatClientsConnected(t, d, 1)

	second, ca := compatDialRaw5(t, d.MQTTAddr, session(false))
	if !ca.SessionPresent {
		t.Fatal("CONNACK session present = false, want true")
	}
	publish(second, 3, "", "stale alias")
	disc := second.read(pkt5.DISCONNECT).Content.(*pkt5.Disconnect)
	if disc.ReasonCode != 0x94 {
		t.Fatalf("DISCONNECT reason %#x, want 0x94 (topic alias invalid)", disc.ReasonCode)
	}
	if _, err := pkt5.ReadPacket(second.conn); err == nil {
		t.Fatal("the connection is still open after DISCONNECT")
	}
	// Nothing reached the subscriber: the marker comes next.
	compatPublish5(t, sub, &paho.Publish{Topic: "plant/alias/marker", QoS: 1, Payload: []byte("marker")})
	if got := compatCollect(t, sub.msgs, "marker", compatIsPayload5("marker")); len(got) != 1 {
		t.Fatalf("subscriber got %q on %q before the marker", got[0].Payload, got[0].Topic)
	}
}
