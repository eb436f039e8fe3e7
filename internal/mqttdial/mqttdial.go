// Package mqttdial opens the byte stream an MQTT client speaks over: TCP, TLS,
// WebSocket or secure WebSocket, from a broker URL (mqtt://, mqtts://, ws://, wss://)
// or a bare host:port. It is shared by the command-line clients (arina pub) and the
// load generator, so that both accept the same addresses and fail the same way.
package mqttdial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Schemes of a broker address.
const (
	MQTT  = "mqtt"  // MQTT over TCP (also tcp://)
	MQTTS = "mqtts" // MQTT over TLS (also ssl://, tls://)
	WS    = "ws"    // MQTT over WebSocket
	WSS   = "wss"   // MQTT over secure WebSocket
)

// ErrAddress is wrapped by the errors of Parse.
var ErrAddress = errors.New("invalid broker address")

// Target is a parsed broker address.
type Target struct {
	Scheme string // MQTT, MQTTS, WS or WSS
	Host   string // host:port
	Path   string // WS, WSS: the request path ("/" when none was given)
}

// TLS reports whether the target is reached over TLS.
func (t Target) TLS() bool { return t.Scheme == MQTTS || t.Scheme == WSS }

// String returns the target as a URL.
func (t Target) String() string {
	s := t.Scheme + "://" + t.Host
	if t.Scheme == WS || t.Scheme == WSS {
		s += t.Path
	}
	return s
}

// Parse reads a broker address: a URL with scheme mqtt (or tcp), mqtts (or ssl, tls),
// ws or wss, or a bare host:port, which is MQTT over TLS when tlsBare is set (as
// mosquitto_pub does when given a CA file) and plain MQTT otherwise. A URL without a
// port takes its scheme's: 1883, 8883, 80, 443.
func Parse(s string, tlsBare bool) (Target, error) {
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil || port == "" {
			return Target{}, fmt.Errorf("%w %q: want host:port or a URL (mqtt://, mqtts://, ws://, wss://)", ErrAddress, s)
		}
		t := Target{Scheme: MQTT, Host: net.JoinHostPort(host, port)}
		if tlsBare {
			t.Scheme = MQTTS
		}
		return t, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w %q: %v", ErrAddress, s, err)
	}
	var t Target
	var port string
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
		t.Scheme, port = MQTT, "1883"
	case "mqtts", "ssl", "tls":
		t.Scheme, port = MQTTS, "8883"
	case "ws":
		t.Scheme, port = WS, "80"
	case "wss":
		t.Scheme, port = WSS, "443"
	default:
		return Target{}, fmt.Errorf("%w %q: scheme %q is not mqtt, mqtts, ws or wss", ErrAddress, s, u.Scheme)
	}
	if u.Hostname() == "" {
		return Target{}, fmt.Errorf("%w %q: no host", ErrAddress, s)
	}
	if u.User != nil {
		return Target{}, fmt.Errorf("%w %q: give the username and password with their own options, not in the URL", ErrAddress, s)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	t.Host = net.JoinHostPort(u.Hostname(), port)
	switch {
	case t.Scheme == WS || t.Scheme == WSS:
		t.Path = u.EscapedPath()
		if t.Path == "" {
			t.Path = "/"
		}
		if u.RawQuery != "" {
			t.Path += "?" + u.RawQuery
		}
	case u.Path != "" && u.Path != "/":
		return Target{}, fmt.Errorf("%w %q: a %s:// address has no path", ErrAddress, s, t.Scheme)
	}
	return t, nil
}

// Dial opens a connection to t and, for TLS targets, completes the TLS handshake with
// conf (nil: system roots; ServerName defaults to t's host), so that a certificate
// problem is the error of Dial and not of the first MQTT packet. ctx bounds the dial
// and the handshakes only.
func Dial(ctx context.Context, t Target, conf *tls.Config) (net.Conn, error) {
	if t.TLS() {
		conf = clientTLS(conf, t.Host)
	}
	switch t.Scheme {
	case MQTT, MQTTS:
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", t.Host)
		if err != nil {
			return nil, err
		}
		if t.Scheme == MQTT {
			return nc, nil
		}
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, &TLSError{Host: t.Host, Err: err}
		}
		return &packetConn{Conn: tc}, nil
	case WS, WSS:
		d := websocket.Dialer{
			Subprotocols:     []string{"mqtt"},
			TLSClientConfig:  conf,
			HandshakeTimeout: 30 * time.Second,
		}
		c, resp, err := d.DialContext(ctx, t.String(), nil)
		if err != nil {
			var ce *tls.CertificateVerificationError
			var re tls.RecordHeaderError
			if errors.As(err, &ce) || errors.As(err, &re) {
				return nil, &TLSError{Host: t.Host, Err: err}
			}
			if resp != nil {
				resp.Body.Close()
				return nil, fmt.Errorf("websocket handshake with %s: %s", t, resp.Status)
			}
			return nil, err
		}
		if c.Subprotocol() != "mqtt" {
			c.Close()
			return nil, fmt.Errorf("websocket handshake with %s: the server did not accept the mqtt subprotocol", t)
		}
		return &packetConn{Conn: &wsConn{Conn: c.NetConn(), c: c}}, nil
	}
	return nil, fmt.Errorf("%w: scheme %q", ErrAddress, t.Scheme)
}

// clientTLS returns conf (or an empty configuration) with ServerName set to host's
// name when it is not set.
func clientTLS(conf *tls.Config, host string) *tls.Config {
	if conf == nil {
		conf = &tls.Config{}
	}
	if conf.ServerName != "" {
		return conf
	}
	conf = conf.Clone()
	if h, _, err := net.SplitHostPort(host); err == nil {
		conf.ServerName = h
	}
	return conf
}

// TLSError is a failed TLS handshake with a broker; Err is the cause (errors.As finds
// *tls.CertificateVerificationError, x509.UnknownAuthorityError, and so on).
type TLSError struct {
	Host string
	Err  error
}

func (e *TLSError) Error() string { return fmt.Sprintf("TLS handshake with %s: %v", e.Host, e.Err) }
func (e *TLSError) Unwrap() error { return e.Err }

// packetConn is a TLS or WebSocket connection that is also a sync.Locker.
// paho.golang writes a packet as several Write calls (net.Buffers: fixed header,
// then the rest) and holds the writer's lock across them only if the writer is a
// sync.Locker. On a *net.TCPConn the buffers go out in one writev; on TLS or a
// WebSocket, another goroutine's packet (concurrent publishes, the PINGREQ paho
// sends right after CONNACK) could land between them, and the broker would read a
// malformed packet and close the connection.
type packetConn struct {
	net.Conn
	sync.Mutex // taken by paho.golang around each packet; never by Write itself
}

// wsConn is MQTT over a WebSocket: binary messages carry the bytes, and a packet may
// span messages (MQTT 5 §6).
type wsConn struct {
	net.Conn // the underlying connection: addresses, deadlines, Close
	c        *websocket.Conn
	wmu      sync.Mutex // a gorilla connection allows one writer at a time
	r        io.Reader  // the message being read; nil between messages
}

func (ws *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("websocket: the broker sent a text message; MQTT uses binary messages")
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	ws.wmu.Lock()
	defer ws.wmu.Unlock()
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
