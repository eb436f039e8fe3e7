package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	mqttpackets "github.com/eclipse/paho.mqtt.golang/packets"
)

// Error kinds counted in Report.ErrorsByKind, besides "puback_0x.." for MQTT 5 reason
// codes (see pubackKind).
const (
	KindAckTimeout     = "ack_timeout"     // no PUBACK within Options.AckTimeout
	KindConnectionLost = "connection_lost" // the connection broke with the publish outstanding
	KindPublishError   = "publish_error"   // any other error from the client library
)

var errAckTimeout = errors.New("no PUBACK within the ack timeout")

// conn is one MQTT connection of the generator, either protocol.
type conn interface {
	// publish sends one message and waits, at most the ack timeout, for its PUBACK (QoS
	// 1) or until it is written (QoS 0). It returns the error kind ("" on success) and
	// the error. The caller must not reuse payload after an error.
	publish(ctx context.Context, w *worker, topic string, payload []byte) (string, error)
	// lost reports whether the connection broke.
	lost() bool
	// close disconnects; it is safe after lost.
	close()
}

// dialOptions configure one connection.
type dialOptions struct {
	addr       string // host:port or URL
	login      Login
	clientID   string
	protocol   Protocol
	qos        byte
	ackTimeout time.Duration
	subscribe  string // topic filter to subscribe to with qos; "" for a publisher
	onMessage  func() // called for each message received (subscriber only)
	client     string // ClientWire or ClientPaho
	window     int    // publishes outstanding at most (workers of the publisher)
	writeEach  bool   // wire client: a write per packet
}

// dial connects one client of d.client and d.protocol. It returns the broker's Receive
// Maximum (MQTT 5; 0 when it names none).
func dial(ctx context.Context, d dialOptions) (conn, uint16, error) {
	if d.client == ClientWire {
		c, rm, err := dialWire(ctx, d)
		if err != nil {
			return nil, 0, err // not a nil *wireConn in a non-nil interface
		}
		return c, rm, nil
	}
	if d.protocol == MQTT311 {
		c, err := dial311(ctx, d)
		return c, 0, err
	}
	return dial5(ctx, d)
}

// pubackKind names an MQTT 5 PUBACK reason code >= 0x80 as an error kind.
func pubackKind(code byte) string {
	var name string
	switch code {
	case 0x80:
		name = "unspecified_error"
	case 0x83:
		name = "implementation_specific_error"
	case 0x87:
		name = "not_authorized"
	case 0x90:
		name = "topic_name_invalid"
	case 0x91:
		name = "packet_identifier_in_use"
	case 0x97:
		name = "quota_exceeded"
	case 0x99:
		name = "payload_format_invalid"
	default:
		return fmt.Sprintf("puback_0x%02x", code)
	}
	return fmt.Sprintf("puback_0x%02x_%s", code, name)
}

// conn5 is an MQTT 5 connection (github.com/eclipse/paho.golang). Its Publish is
// synchronous, so each worker goroutine has one publish outstanding; the library bounds
// the wait with PacketTimeout and also respects the broker's Receive Maximum.
type conn5 struct {
	c      *paho.Client
	sess   *state.State
	qos    byte
	broken atomic.Bool
}

func dial5(ctx context.Context, d dialOptions) (*conn5, uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, d.ackTimeout)
	defer cancel()
	nc, err := dialBroker(ctx, d.addr, d.login)
	if err != nil {
		return nil, 0, err
	}
	pc := &conn5{qos: d.qos, sess: state.New(nopStore5{}, nopStore5{})}
	cfg := paho.ClientConfig{
		Conn:               nc,
		Session:            pc.sess,
		PacketTimeout:      d.ackTimeout,
		OnClientError:      func(error) { pc.broken.Store(true) },
		OnServerDisconnect: func(*paho.Disconnect) { pc.broken.Store(true) },
	}
	if d.onMessage != nil {
		on := d.onMessage
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(paho.PublishReceived) (bool, error) { on(); return true, nil },
		}
	}
	pc.c = paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: d.clientID, CleanStart: true, KeepAlive: 30,
		Username: d.login.Username, UsernameFlag: d.login.Username != "",
		Password: d.login.Password, PasswordFlag: d.login.Password != nil}
	ca, err := pc.c.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		_ = pc.sess.Close()
		if ca != nil {
			return nil, 0, &ConnackError{Protocol: MQTT5, Code: ca.ReasonCode}
		}
		return nil, 0, err
	}
	var receiveMax uint16 = 65535 // the MQTT 5 default when the broker names none
	if ca.Properties != nil && ca.Properties.ReceiveMaximum != nil {
		receiveMax = *ca.Properties.ReceiveMaximum
	}
	if d.subscribe != "" {
		sa, err := pc.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: d.subscribe, QoS: d.qos}}})
		if err != nil {
			pc.close()
			if sa != nil && len(sa.Reasons) > 0 {
				return nil, 0, fmt.Errorf("subscribing to %s: refused with reason %#x", d.subscribe, sa.Reasons[0])
			}
			return nil, 0, fmt.Errorf("subscribing to %s: %w", d.subscribe, err)
		}
	}
	return pc, receiveMax, nil
}

