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
