package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	packets5 "github.com/eclipse/paho.golang/packets"
	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"
)

// Clients the generator can publish with (Options.Client).
const (
	// ClientWire is the generator's own minimal MQTT client (the default): the packets of
	// all the workers of a connection are gathered into one buffer and written by one
	// goroutine, and one goroutine reads the broker's packets. It costs the generator a
	// fraction of the CPU of the paho clients per event, so that a broker-vs-broker run
	// measures the brokers rather than the client.
	ClientWire = "wire"
	// ClientPaho publishes with the Eclipse paho libraries (github.com/eclipse/paho.golang
	// for MQTT 5, github.com/eclipse/paho.mqtt.golang for 3.1.1): one library call per
	// event, as an application would make it.
	ClientPaho = "paho"
)

// wireFlushAt is how many bytes of packets may wait for the writer before a QoS 0
// publish waits for them to be written: the generator's send buffer.
const wireFlushAt = 64 << 10

// wireConn is a connection of the wire client. Worker i of the publisher always uses
// packet identifier i+1 and waits on acks[i+1]: a worker has one publish outstanding at
// a time, so identifiers are never shared and need no allocator.
type wireConn struct {
	nc         net.Conn
	protocol   Protocol
	qos        byte
	ackTimeout time.Duration
	keepAlive  time.Duration
	onMessage  func()
	writeEach  bool // a write per packet (Options.WriteEach)

	acks   []chan byte    // by packet identifier: the PUBACK reason code (0 for MQTT 3.1.1)
	sentAt []atomic.Int64 // by packet identifier: unix ns the publish waiting for it was queued; 0: none

	mu      sync.Mutex
	pending []byte     // encoded packets waiting for the writer
	spare   []byte     // the writer's previous buffer, for reuse
	written *sync.Cond // signalled (on mu) after every write: pending has room again
	wake    chan struct{}

	queued  int64         // on mu: PUBLISHes appended to pending, ever
	pings   []pingWait    // on mu: PINGREQs written or pending, oldest first
	closing bool          // on mu: close queued DISCONNECT
	drained chan struct{} // closed by the writer once it wrote everything after close

	pipe       atomic.Pointer[pipeline] // set once, when a pipeline drives the publishes
	aborted    atomic.Bool              // the pipeline's outstanding publishes were ended
	readerDone chan struct{}            // closed when readLoop has returned

	broken    atomic.Bool
	done      chan struct{} // closed when the connection is lost or closed
	closeOnce sync.Once
	loops     sync.WaitGroup // the reader and the writer
}

