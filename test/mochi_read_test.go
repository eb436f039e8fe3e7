package test

// mochi patch 33 (third_party/mochi-mqtt-server/PATCHES.md): a received packet is
// decoded from the buffer it was read into, not from a second copy of it.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// publishStream is a net.Conn whose reads return n QoS 1 PUBLISH packets on
// kitchen/c1/fire, payload "add u<id>", packet ids 1, 2, ..., encoded beforehand so
// that reading allocates nothing of its own.
type publishStream struct {
	net.Conn // nil: only what mochi's read path calls is implemented
	buf      []byte
}

func newPublishStream(t testing.TB, n int) *publishStream {
	var out bytes.Buffer
	for id := 1; id <= n; id++ {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "kitchen/c1/fire",
			PacketID: uint16(id), Payload: []byte(fmt.Sprintf("add u%d", id))}
		if err := pk.PublishEncode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return &publishStream{buf: out.Bytes()}
}

func (s *publishStream) Read(b []byte) (int, error) {
	if len(s.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(b, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *publishStream) SetReadDeadline(time.Time) error { return nil }
func (s *publishStream) RemoteAddr() net.Addr            { return &net.TCPAddr{} }

// TestMochiRead_OneBufferPerPacket: reading a publish allocates its buffer and nothing
// more, and what a packet decoded (topic, payload) stays as it was while the next
// packets are read.
func TestMochiRead_OneBufferPerPacket(t *testing.T) {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	cl := s.NewClient(newPublishStream(t, 300), "tcp", "sensor", false)
	cl.Properties.ProtocolVersion = 4
	read := func() packets.Packet {
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			t.Fatal(err)
		}
		pk, err := cl.ReadPacket(&fh)
		if err != nil {
			t.Fatal(err)
		}
		return pk
	}
	first := read()
	if first.TopicName != "kitchen/c1/fire" || string(first.Payload) != "add u1" || first.PacketID != 1 {
		t.Fatalf("first packet decoded as topic %q payload %q id %d", first.TopicName, first.Payload, first.PacketID)
	}
	allocs := testing.AllocsPerRun(200, func() { read() })
	if allocs > 1 {
		t.Fatalf("%.1f allocations per publish read, want 1 (its buffer)", allocs)
	}
	if first.TopicName != "kitchen/c1/fire" || string(first.Payload) != "add u1" {
		t.Fatalf("the first packet changed while others were read: topic %q payload %q", first.TopicName, first.Payload)
	}
}

// BenchmarkMochi_HeldBackPublish: mochi's work for one QoS 1 publish that a hook holds
// back, as Arina's ingest hook does with every accepted event: read and decode it,
// validate it, check the ACL and the in-flight ids, dispatch the hooks.
func BenchmarkMochi_HeldBackPublish(b *testing.B) {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		b.Fatal(err)
	}
	if err := s.AddHook(new(holdHook), nil); err != nil {
		b.Fatal(err)
	}
	const n = 60000
	stream := newPublishStream(b, n)
	all := stream.buf
	cl := s.NewClient(stream, "tcp", "sensor", false)
	cl.Properties.ProtocolVersion = 4
	cl.State.Inflight.ResetReceiveQuota(65535)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == n {
			stream.buf, i = all, 0
		}
		i++
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			b.Fatal(err)
		}
		pk, err := cl.ReadPacket(&fh)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.InjectPacket(cl, pk); err != nil {
			b.Fatal(err)
		}
	}
}
