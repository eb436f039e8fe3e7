package broker

import (
	"errors"
	"testing"

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