// dialWire connects with the wire client: CONNECT (clean start), CONNACK and, for the
// subscriber, SUBSCRIBE and SUBACK are exchanged with the paho codecs; the hot packets
// (PUBLISH, PUBACK) are encoded and parsed here. It returns the broker's Receive
// Maximum (MQTT 5; 0 when it names none).
func dialWire(ctx context.Context, d dialOptions) (*wireConn, uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, d.ackTimeout)
	defer cancel()
	nc, err := dialBroker(ctx, d.addr, d.login)
	if err != nil {
		return nil, 0, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	var buf bytes.Buffer
	const keepAlive = 30 // seconds
	ack, err := handshake(nc, &buf, d.protocol, d.clientID, keepAlive, d.login)
	if err == nil && d.subscribe != "" {
		err = subscribe(nc, &buf, d.protocol, d.subscribe, d.qos)
	}
	if !stop() || err != nil {
		nc.Close()
		if err == nil {
			err = ctx.Err()
		}
		return nil, 0, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		nc.Close()
		return nil, 0, err
	}
	c := &wireConn{
		nc:         nc,
		protocol:   d.protocol,
		qos:        d.qos,
		ackTimeout: d.ackTimeout,
		keepAlive:  time.Duration(ack.keepAlive) * time.Second,
		onMessage:  d.onMessage,
		writeEach:  d.writeEach,
		acks:       make([]chan byte, d.window+1),
		sentAt:     make([]atomic.Int64, d.window+1),
		pending:    make([]byte, 0, 4096),
		wake:       make(chan struct{}, 1),
		drained:    make(chan struct{}),
		readerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	for i := 1; i < len(c.acks); i++ {
		c.acks[i] = make(chan byte, 1)
	}
	c.written = sync.NewCond(&c.mu)
	c.loops.Go(c.readLoop)
	c.loops.Go(c.writeLoop)
	if c.qos > 0 && d.window > 0 {
		c.loops.Go(c.watchdog)
	}
	return c, ack.receiveMax, nil
}

// publish appends the PUBLISH to the pending packets and, for QoS 1, waits for its
// PUBACK; for QoS 0 it returns once the packet is queued, unless wireFlushAt bytes are
// already waiting for the writer, in which case it waits for them to be written.
func (c *wireConn) publish(_ context.Context, w *worker, topic string, payload []byte) (string, error) {
	id := uint16(w.slot + 1)
	c.mu.Lock()
	for c.qos == 0 && len(c.pending) >= wireFlushAt && !c.broken.Load() {
		c.written.Wait()
	}
	if c.broken.Load() {
		c.mu.Unlock()
		return KindConnectionLost, errConnectionLost
	}
	if c.qos > 0 {
		c.sentAt[id].Store(time.Now().UnixNano())
	}
	c.pending = appendPublish(c.pending, c.protocol, c.qos, id, topic, payload)
	c.queued++
	c.mu.Unlock()
	c.signal()
	if c.qos == 0 {
		return "", nil
	}
	select {
	case code := <-c.acks[id]:
		c.sentAt[id].Store(0)
		if code >= 0x80 {
			return pubackKind(code), fmt.Errorf("PUBACK reason %#x", code)
		}
		return "", nil
	case <-c.done:
		if sent := c.sentAt[id].Load(); sent != 0 && time.Since(time.Unix(0, sent)) >= c.ackTimeout {
			return KindAckTimeout, errAckTimeout
		}
		return KindConnectionLost, errConnectionLost
	}
}

// watchdog ends the connection once a publish has waited AckTimeout for its PUBACK:
// its identifier may still be in use at the broker, so the connection is given up
// rather than reused. One goroutine per connection checks every slot a few times per
// AckTimeout, instead of every publish arming a timer of its own.
func (c *wireConn) watchdog() {
	every := min(max(c.ackTimeout/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			for i := 1; i < len(c.sentAt); i++ {
				if sent := c.sentAt[i].Load(); sent != 0 && now.Sub(time.Unix(0, sent)) >= c.ackTimeout {
					c.fail()
					return
				}
			}
		}
	}
}

var errConnectionLost = errors.New("connection lost")

// mark is the outcome of a barrier: by time at, the broker had read the first queued
// PUBLISHes of the connection.
type mark struct {
	queued int64
	at     time.Time
}

// pingWait is a PINGREQ awaiting its PINGRESP: a barrier's (ch set) or the keepalive's.
type pingWait struct {
	queued int64
	ch     chan mark // capacity 1
}

// barrier queues a PINGREQ behind every PUBLISH queued so far and returns a channel
// that receives a mark when its PINGRESP arrives. A broker handles a connection's
// packets in order, so the PINGRESP means it has read every one of those PUBLISHes:
// this is how the generator knows what a broker took in at QoS 0, whatever the socket
// buffers held. The channel gets nothing if the connection is lost first.
func (c *wireConn) barrier() <-chan mark {
	ch := make(chan mark, 1)
	c.mu.Lock()
	if !c.broken.Load() && !c.closing {
		c.pending = append(c.pending, 0xc0, 0) // PINGREQ
		c.pings = append(c.pings, pingWait{queued: c.queued, ch: ch})
	}
	c.mu.Unlock()
	c.signal()
	return ch
}

func (c *wireConn) lost() bool { return c.broken.Load() }

// close queues DISCONNECT after what is pending, lets the writer write it all (at
// most a second), then closes the connection and waits for the reader and the writer.
func (c *wireConn) close() {
	c.mu.Lock()
	if !c.broken.Load() && !c.closing {
		c.pending = append(c.pending, 0xe0, 0) // DISCONNECT, reason 0 in MQTT 5
		c.closing = true
	}
	c.mu.Unlock()
	c.signal()
	t := time.NewTimer(time.Second)
	select {
	case <-c.drained:
	case <-c.done:
	case <-t.C:
	}
	t.Stop()
	c.fail()
	c.loops.Wait()
}

// fail ends the connection at once, as lost; it may be called more than once.
func (c *wireConn) fail() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.broken.Store(true)
		c.written.Broadcast()
		c.mu.Unlock()
		close(c.done)
		_ = c.nc.Close()
	})
}

