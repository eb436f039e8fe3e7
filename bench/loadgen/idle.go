package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	packets5 "github.com/eclipse/paho.golang/packets"
	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"
)

// Defaults for zero IdleOptions fields.
const (
	DefaultIdleConnections = 1000
	DefaultIdleDialers     = 64
)

// IdleOptions configure HoldIdle. Zero fields take defaults.
type IdleOptions struct {
	Broker      string   // MQTT broker: host:port or a URL, as in Options (DefaultBroker)
	Login       Login    // credentials and TLS of a secured broker
	Protocol    Protocol // MQTT311 or MQTT5 (default)
	Connections int      // connections to open (DefaultIdleConnections)

	// ClientIDPrefix starts every client id; connection i is <prefix><i>. Default:
	// "idle-<6 random hex digits>-", so that two runs against one broker do not take
	// over each other's sessions.
	ClientIDPrefix string

	// KeepAlive is the MQTT keepalive sent in CONNECT, in whole seconds; 0 (the
	// default): none, and the connections are then never read or written while held.
	// With a keepalive each connection has a goroutine that sends PINGREQ every
	// KeepAlive/2 and reads and discards what the broker sends. An MQTT 5 broker's
	// Server Keep Alive in CONNACK overrides it per connection.
	KeepAlive time.Duration

	// Hold is how long to keep the connections open once all have been opened; 0: until
	// ctx ends.
	Hold time.Duration

	Dialers        int           // connections being opened at once (DefaultIdleDialers)
	ConnectTimeout time.Duration // bound on dialing and waiting for CONNACK, per connection (DefaultAckTimeout)

	// Progress, if set, is called every ProgressInterval while connections are being
	// opened, from the goroutine running HoldIdle.
	Progress         func(IdleProgress)
	ProgressInterval time.Duration

	// Opened, if set, is called once when opening is over (all done, or given up, or
	// interrupted) and before holding starts, from the goroutine running HoldIdle.
	Opened func(IdleProgress)
}

// IdleProgress is the state of the opening phase.
type IdleProgress struct {
	Connections int           // asked for
	Opened      int           // CONNACK received with success
	Failed      int           // dial, CONNECT or CONNACK failed, or CONNACK refused
	Elapsed     time.Duration // since HoldIdle started
}

// IdleReport is the result of HoldIdle.
type IdleReport struct {
	Broker           string  `json:"broker"`
	Protocol         string  `json:"protocol"`
	Connections      int     `json:"connections"` // asked for
	Opened           int     `json:"opened"`
	Failed           int     `json:"failed"`
	FirstError       string  `json:"first_error,omitempty"`
	OpenSeconds      float64 `json:"open_s"`    // from start until the last connection was opened or failed
	OpenRate         float64 `json:"open_rate"` // opened per second of OpenSeconds
	KeepAliveSeconds int     `json:"keepalive_s"`
	HeldSeconds      float64 `json:"held_s"` // from the end of opening until closing began
	// ServerKeepAlives counts connections whose keepalive the broker overrode with an
	// MQTT 5 Server Keep Alive in CONNACK (mosquitto answers a keepalive of 0 with 65535).
	ServerKeepAlives int `json:"server_keepalives"`
	// Lost counts connections that ended while held. They are only noticed with a
	// keepalive: without one the connections are not read.
	Lost        int  `json:"lost"`
	Interrupted bool `json:"interrupted"` // ctx ended before all were opened or before Hold elapsed
}

