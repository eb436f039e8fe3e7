package broker

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/store"
)

// TestFlusher_AckOrder: the PUBACKs of a plain TCP client reach it in the order the
// writer completed its publishes, whoever writes them: the flusher (non-blocking
// writes), or the client's acker when the flusher cannot (the client's lock held by
// another writer, a socket buffer full because the client does not read), and the
// flusher writes again once the acker is idle. The sockets have small buffers so that
// a few thousand acks fill them. Inline: the publishes are completed as the writer
// does, a few at a time between BeginAcks and EndAcks, so rounds run on this goroutine
// (and on the flusher's when the acker is busy and EndAcks cannot take the round).
func TestFlusher_AckOrder(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(map[bool]string{false: "goroutine", true: "inline"}[inline], func(t *testing.T) { testAckOrder(t, inline) })
	}
}

func testAckOrder(t *testing.T, inline bool) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	dev, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}

	m := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h := &ingestHook{server: m, log: slog.New(slog.DiscardHandler), relay: m.NewClient(nil, "local", "relay", true)}
	cl := m.NewClient(conn, "tcp", "sensor", false)
	a := h.ackerFor(cl)
	if a.raw == nil {
		t.Fatal("no raw socket for a TCP client: the flusher is not used")
	}
	defer func() {
		_ = h.Stop()
	}()

	next := uint16(1) // the packet id of the next publish completed
	complete := func(n int) {
		for i := range n {
			if inline && i%10 == 0 {
				h.flusher.BeginAcks()
			}
			p := a.newPending(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
				TopicName: "kitchen/Stew/fire", PacketID: next, Payload: []byte("add sam")})
			p.Done(store.Result{}, nil) // as the writer does, in order
			next++
			if next == 0 {
				next = 1
			}
			if inline && (i%10 == 9 || i == n-1) {
				h.flusher.EndAcks()
			}
		}
	}
	want := uint16(1) // the packet id of the next PUBACK expected
	read := func(n int) {
		t.Helper()
		_ = dev.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4*n)
		if _, err := io.ReadFull(dev, buf); err != nil {
			t.Fatalf("reading PUBACK %d: %v", want, err)
		}
		for i := 0; i < len(buf); i += 4 {
			if buf[i] != packets.Puback<<4 || buf[i+1] != 2 {
				t.Fatalf("not a PUBACK at byte %d: % x", i, buf[i:i+4])
			}
			if id := binary.BigEndian.Uint16(buf[i+2:]); id != want {
				t.Fatalf("PUBACK for packet %d, want %d: out of order", id, want)
			}
			want++
			if want == 0 {
				want = 1
			}
		}
	}
	busy := func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.busy
	}
	waitIdle := func() {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); busy(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the acker stays busy")
			}
		}
	}
	sent := func() int64 { return atomic.LoadInt64(&m.Info.PacketsSent) }

	// The flusher writes.
	complete(100)
	read(100)
	if busy() {
		t.Fatal("acks handed to the acker though the socket had room")
	}
	// Another writer holds the client's lock: the acker writes, once it is free.
	cl.Lock()
	complete(100)
	for deadline := time.Now().Add(10 * time.Second); !busy(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			cl.Unlock()
			t.Fatal("the flusher did not hand its acks to the acker while the lock was held")
		}
	}
	complete(50) // the acker is busy: these go to it too, after the others
	cl.Unlock()
	read(150)
	waitIdle()
	// The client reads nothing for a while: the socket fills up (partial acks carried
	// over), the acker blocks on it, and every ack after that waits behind.
	before := sent()
	for range 50 {
		complete(400)
		time.Sleep(100 * time.Microsecond) // several rounds of the flusher
	}
	read(20000)
	waitIdle()
	if got := sent() - before; got < 19990 { // a PUBACK split by a full socket is counted by neither
		t.Fatalf("%d PUBACKs counted as sent, want 20000", got)
	}
	// Idle again: the flusher writes again.
	complete(100)
	read(100)
	if busy() {
		t.Fatal("acks handed to the acker after it went idle")
	}
}