func (pc *conn5) publish(ctx context.Context, w *worker, topic string, payload []byte) (string, error) {
	// The packet is copied by Publish, so one paho.Publish per worker is reused.
	w.pub5 = paho.Publish{Topic: topic, QoS: pc.qos, Payload: payload}
	resp, err := pc.c.Publish(ctx, &w.pub5)
	switch {
	case err == nil:
		return "", nil
	case resp != nil && resp.ReasonCode >= 0x80:
		return pubackKind(resp.ReasonCode), err
	case errors.Is(err, context.DeadlineExceeded):
		return KindAckTimeout, err
	case pc.lost() || errors.Is(err, session.ErrNoConnection) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "shutdown"):
		return KindConnectionLost, err
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return KindConnectionLost, err
	}
	return KindPublishError, err
}

func (pc *conn5) lost() bool {
	if pc.broken.Load() {
		return true
	}
	select {
	case <-pc.c.Done():
		return true
	default:
		return false
	}
}

func (pc *conn5) close() {
	_ = pc.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) // closes the connection even when the write fails
	_ = pc.sess.Close()                                  // ours, so paho does not close it
}

// conn311 is an MQTT 3.1.1 connection (github.com/eclipse/paho.mqtt.golang). Publish
// returns a token at once; the worker waits for token.Done() or its own reused timer.
type conn311 struct {
	c          pahomqtt.Client
	qos        byte
	ackTimeout time.Duration
	broken     atomic.Bool
}

func dial311(ctx context.Context, d dialOptions) (*conn311, error) {
	pc := &conn311{qos: d.qos, ackTimeout: d.ackTimeout}
	t, err := parseBroker(d.addr)
	if err != nil {
		return nil, err
	}
	opts := pahomqtt.NewClientOptions().
		AddBroker("tcp://" + t.Host). // a placeholder: CustomOpenConnectionFn dials d.addr
		SetUsername(d.login.Username).
		SetPassword(string(d.login.Password)).
		SetClientID(d.clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(d.ackTimeout).
		SetWriteTimeout(d.ackTimeout).
		SetStore(nopStore{}).
		SetConnectionLostHandler(func(pahomqtt.Client, error) { pc.broken.Store(true) })
	opts.CustomOpenConnectionFn = func(*url.URL, pahomqtt.ClientOptions) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, d.ackTimeout)
		defer cancel()
		return dialBroker(ctx, d.addr, d.login)
	}
	pc.c = pahomqtt.NewClient(opts)
	if err := waitToken(ctx, pc.c.Connect(), d.ackTimeout); err != nil {
		pc.c.Disconnect(0)
		for code, e := range mqttpackets.ConnErrors {
			if errors.Is(err, e) && code != mqttpackets.Accepted {
				return nil, &ConnackError{Protocol: MQTT311, Code: code}
			}
		}
		return nil, err
	}
	if d.subscribe != "" {
		on := d.onMessage
		tok := pc.c.Subscribe(d.subscribe, d.qos, func(pahomqtt.Client, pahomqtt.Message) { on() })
		if err := waitToken(ctx, tok, d.ackTimeout); err != nil {
			pc.close()
			return nil, fmt.Errorf("subscribing to %s: %w", d.subscribe, err)
		}
	}
	return pc, nil
}

func waitToken(ctx context.Context, tok pahomqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return errAckTimeout
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (pc *conn311) publish(_ context.Context, w *worker, topic string, payload []byte) (string, error) {
	tok := pc.c.Publish(topic, pc.qos, false, payload)
	w.timer.Reset(pc.ackTimeout)
	select {
	case <-tok.Done():
		w.timer.Stop()
	case <-w.timer.C:
		return KindAckTimeout, errAckTimeout
	}
	if err := tok.Error(); err != nil {
		if pc.lost() || errors.Is(err, pahomqtt.ErrNotConnected) || strings.Contains(err.Error(), "connection lost") {
			return KindConnectionLost, err
		}
		return KindPublishError, err
	}
	return "", nil
}

func (pc *conn311) lost() bool { return pc.broken.Load() || !pc.c.IsConnectionOpen() }

func (pc *conn311) close() { pc.c.Disconnect(100) }

// nopStore is a paho.mqtt.golang Store that keeps nothing. The generator uses clean
// sessions and never reconnects, so the store would only cost a map insert and delete
// under a mutex per message.
type nopStore struct{}

func (nopStore) Open()                                 {}
func (nopStore) Put(string, mqttpackets.ControlPacket) {}
func (nopStore) Get(string) mqttpackets.ControlPacket  { return nil }
func (nopStore) All() []string                         { return nil }
func (nopStore) Del(string)                            {}
func (nopStore) Close()                                {}
func (nopStore) Reset()                                {}

var _ pahomqtt.Store = nopStore{}

// nopStore5 is the paho.golang session store counterpart of nopStore: the default
// in-memory store encodes every outgoing packet a second time, into a new buffer, under
// a mutex, only to be able to resend it after a reconnect that never comes here. The
// session state still tracks packet identifiers and the Receive Maximum quota.
type nopStore5 struct{}

func (nopStore5) Put(uint16, byte, io.WriterTo) error { return nil }
func (nopStore5) Get(uint16) (io.ReadCloser, error)   { return nil, errors.New("nothing stored") }
func (nopStore5) Delete(uint16) error                 { return nil }
func (nopStore5) Quarantine(uint16) error             { return nil }
func (nopStore5) List() ([]uint16, error)             { return nil, nil }
func (nopStore5) Reset() error                        { return nil }
