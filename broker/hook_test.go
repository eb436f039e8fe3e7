package broker

import (
	"errors"
	"log/slog"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestHeldBack_NoAllocation: mochi checks errors.Is(err, packets.ErrRejectPacket) on the
// error OnPublish returns for every accepted QoS 1 event; unwrapping errHeldBack must
// not allocate.
func TestHeldBack_NoAllocation(t *testing.T) {
	if !errors.Is(errHeldBack, packets.ErrRejectPacket) {
		t.Fatal("errHeldBack does not wrap packets.ErrRejectPacket")
	}
	if n := testing.AllocsPerRun(100, func() { _ = errHeldBack.(interface{ Unwrap() error }).Unwrap() }); n != 0 {
		t.Fatalf("Unwrap allocates %v times per call", n)
	}
}

// TestNewPending_KeepsPacketOnlyWhenNeeded: a held-back QoS 1 publish that nobody
// subscribes to keeps no copy of its packet (no allocation once the pool is warm; the
// race detector's pool drops some items, hence "under one"), and a retained one keeps
// it, without its topic alias.
func TestNewPending_KeepsPacketOnlyWhenNeeded(t *testing.T) {
	m := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	a := &acker{h: &ingestHook{server: m, log: slog.New(slog.DiscardHandler)}}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "kitchen/Stew/fire",
		PacketID: 7, Payload: []byte("add sam")}
	a.release(a.newPending(&pk))
	if n := testing.AllocsPerRun(100, func() { a.release(a.newPending(&pk)) }); n >= 1 {
		t.Fatalf("newPending allocates %v times per QoS 1 publish nobody subscribes to", n)
	}
	if p := a.newPending(&pk); p.pk != nil || p.id != 7 || p.qos != 1 || p.topic != "kitchen/Stew/fire" {
		t.Fatalf("pending %+v", p)
	}
	pk.FixedHeader.Retain = true
	pk.Properties.TopicAlias, pk.Properties.TopicAliasFlag = 3, true
	p := a.newPending(&pk)
	if p.pk == nil || string(p.pk.Payload) != "add sam" || p.pk.Properties.TopicAliasFlag || p.pk.Properties.TopicAlias != 0 {
		t.Fatalf("retained publish kept %+v", p.pk)
	}
}
