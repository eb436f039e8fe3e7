package test

// mochi patch 35 (third_party/mochi-mqtt-server/PATCHES.md): a publish is passed by
// pointer along mochi's read path, so that a publish a hook holds back needs a few KB
// of the connection's read goroutine's stack, not ~18 KB.

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"
)

// parkHook parks every publish in its OnPublish (by value or by pointer, whichever
// mochi calls) until release is closed, then holds it back, as Arina's ingest hook
// does with an accepted QoS 1 event.
type parkHook struct {
	mqtt.HookBase
	parked  atomic.Int64
	release chan struct{}
}

func (h *parkHook) ID() string           { return "park" }
func (h *parkHook) Provides(b byte) bool { return b == mqtt.OnPublish }

func (h *parkHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, h.OnPublishPtr(cl, &pk)
}

func (h *parkHook) OnPublishPtr(_ *mqtt.Client, _ *packets.Packet) error {
	h.parked.Add(1)
	<-h.release
	return errHold
}

// connectRaw opens an MQTT 3.1.1 connection to addr as id and reads its CONNACK.
func connectRaw(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var b bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id}}
	if err := pk.ConnectEncode(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK of %s: % x, %v", id, ack, err)
	}
	return conn
}

// TestMochiStack_HeldBackPublish: while a hook holds a QoS 1 publish on each of n
// connections, their read goroutines' stacks together grew by less than 8 KB a
// connection. Each frame of the read path copied the 800-byte packet: the stack needed
// ~18 KB, so each reader's grew to 32 KB (and every GC shrank it and the next publish
// grew it again).
func TestMochiStack_HeldBackPublish(t *testing.T) {
	h := &parkHook{release: make(chan struct{})}
	tcp := serveWithHook(t, h)
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
	}()
	const n = 64
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = connectRaw(t, tcp.Address(), fmt.Sprintf("sensor-%d", i))
	}
	var pub bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "kitchen/c1/fire",
		PacketID: 1, Payload: []byte("add sam")}
	if err := pk.PublishEncode(&pub); err != nil {
		t.Fatal(err)
	}

	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the readers' stacks as small as they get while they wait to read
	runtime.ReadMemStats(&ms)
	idle := ms.StackInuse
	for _, c := range conns {
		if _, err := c.Write(pub.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); h.parked.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d publishes reached the hook", h.parked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
	runtime.ReadMemStats(&ms)
	held := ms.StackInuse
	close(h.release)
	released = true

	grown := (int64(held) - int64(idle)) / n
	t.Logf("stack in use: %d B idle, %d B with a publish held on each of %d connections: %d B a connection", idle, held, n, grown)
	if grown >= 8<<10 {
		t.Fatalf("the read goroutines' stacks grew by %d B a connection while a hook held a publish, want < 8 KiB", grown)
	}
}

// readHookPtr only reads the packet (by pointer) and counts it.
type readHookPtr struct {
	mqtt.HookBase
	seen atomic.Int64
}

func (h *readHookPtr) ID() string           { return "read-ptr" }
func (h *readHookPtr) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *readHookPtr) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, h.OnPublishPtr(cl, &pk)
}
func (h *readHookPtr) OnPublishPtr(_ *mqtt.Client, pk *packets.Packet) error {
	h.seen.Add(1)
	if string(pk.Payload) == "refuse" {
		return packets.CodeSuccessIgnore
	}
	return nil
}

// rewriteHook changes the packet: its topic gets the prefix "rewritten/".
type rewriteHook struct{ mqtt.HookBase }

func (h *rewriteHook) ID() string           { return "rewrite" }
func (h *rewriteHook) Provides(b byte) bool { return b == mqtt.OnPublish }
func (h *rewriteHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pk.TopicName = "rewritten/" + pk.TopicName
	return pk, nil
}

// TestMochiStack_HooksByPointerAndByValue: with a hook that changes the packet
// (OnPublish only) beside one that takes it by pointer, the change still reaches the
// subscribers, and a publish the pointer hook ignores is relayed to nobody; with the
// pointer hook alone, it sees every publish, and one it lets through is relayed as sent.
func TestMochiStack_HooksByPointerAndByValue(t *testing.T) {
	for _, withRewrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("rewrite=%v", withRewrite), func(t *testing.T) {
			s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
			if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
				t.Fatal(err)
			}
			if withRewrite {
				if err := s.AddHook(new(rewriteHook), nil); err != nil {
					t.Fatal(err)
				}
			}
			rp := new(readHookPtr)
			if err := s.AddHook(rp, nil); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 4)
			if err := s.Subscribe("#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
				got <- pk.TopicName + " " + string(pk.Payload)
			}); err != nil {
				t.Fatal(err)
			}
			cl := s.NewClient(nil, "tcp", "sensor", false)
			cl.Properties.ProtocolVersion = 4
			cl.State.Inflight.ResetReceiveQuota(65535)
			for _, payload := range []string{"refuse", "add sam"} {
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "kitchen/c1/fire",
					Payload: []byte(payload)}
				if err := s.InjectPacket(cl, pk); err != nil {
					t.Fatal(err)
				}
			}
			want := "kitchen/c1/fire add sam"
			if withRewrite {
				want = "rewritten/" + want
			}
			select {
			case m := <-got:
				if m != want {
					t.Fatalf("subscriber got %q, want %q", m, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("nothing relayed")
			}
			if n := rp.seen.Load(); n != 2 {
				t.Fatalf("pointer hook saw %d publishes, want 2", n)
			}
			select {
			case m := <-got:
				t.Fatalf("subscriber got %q too", m)
			default:
			}
		})
	}
}