func (o *IdleOptions) setDefaults() {
	if o.Broker == "" {
		o.Broker = DefaultBroker
	}
	if o.Protocol == 0 {
		o.Protocol = MQTT5
	}
	if o.Connections == 0 {
		o.Connections = DefaultIdleConnections
	}
	if o.ClientIDPrefix == "" {
		o.ClientIDPrefix = fmt.Sprintf("idle-%06x-", rand.Uint32()&0xffffff)
	}
	if o.Dialers == 0 {
		o.Dialers = DefaultIdleDialers
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultAckTimeout
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
}

func (o *IdleOptions) validate() error {
	var v invalid
	bad := v.add
	v.protocol(o.Protocol)
	v.broker(o.Broker)
	if o.Connections < 1 {
		bad("connections", o.Connections, "want at least 1")
	}
	if o.KeepAlive < 0 || o.KeepAlive > 65535*time.Second || o.KeepAlive%time.Second != 0 {
		bad("keepalive", o.KeepAlive, "want whole seconds, 0..65535s")
	}
	if o.Hold < 0 {
		bad("hold", o.Hold, "want 0 or more")
	}
	if o.Dialers < 1 {
		bad("dialers", o.Dialers, "want at least 1")
	}
	if o.ConnectTimeout < 0 {
		bad("connect_timeout", o.ConnectTimeout, "want more than 0")
	}
	if o.ProgressInterval < 0 {
		bad("progress_interval", o.ProgressInterval, "want more than 0")
	}
	return v.err()
}

// HoldIdle opens o.Connections MQTT connections that do nothing but stay connected: each
// is a raw TCP connection that sends CONNECT (clean session, no will, no subscriptions)
// and waits for a successful CONNACK, o.Dialers at a time. Once all are open (or have
// failed) it holds them for o.Hold or until ctx ends, then sends DISCONNECT on each and
// closes them all before returning. It measures what a broker pays for a connected
// client at rest.
//
// A connection that fails to open is counted and the others go on, unless the first
// o.Dialers attempts all fail: then HoldIdle gives up. It returns an error only for bad
// options or when no connection could be opened at all.
func HoldIdle(ctx context.Context, o IdleOptions) (*IdleReport, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	rep := &IdleReport{Broker: o.Broker, Protocol: o.Protocol.String(), Connections: o.Connections,
		KeepAliveSeconds: int(o.KeepAlive / time.Second)}
	h := &idleHolder{o: &o, conns: make([]net.Conn, o.Connections)}
	var err error
	if h.ping, err = encodePingreq(o.Protocol); err != nil {
		return nil, err
	}

	start := time.Now()
	openCtx, stopOpening := context.WithCancel(ctx)
	defer stopOpening()
	var dialers sync.WaitGroup
	for range min(o.Dialers, o.Connections) {
		dialers.Go(func() { h.dialer(openCtx, stopOpening) })
	}
	done := make(chan struct{})
	go func() { dialers.Wait(); close(done) }()
	progress := func() IdleProgress {
		return IdleProgress{Connections: o.Connections, Opened: int(h.opened.Load()), Failed: int(h.failed.Load()),
			Elapsed: time.Since(start)}
	}
	tick := time.NewTicker(o.ProgressInterval)
opening:
	for {
		select {
		case <-done:
			break opening
		case <-tick.C:
			if o.Progress != nil {
				o.Progress(progress())
			}
		}
	}
	tick.Stop()
	openDur := time.Since(start)

	rep.Opened, rep.Failed = int(h.opened.Load()), int(h.failed.Load())
	rep.OpenSeconds = openDur.Seconds()
	if openDur > 0 {
		rep.OpenRate = float64(rep.Opened) / openDur.Seconds()
	}
	if e := h.firstErr.Load(); e != nil {
		rep.FirstError = (*e).Error()
	}
	rep.Interrupted = ctx.Err() != nil
	if o.Opened != nil {
		o.Opened(progress())
	}

	holdStart := time.Now()
	if rep.Opened > 0 && !rep.Interrupted {
		var timeout <-chan time.Time
		if o.Hold > 0 {
			t := time.NewTimer(o.Hold)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ctx.Done():
			rep.Interrupted = true
		case <-timeout:
		}
	}
	rep.HeldSeconds = time.Since(holdStart).Seconds()

	h.closeAll()
	rep.Lost = int(h.lost.Load())
	rep.ServerKeepAlives = int(h.serverKeepAlives.Load())
	if rep.Opened == 0 && rep.Failed > 0 && !rep.Interrupted {
		first := errors.New(rep.FirstError)
		if e := h.firstErr.Load(); e != nil {
			first = *e // wrapped: a *ConnackError stays visible to errors.As
		}
		return rep, fmt.Errorf("opening idle connections to %s: all %d attempts failed, first: %w",
			o.Broker, rep.Failed, first)
	}
	return rep, nil
}

// idleHolder is the state shared by the dialers, the keepalive goroutines and HoldIdle.
type idleHolder struct {
	o        *IdleOptions
	ping     []byte     // an encoded PINGREQ
	conns    []net.Conn // index i is connection i, nil unless it opened; written by its dialer before dialers end
	next     atomic.Int64
	opened   atomic.Int64
	failed   atomic.Int64
	lost     atomic.Int64
	firstErr atomic.Pointer[error]
	closing  atomic.Bool
	keepers  sync.WaitGroup // keepalive goroutines

	serverKeepAlives atomic.Int64
}

// dialer opens connections, taking the next index each time, until there are none left
// or ctx ends.
func (h *idleHolder) dialer(ctx context.Context, giveUp context.CancelFunc) {
	var buf bytes.Buffer
	for ctx.Err() == nil {
		i := int(h.next.Add(1) - 1)
		if i >= len(h.conns) {
			return
		}
		nc, keepalive, err := h.open(ctx, &buf, h.o.ClientIDPrefix+fmt.Sprint(i))
		if err != nil {
			if ctx.Err() != nil { // interrupted, not failed
				return
			}
			if h.failed.Add(1) >= int64(h.o.Dialers) && h.opened.Load() == 0 {
				giveUp()
			}
			err = fmt.Errorf("connection %d: %w", i, err)
			h.firstErr.CompareAndSwap(nil, &err)
			continue
		}
		h.conns[i] = nc
		h.opened.Add(1)
		if keepalive > 0 {
			h.keepers.Go(func() { h.keep(nc, time.Duration(keepalive)*time.Second/2) })
		}
	}
}

// open dials one connection, sends CONNECT and waits for a successful CONNACK. It
// returns the keepalive in force: the one sent, or the broker's Server Keep Alive.
func (h *idleHolder) open(ctx context.Context, buf *bytes.Buffer, clientID string) (net.Conn, uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, h.o.ConnectTimeout)
	defer cancel()
	nc, err := dialBroker(ctx, h.o.Broker, h.o.Login)
	if err != nil {
		return nil, 0, err
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	// End the exchange at once when ctx ends first.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	keepalive, err := h.connect(nc, buf, clientID)
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
	return nc, keepalive, nil
}

// connect writes CONNECT and reads CONNACK, and counts a Server Keep Alive that
// differs from the keepalive sent.
func (h *idleHolder) connect(nc net.Conn, buf *bytes.Buffer, clientID string) (uint16, error) {
	keepalive := uint16(h.o.KeepAlive / time.Second)
	ack, err := handshake(nc, buf, h.o.Protocol, clientID, keepalive, h.o.Login)
	if err != nil {
		return 0, err
	}
	if ack.keepAlive != keepalive {
		h.serverKeepAlives.Add(1)
	}
	return ack.keepAlive, nil
}

// keep sends a PINGREQ every interval and reads and discards what the broker sends,
// until the connection ends. It does not close the connection: closeAll does.
func (h *idleHolder) keep(nc net.Conn, interval time.Duration) {
	var buf [256]byte
	next := time.Now().Add(interval)
	for {
		_ = nc.SetReadDeadline(next)
		_, err := nc.Read(buf[:])
		if err == nil {
			continue
		}
		if h.closing.Load() {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(next) {
			_ = nc.SetWriteDeadline(time.Now().Add(h.o.ConnectTimeout))
			if _, err := nc.Write(h.ping); err == nil {
				next = time.Now().Add(interval)
				continue
			}
		}
		if !h.closing.Load() {
			h.lost.Add(1)
		}
		return
	}
}

// closeAll sends DISCONNECT on every open connection and closes it, then waits for the
// keepalive goroutines.
func (h *idleHolder) closeAll() {
	h.closing.Store(true)
	disconnect := []byte{0xe0, 0} // DISCONNECT without a variable header: reason 0 in MQTT 5
	for _, nc := range h.conns {
		if nc == nil {
			continue
		}
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(disconnect)
		_ = nc.Close()
	}
	h.keepers.Wait()
}

func encodePingreq(p Protocol) ([]byte, error) {
	var buf bytes.Buffer
	if p == MQTT311 {
		if err := mqttpackets.NewControlPacket(mqttpackets.Pingreq).Write(&buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	if _, err := packets5.NewControlPacket(packets5.PINGREQ).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