// signal wakes the writer.
func (c *wireConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes the pending packets, all that gathered since the last write in one
// call, and sends a PINGREQ when nothing was written for half the keepalive. Once close
// has queued DISCONNECT and everything is written, it closes drained and returns.
func (c *wireConn) writeLoop() {
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	if c.keepAlive > 0 {
		idle.Reset(c.keepAlive / 2)
	} else {
		idle.Stop()
	}
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-idle.C:
			c.mu.Lock()
			c.pending = append(c.pending, 0xc0, 0) // PINGREQ
			c.pings = append(c.pings, pingWait{})
			c.mu.Unlock()
		}
		for {
			// Let the workers that the last PUBACKs woke queue their next PUBLISH first,
			// so that one write carries many: on loopback a write costs as much as
			// handling the packets it carries.
			runtime.Gosched()
			c.mu.Lock()
			out := c.pending
			c.pending = c.spare[:0]
			closing := c.closing
			c.mu.Unlock()
			if len(out) == 0 {
				c.spare = out
				if closing {
					close(c.drained)
					return
				}
				break
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.ackTimeout))
			err := c.write(out)
			c.mu.Lock()
			c.spare = out[:0]
			c.written.Broadcast()
			c.mu.Unlock()
			if err != nil {
				c.fail()
				return
			}
		}
		if c.keepAlive > 0 {
			idle.Reset(c.keepAlive / 2)
		}
	}
}

// write writes out, the packets one by one with writeEach.
func (c *wireConn) write(out []byte) error {
	if !c.writeEach {
		_, err := c.nc.Write(out)
		return err
	}
	for len(out) > 0 {
		n := packetLen(out)
		if _, err := c.nc.Write(out[:n]); err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}

// packetLen returns the length of the MQTT packet that b begins with, all of b if it
// cannot tell (the generator encodes every packet it queues, so it always can).
func packetLen(b []byte) int {
	n, shift := 0, 0
	for i := 1; i < len(b) && i <= 4; i++ {
		n |= int(b[i]&0x7f) << shift
		shift += 7
		if b[i] < 0x80 {
			return min(len(b), 1+i+n)
		}
	}
	return len(b)
}

// errRemaining is a remaining length longer than MQTT's four bytes.
var errRemaining = errors.New("malformed remaining length")

// readRemaining reads an MQTT remaining length: 7 bits a byte, low first, at most four
// bytes (binary.ReadUvarint would accept ten).
func readRemaining(r io.ByteReader) (int, error) {
	n := 0
	for i := range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&0x7f) << (7 * i)
		if b < 0x80 {
			return n, nil
		}
	}
	return 0, errRemaining
}

