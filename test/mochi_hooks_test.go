package test

// mochi patch 23 (third_party/mochi-mqtt-server/PATCHES.md): a hook's Provides is asked
// once per event when the hook is added, not on every packet's dispatch.

import (
	"log/slog"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// countingHook provides OnPublish only and counts the calls of its Provides and of
// OnPublish.
type countingHook struct {
	mqtt.HookBase
	provides, published atomic.Int64
}

func (h *countingHook) ID() string { return "counting" }

func (h *countingHook) Provides(b byte) bool {
	h.provides.Add(1)
	return b == mqtt.OnPublish
}

func (h *countingHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.published.Add(1)
	return pk, nil
}

func TestMochiHooks_ProvidesAskedOnce(t *testing.T) {
	h := new(countingHook)
	tcp := serveWithHook(t, h)
	asked := h.provides.Load()
	if asked == 0 || asked > 256 {
		t.Fatalf("Provides asked %d times while the hook was added, want once per event (at most 256)", asked)
	}

	c := MustConnect311(t, tcp.Address(), "hooks-pub")
	const n = 50
	for range n {
		MustPublish(t, c, "kitchen/c1/fire", 1, "add sam")
	}
	if got := h.published.Load(); got != n {
		t.Errorf("OnPublish called %d times, want %d: the cached answer must still dispatch", got, n)
	}
	if got := h.provides.Load(); got != asked {
		t.Errorf("Provides asked %d more times while %d publishes were handled, want none", got-asked, n)
	}
}

// readHook provides OnPacketRead only and counts the packets it is given.
type readHook struct {
	mqtt.HookBase
	read atomic.Int64
}

func (h *readHook) ID() string           { return "read" }
func (h *readHook) Provides(b byte) bool { return b == mqtt.OnPacketRead }
func (h *readHook) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.read.Add(1)
	return pk, nil
}

// TestMochiHooks_PacketReadDispatch: mochi patch 29 skips the OnPacketRead dispatch
// when no hook provides it; a hook added that does is still given every packet.
func TestMochiHooks_PacketReadDispatch(t *testing.T) {
	h := new(readHook)
	tcp := serveWithHook(t, h)
	c := MustConnect311(t, tcp.Address(), "hooks-read")
	const n = 20
	for range n {
		MustPublish(t, c, "kitchen/c1/fire", 1, "add sam")
	}
	if got := h.read.Load(); got < n { // the CONNECT and the publishes, at least
		t.Fatalf("OnPacketRead given %d packets, want at least %d", got, n)
	}
}

// serveWithHook starts a bare mochi broker (no Arina hooks) with every client allowed
// and h, on a TCP listener on a random loopback port, closed when the test ends.
func serveWithHook(t *testing.T, h mqtt.Hook) *listeners.TCP {
	t.Helper()
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	if err := s.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return tcp
}

// holdHook holds back every publish, as Arina's ingest hook does with an accepted QoS 1
// event until it is committed.
type holdHook struct{ mqtt.HookBase }

func (h *holdHook) ID() string           { return "hold" }
func (h *holdHook) Provides(b byte) bool { return b == mqtt.OnPublish }

var errHold error = packets.ErrRejectPacket // boxed once, as the ingest hook's is

func (h *holdHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, errHold
}

// TestMochiHooks_HeldBackPublishAllocs: mochi patch 32. A publish a hook holds back
// (ErrRejectPacket) goes through mochi's publish path without an allocation: the
// errors.Is checks of Hooks.OnPublish and processPublish boxed packets.ErrRejectPacket
// on every call, two allocations per event.
func TestMochiHooks_HeldBackPublishAllocs(t *testing.T) {
	s := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddHook(new(holdHook), nil); err != nil {
		t.Fatal(err)
	}
	cl := s.NewClient(nil, "tcp", "sensor", false)
	cl.State.Inflight.ResetReceiveQuota(65535) // as the CONNECT does
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "kitchen/c1/fire",
		PacketID: 7, Payload: []byte("add sam")}
	if err := s.InjectPacket(cl, pk); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := s.InjectPacket(cl, pk); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per held-back publish, want 0", allocs)
	}
}
