package test

// mochi patch 14 (third_party/mochi-mqtt-server/PATCHES.md): Inflight.NextImmediate runs
// after every packet a client with messages in flight sends. It used to copy and sort
// every in-flight packet to find the first one waiting for quota, so a subscriber with
// thousands in flight made each of its PUBACKs cost the broker O(n log n): a backlog of
// PUBACKs then took seconds to drain, and the client stayed "connected" that long after
// it had left (TestPacketFuzz_InflightDeadlock's cleanup, under -race).

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func TestInflight_NextImmediate(t *testing.T) {
	in := mqtt.NewInflights()
	next := func(step string, wantID uint16, wantOK bool) {
		t.Helper()
		pk, ok := in.NextImmediate()
		if ok != wantOK || (ok && pk.PacketID != wantID) {
			t.Fatalf("after %s: NextImmediate() = id %d, %v; want id %d, %v", step, pk.PacketID, ok, wantID, wantOK)
		}
	}
	next("nothing", 0, false)
	for id := uint16(1); id <= 100; id++ { // sent at once: not waiting for quota
		in.Set(packets.Packet{PacketID: id, Created: int64(id), Expiry: 0})
	}
	next("only sent packets", 0, false)

	// Queued for quota within one second (mochi's Created is in seconds): they must
	// leave in the order they were queued.
	for _, id := range []uint16{300, 200, 400} {
		in.Set(packets.Packet{PacketID: id, Created: 1, Expiry: -1})
	}
	next("three queued", 300, true)
	in.Set(packets.Packet{PacketID: 300, Created: 1, Expiry: -1, Payload: []byte("resent")}) // updated in place
	next("the first updated", 300, true)

	in.Set(packets.Packet{PacketID: 300, Created: 1, Expiry: 0}) // sent: no longer queued
	next("the first sent", 200, true)
	in.Set(packets.Packet{PacketID: 5, Created: 5, Expiry: -1}) // a sent packet queued again
	next("one more queued", 200, true)

	c := in.Clone()
	in.Delete(200)
	next("the first acked", 400, true)
	if pk, ok := c.NextImmediate(); !ok || pk.PacketID != 200 {
		t.Fatalf("clone: NextImmediate() = id %d, %v; want id 200, true", pk.PacketID, ok)
	}

	in.Delete(400)
	next("two acked", 5, true)
	in.Delete(5)
	in.Delete(5) // twice
	next("every queued one acked", 0, false)
	if n := len(in.GetAll(true)); n != 0 {
		t.Fatalf("GetAll(true) holds %d packets, want 0", n)
	}
	in.Set(packets.Packet{PacketID: 200, Created: 7, Expiry: -1}) // an id used before
	next("an id queued again", 200, true)

	// A long run through the queue, always one waiting: order kept, nothing stale served.
	for id := uint16(1000); id < 3000; id++ {
		in.Set(packets.Packet{PacketID: id, Created: 9, Expiry: -1})
		prev := id - 1
		if id == 1000 {
			prev = 200
		}
		next("a run", prev, true)
		in.Delete(prev)
	}
	next("the end of the run", 2999, true)
}

// A PUBACK from a client with many packets in flight must not cost the broker a copy
// of all of them.
func TestInflight_NextImmediateAllocatesNothing(t *testing.T) {
	in := mqtt.NewInflights()
	for id := uint16(1); id <= 2000; id++ {
		in.Set(packets.Packet{PacketID: id, Created: int64(id), Expiry: -1, Payload: []byte("add sam")})
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := in.NextImmediate(); !ok {
			t.Fatal("no immediate packet among 2000")
		}
	}); n != 0 {
		t.Fatalf("NextImmediate with 2000 in flight: %v allocations per call, want 0", n)
	}
}

func BenchmarkInflight_NextImmediate(b *testing.B) {
	for _, queued := range []int{0, 2000} {
		in := mqtt.NewInflights()
		for id := 1; id <= 2000; id++ {
			var expiry int64
			if id <= queued {
				expiry = -1
			}
			in.Set(packets.Packet{PacketID: uint16(id), Created: int64(id), Expiry: expiry})
		}
		name := "none-queued"
		if queued > 0 {
			name = "all-queued"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				in.NextImmediate()
			}
		})
	}
}

// TestInflight_Type: processPublish asks the type of an inflight packet id (mochi patch
// 27) instead of copying the packet out for every publish.
func TestInflight_Type(t *testing.T) {
	i := mqtt.NewInflights()
	i.Set(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrec}, PacketID: 5})
	if typ, ok := i.Type(5); !ok || typ != packets.Pubrec {
		t.Fatalf("Type(5) = %v, %v; want PUBREC", typ, ok)
	}
	if _, ok := i.Type(6); ok {
		t.Fatal("Type(6) found a packet id not in flight")
	}
	if n := testing.AllocsPerRun(100, func() { i.Type(5); i.Type(6) }); n != 0 {
		t.Fatalf("Type allocates %v times", n)
	}
}
