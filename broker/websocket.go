package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// wsListener serves MQTT over WebSocket (ws://) or, with a TLS configuration, secure
// WebSocket (wss://). It replaces mochi's listener, which accepts every browser origin
// and binds only once serving (so a port in use would not be an error of Start).
type wsListener struct {
	id       string
	addr     string
	tls      *tls.Config
	origin   func(*http.Request) bool
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	upgrader websocket.Upgrader

	mu        sync.Mutex
	establish listeners.EstablishFn
	closed    bool
}

func newWSListener(id, addr string, tlsConfig *tls.Config, checkOrigin func(*http.Request) bool) *wsListener {
	return &wsListener{id: id, addr: addr, tls: tlsConfig, origin: checkOrigin}
}

func (l *wsListener) ID() string      { return l.id }
func (l *wsListener) Address() string { return l.ln.Addr().String() }
func (l *wsListener) Protocol() string {
	if l.tls != nil {
		return "wss"
	}
	return "ws"
}

// Init binds the address.
func (l *wsListener) Init(log *slog.Logger) error {
	l.log = log
	ln, err := bind(l.addr, l.tls)
	if err != nil {
		return err
	}
	l.ln = ln
	l.upgrader = websocket.Upgrader{Subprotocols: []string{"mqtt"}, CheckOrigin: l.origin}
	l.srv = &http.Server{
		Handler:           http.HandlerFunc(l.handle),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return nil
}

// Serve accepts connections until Close.
func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	l.establish = establish
	l.mu.Unlock()
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "listener", l.id, "err", err)
	}
}

func (l *wsListener) handle(w http.ResponseWriter, r *http.Request) {
	c, err := l.upgrader.Upgrade(w, r, nil) // answers 403 itself when the origin is refused
	if err != nil {
		return
	}
	defer c.Close()
	l.mu.Lock()
	establish := l.establish
	l.mu.Unlock()
	conn := &wsConn{Conn: c.UnderlyingConn(), c: c, tls: r.TLS}
	if err := establish(l.id, conn); err != nil {
		l.log.Debug("websocket client ended", "listener", l.id, "remote", r.RemoteAddr, "err", err)
	}
}

// Close stops accepting and closes the listener's clients.
func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	closed := l.closed
	l.closed = true
	l.mu.Unlock()
	if !closed && l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.srv.Shutdown(ctx) // hijacked (upgraded) connections are not waited for
	}
	closeClients(l.id)
}

// wsConn is an MQTT stream over WebSocket binary messages.
type wsConn struct {
	net.Conn
	c   *websocket.Conn
	r   io.Reader // the message being read, if any
	tls *tls.ConnectionState
}

// errNotBinary ends a connection that sends a text message: MQTT over WebSocket uses
// binary messages only.
var errNotBinary = errors.New("websocket: MQTT needs binary messages")

func (ws *wsConn) Read(p []byte) (int, error) {
	for {
		if ws.r == nil {
			op, r, err := ws.c.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errNotBinary
			}
			ws.r = r
		}
		n, err := ws.r.Read(p)
		if errors.Is(err, io.EOF) {
			ws.r = nil // the next read takes the next message
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (ws *wsConn) Write(p []byte) (int, error) {
	if err := ws.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// peerTLS returns the TLS state of an MQTT connection (TLS or secure WebSocket), or
// nil for a plain one.
func peerTLS(conn net.Conn) *tls.ConnectionState {
	switch c := conn.(type) {
	case *tls.Conn:
		cs := c.ConnectionState()
		return &cs
	case *wsConn:
		return c.tls
	}
	return nil
}