// TestFlusher_WriteAllocs: the flusher's write of a client's PUBACKs allocates nothing.
// In a fleet of sensors it runs once per event; the closure it used to pass to
// syscall.RawConn.Write captured the buffer and both results and took three
// allocations each time.
func TestFlusher_WriteAllocs(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dev, conn := tcpPair(t)
	drained := make(chan struct{})
	go func() { // the device reads its acks
		defer close(drained)
		_, _ = io.Copy(io.Discard, dev)
	}()

	m := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h := &ingestHook{server: m, log: slog.New(slog.DiscardHandler)}
	cl := m.NewClient(conn, "tcp", "sensor", false)
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	a := &acker{h: h, cl: cl, raw: raw}
	f := &flusher{h: h}
	ack := []byte{packets.Puback << 4, 2, 0, 1}
	if n := f.write(a, ack); n != len(ack) {
		t.Fatalf("wrote %d bytes, want %d", n, len(ack))
	}
	if allocs := testing.AllocsPerRun(200, func() { f.write(a, ack) }); allocs != 0 {
		t.Fatalf("%.1f allocations per write, want 0", allocs)
	}
	_ = conn.Close()
	_ = dev.Close()
	<-drained
}

// TestFlusher_InlineRound: a round of at most inlineRound publishes that the writer
// completes between BeginAcks and EndAcks is written by EndAcks itself, on the writer
// goroutine, without waking the flusher goroutine (none runs here: the acks arrive
// only if EndAcks wrote them); a larger one, or a publish completed outside a batch
// (a batch topic publish completed by its read goroutine), wakes it.
func TestFlusher_InlineRound(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dev, conn := tcpPair(t)
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}

	m := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	h := &ingestHook{server: m, log: slog.New(slog.DiscardHandler)}
	f := &h.flusher
	f.h, f.wake, f.done = h, make(chan struct{}, 1), make(chan struct{})
	f.started.Store(true) // as start does, but no goroutine: rounds run here or not at all
	a := &acker{h: h, cl: m.NewClient(conn, "tcp", "sensor", false), raw: raw, wake: make(chan struct{}, 1)}

	next, want := uint16(1), uint16(1)
	complete := func(n int) {
		for range n {
			a.newPending(&packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
				TopicName: "kitchen/Stew/fire", PacketID: next}).Done(store.Result{}, nil)
			next++
		}
	}
	read := func(n int) {
		t.Helper()
		_ = dev.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4*n)
		if _, err := io.ReadFull(dev, buf); err != nil {
			t.Fatalf("reading PUBACK %d: %v", want, err)
		}
		for i := 0; i < len(buf); i += 4 {
			if id := binary.BigEndian.Uint16(buf[i+2:]); buf[i] != packets.Puback<<4 || id != want {
				t.Fatalf("got % x, want the PUBACK of %d", buf[i:i+4], want)
			}
			want++
		}
	}
	woken := func() bool {
		select {
		case <-f.wake:
			return true
		default:
			return false
		}
	}

	for range 3 {
		f.BeginAcks()
		complete(inlineRound)
		f.EndAcks()
		if woken() {
			t.Fatal("a small round woke the flusher goroutine")
		}
		read(inlineRound)
	}

	f.BeginAcks()
	complete(inlineRound + 1)
	f.EndAcks()
	if !woken() {
		t.Fatal("a round of more than inlineRound publishes did not wake the flusher goroutine")
	}
	f.roundMu.Lock() // the goroutine's round
	f.runRound()
	f.roundMu.Unlock()
	read(inlineRound + 1)

	complete(1) // outside a batch
	if !woken() {
		t.Fatal("a publish completed outside a batch did not wake the flusher goroutine")
	}
	f.roundMu.Lock()
	f.runRound()
	f.roundMu.Unlock()
	read(1)
}

// tcpPair returns the two ends of a loopback TCP connection: a device's, and the
// broker's; both are closed when the test ends.
func tcpPair(t *testing.T) (dev, conn net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if dev, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if conn, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return dev, conn
}
