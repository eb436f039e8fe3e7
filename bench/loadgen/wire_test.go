package loadgen

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	packets5 "github.com/eclipse/paho.golang/packets"
	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"
)

// TestAppendPublish decodes the wire client's PUBLISH packets with the paho codecs of
// both protocols.
func TestAppendPublish(t *testing.T) {
	long := strings.Repeat("p", 300) // a remaining length of two bytes
	for _, tc := range []struct {
		qos     byte
		id      uint16
		topic   string
		payload string
	}{
		{0, 0, "kitchen/c1/r2", "add u17"},
		{1, 1, "kitchen/c1/r2", "remove u3"},
		{1, 65535, "k/" + strings.Repeat("t", 200), long},
		{1, 7, "k/c/r", ""},
	} {
		b := appendPublish(nil, MQTT311, tc.qos, tc.id, tc.topic, []byte(tc.payload))
		p, err := mqttpackets.ReadPacket(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("3.1.1 %+v: %v", tc, err)
		}
		pp, ok := p.(*mqttpackets.PublishPacket)
		if !ok || pp.Qos != tc.qos || pp.TopicName != tc.topic || string(pp.Payload) != tc.payload ||
			(tc.qos > 0 && pp.MessageID != tc.id) || pp.Dup || pp.Retain {
			t.Errorf("3.1.1: decoded %v, want %+v", p, tc)
		}

		b = appendPublish(nil, MQTT5, tc.qos, tc.id, tc.topic, []byte(tc.payload))
		cp, err := packets5.ReadPacket(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("5 %+v: %v", tc, err)
		}
		p5, ok := cp.Content.(*packets5.Publish)
		if !ok || p5.QoS != tc.qos || p5.Topic != tc.topic || string(p5.Payload) != tc.payload ||
			(tc.qos > 0 && p5.PacketID != tc.id) || p5.Duplicate || p5.Retain {
			t.Errorf("5: decoded %+v, want %+v", cp.Content, tc)
		}
	}
}

// fakeBroker accepts one connection, answers its CONNECT with connack, then hands the
// connection to then: a broker that misbehaves in a chosen way. It returns the
// address; the listener and the connection are closed when the test ends.
func fakeBroker(t *testing.T, connack []byte, then func(c net.Conn, buf []byte)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		if _, err := c.Read(buf); err != nil { // CONNECT, small enough for one read
			return
		}
		if _, err := c.Write(connack); err != nil {
			return
		}
		then(c, buf)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

// silentBroker reads everything and answers nothing: a broker that stopped
// acknowledging.
func silentBroker(c net.Conn, buf []byte) {
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// TestWire_AckTimeout: a publish that gets no PUBACK ends as ack_timeout, and the
// connection is given up rather than reused with an identifier still outstanding.
func TestWire_AckTimeout(t *testing.T) {
	for _, tc := range []struct {
		proto   Protocol
		connack []byte
	}{
		{MQTT311, []byte{0x20, 2, 0, 0}},
		{MQTT5, []byte{0x20, 3, 0, 0, 0}},
	} {
		t.Run("MQTT"+tc.proto.String(), func(t *testing.T) {
			addr := fakeBroker(t, tc.connack, silentBroker)
			rep, err := Run(context.Background(), Options{
				Broker: addr, Protocol: tc.proto, QoS: 1, Publishers: 1, InFlight: 3, Events: 10,
				AckTimeout: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.Acked != 0 || rep.ErrorsByKind[KindAckTimeout] == 0 || rep.ConnectionsLost != 1 {
				t.Errorf("acked %d errors %v lost %d, want ack timeouts and the connection given up",
					rep.Acked, rep.ErrorsByKind, rep.ConnectionsLost)
			}
			// Each of the 3 workers had one publish outstanding when the first timed out;
			// none is sent after that.
			if rep.Sent > 3 {
				t.Errorf("sent %d, want at most the window of 3", rep.Sent)
			}
		})
	}
}

// TestWire_BrokerCloses: publishes outstanding when the broker closes the connection
// end as connection_lost, at once rather than at the ack timeout.
func TestWire_BrokerCloses(t *testing.T) {
	addr := fakeBroker(t, []byte{0x20, 2, 0, 0}, func(c net.Conn, buf []byte) {
		_, _ = c.Read(buf) // the first publishes, then hang up
	})
	start := time.Now()
	rep, err := Run(context.Background(), Options{
		Broker: addr, Protocol: MQTT311, QoS: 1, Publishers: 1, InFlight: 4, Events: 100,
		AckTimeout: time.Minute,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Acked != 0 || rep.ErrorsByKind[KindConnectionLost] == 0 || rep.ConnectionsLost != 1 {
		t.Errorf("acked %d errors %v lost %d, want connection_lost", rep.Acked, rep.ErrorsByKind, rep.ConnectionsLost)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("run took %v, want the loss noticed long before the one-minute ack timeout", d)
	}
}

func TestReadRemaining(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
		err  bool
	}{
		{[]byte{0x00}, 0, false},
		{[]byte{0x7f}, 127, false},
		{[]byte{0x80, 0x01}, 128, false},
		{[]byte{0xff, 0x7f}, 16383, false},
		{[]byte{0xff, 0xff, 0xff, 0x7f}, 268435455, false}, // MQTT's largest
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x01}, 0, true},    // a fifth byte
		{[]byte{0x80}, 0, true},                            // cut short
	} {
		got, err := readRemaining(bytes.NewReader(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("readRemaining(% x) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	// Every length appendPublish writes reads back.
	for _, n := range []int{0, 1, 127, 128, 300, 16383, 16384, 70000} {
		b := appendPublish(nil, MQTT311, 0, 0, "t", make([]byte, n))
		got, err := readRemaining(bytes.NewReader(b[1:]))
		if want := len(b) - 1 - remainingLen(got); err != nil || got != want {
			t.Errorf("payload %d: remaining length %d, %v; want %d", n, got, err, want)
		}
	}
}

// remainingLen is how many bytes the remaining length n takes.
func remainingLen(n int) int {
	l := 1
	for ; n >= 128; n >>= 7 {
		l++
	}
	return l
}