// readLoop reads the broker's packets until the connection ends: PUBACKs wake their
// worker; PUBLISHes (subscriber) are counted and, at QoS 1, acknowledged; PINGRESP is
// dropped; a DISCONNECT or anything unexpected ends the connection.
func (c *wireConn) readLoop() {
	defer func() {
		c.fail()
		if pl := c.pipe.Load(); pl != nil && c.aborted.CompareAndSwap(false, true) {
			pl.abort()
		}
		close(c.readerDone)
	}()
	r := bufio.NewReaderSize(c.nc, 64<<10)
	body := make([]byte, 0, 256)
	var acks []byte // PUBACKs for the subscriber's messages, written before the next wait
	var pl *pipeline
	for {
		if pl == nil {
			pl = c.pipe.Load()
		}
		if pl != nil && r.Buffered() == 0 {
			pl.handOver() // the next publishes of the slots acknowledged since the last read
		}
		if len(acks) > 0 && r.Buffered() == 0 {
			// Acknowledge what was read at once, as a consumer does, rather than
			// through the writer: a broker's window of unacknowledged messages to a
			// subscriber (20 for mosquitto) makes its relay rate that window per round
			// trip. Writes are atomic with the writer's on a net.Conn.
			_ = c.nc.SetWriteDeadline(time.Now().Add(c.ackTimeout))
			if _, err := c.nc.Write(acks); err != nil {
				return
			}
			acks = acks[:0]
		}
		header, err := r.ReadByte()
		if err != nil {
			return
		}
		n, err := readRemaining(r)
		if err != nil || n > 1<<20 {
			return
		}
		body = body[:0]
		if cap(body) < int(n) {
			body = make([]byte, 0, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		switch header >> 4 {
		case 4: // PUBACK
			if len(body) < 2 {
				return
			}
			id := binary.BigEndian.Uint16(body)
			var code byte
			if len(body) > 2 {
				code = body[2]
			}
			if pl == nil {
				pl = c.pipe.Load()
			}
			if pl != nil {
				pl.acked(id, code, time.Now())
			} else if int(id) < len(c.acks) && id > 0 {
				select {
				case c.acks[id] <- code:
				default: // a late PUBACK after a timeout; the connection is failing
				}
			}
		case 3: // PUBLISH, to the subscriber
			if c.onMessage != nil {
				c.onMessage()
			}
			if qos := header >> 1 & 3; qos > 0 {
				if len(body) < 2 {
					return
				}
				tl := int(binary.BigEndian.Uint16(body))
				if len(body) < 2+tl+2 {
					return
				}
				id := body[2+tl : 2+tl+2]
				acks = append(acks, 0x40, 2, id[0], id[1])
			}
		case 13: // PINGRESP
			c.mu.Lock()
			if len(c.pings) == 0 {
				c.mu.Unlock()
				return // a PINGRESP nobody asked for
			}
			p := c.pings[0]
			c.pings = c.pings[1:]
			c.mu.Unlock()
			if p.ch != nil {
				p.ch <- mark{queued: p.queued, at: time.Now()}
			}
		default:
			return
		}
	}
}

// appendPublish encodes a PUBLISH: no DUP or RETAIN, a packet identifier at QoS 1, an
// empty property list in MQTT 5.
func appendPublish(b []byte, p Protocol, qos byte, id uint16, topic string, payload []byte) []byte {
	n := 2 + len(topic) + len(payload)
	if qos > 0 {
		n += 2
	}
	if p == MQTT5 {
		n++ // property length 0
	}
	b = append(b, 0x30|qos<<1)
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	if p == MQTT5 {
		b = append(b, 0)
	}
	return append(b, payload...)
}

// connack is what the generator uses of a CONNACK.
type connack struct {
	keepAlive  uint16 // the one sent, or the broker's Server Keep Alive (MQTT 5)
	receiveMax uint16 // MQTT 5: the broker's Receive Maximum; 0 when it names none
}

// handshake writes CONNECT (clean start) with the paho codecs of the protocol and reads
// CONNACK.
func handshake(nc net.Conn, buf *bytes.Buffer, protocol Protocol, clientID string, keepAlive uint16, login Login) (connack, error) {
	ack := connack{keepAlive: keepAlive}
	buf.Reset()
	if protocol == MQTT311 {
		cp := mqttpackets.NewControlPacket(mqttpackets.Connect).(*mqttpackets.ConnectPacket)
		cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive, cp.ClientIdentifier = "MQTT", 4, true, keepAlive, clientID
		cp.UsernameFlag, cp.Username = login.Username != "", login.Username
		cp.PasswordFlag, cp.Password = login.Password != nil, login.Password
		if err := cp.Write(buf); err != nil {
			return ack, fmt.Errorf("encoding CONNECT: %w", err)
		}
		if _, err := nc.Write(buf.Bytes()); err != nil {
			return ack, fmt.Errorf("writing CONNECT: %w", err)
		}
		p, err := mqttpackets.ReadPacket(nc)
		if err != nil {
			return ack, fmt.Errorf("reading CONNACK: %w", err)
		}
		ca, ok := p.(*mqttpackets.ConnackPacket)
		if !ok {
			return ack, fmt.Errorf("got %v, want CONNACK", p)
		}
		if ca.ReturnCode != mqttpackets.Accepted {
			return ack, &ConnackError{Protocol: MQTT311, Code: ca.ReturnCode}
		}
		return ack, nil
	}
	cp := packets5.NewControlPacket(packets5.CONNECT)
	c := cp.Content.(*packets5.Connect)
	c.ClientID, c.CleanStart, c.KeepAlive = clientID, true, keepAlive
	c.UsernameFlag, c.Username = login.Username != "", login.Username
	c.PasswordFlag, c.Password = login.Password != nil, login.Password
	if _, err := cp.WriteTo(buf); err != nil {
		return ack, fmt.Errorf("encoding CONNECT: %w", err)
	}
	if _, err := nc.Write(buf.Bytes()); err != nil {
		return ack, fmt.Errorf("writing CONNECT: %w", err)
	}
	p, err := packets5.ReadPacket(nc)
	if err != nil {
		return ack, fmt.Errorf("reading CONNACK: %w", err)
	}
	ca, ok := p.Content.(*packets5.Connack)
	if !ok {
		return ack, fmt.Errorf("got %s, want CONNACK", p.PacketType())
	}
	if ca.ReasonCode >= 0x80 {
		return ack, &ConnackError{Protocol: MQTT5, Code: ca.ReasonCode}
	}
	if ca.Properties != nil {
		if ka := ca.Properties.ServerKeepAlive; ka != nil {
			ack.keepAlive = *ka
		}
		if rm := ca.Properties.ReceiveMaximum; rm != nil {
			ack.receiveMax = *rm
		}
	}
	return ack, nil
}

// subscribe subscribes to one topic filter with the paho codecs and reads the SUBACK.
func subscribe(nc net.Conn, buf *bytes.Buffer, protocol Protocol, filter string, qos byte) error {
	buf.Reset()
	var granted byte
	if protocol == MQTT311 {
		sp := mqttpackets.NewControlPacket(mqttpackets.Subscribe).(*mqttpackets.SubscribePacket)
		sp.MessageID, sp.Topics, sp.Qoss = 1, []string{filter}, []byte{qos}
		if err := sp.Write(buf); err != nil {
			return fmt.Errorf("encoding SUBSCRIBE: %w", err)
		}
		if _, err := nc.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("writing SUBSCRIBE: %w", err)
		}
		p, err := mqttpackets.ReadPacket(nc)
		if err != nil {
			return fmt.Errorf("reading SUBACK: %w", err)
		}
		sa, ok := p.(*mqttpackets.SubackPacket)
		if !ok || len(sa.ReturnCodes) != 1 {
			return fmt.Errorf("subscribing to %s: got %v, want SUBACK", filter, p)
		}
		granted = sa.ReturnCodes[0]
	} else {
		cp := packets5.NewControlPacket(packets5.SUBSCRIBE)
		s := cp.Content.(*packets5.Subscribe)
		s.PacketID, s.Subscriptions = 1, []packets5.SubOptions{{Topic: filter, QoS: qos}}
		if _, err := cp.WriteTo(buf); err != nil {
			return fmt.Errorf("encoding SUBSCRIBE: %w", err)
		}
		if _, err := nc.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("writing SUBSCRIBE: %w", err)
		}
		p, err := packets5.ReadPacket(nc)
		if err != nil {
			return fmt.Errorf("reading SUBACK: %w", err)
		}
		sa, ok := p.Content.(*packets5.Suback)
		if !ok || len(sa.Reasons) != 1 {
			return fmt.Errorf("subscribing to %s: got %s, want SUBACK", filter, p.PacketType())
		}
		granted = sa.Reasons[0]
	}
	if granted >= 0x80 {
		return fmt.Errorf("subscribing to %s: refused with reason %#x", filter, granted)
	}
	return nil
}
