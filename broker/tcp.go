package broker

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener serves MQTT over TCP or TLS. It replaces mochi's TCP listener to keep
// track of every accepted connection, so that Close also ends connections that have
// not sent their CONNECT yet (mochi only knows clients after CONNECT, and would wait
// for them), and to log refused connections at debug level instead of one warning
// each (a brute-force attempt would flood the log).
type tcpListener struct {
	id   string
	addr string
	tls  *tls.Config
	ln   net.Listener
	log  *slog.Logger

	// clientConns returns the connections of mochi's clients on a listener; Close
	// leaves those to mochi.
	clientConns func(listener string) map[net.Conn]bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // accepted and not yet finished
	closed bool
}

func newTCPListener(id, addr string, tlsConfig *tls.Config, clientConns func(string) map[net.Conn]bool) *tcpListener {
	return &tcpListener{id: id, addr: addr, tls: tlsConfig, clientConns: clientConns, conns: make(map[net.Conn]struct{})}
}

func (l *tcpListener) ID() string { return l.id }
func (l *tcpListener) Address() string {
	if l.ln == nil {
		return l.addr
	}
	return l.ln.Addr().String()
}
func (l *tcpListener) Protocol() string {
	if l.tls != nil {
		return "tls"
	}
	return "tcp"
}

// Init binds the address.
func (l *tcpListener) Init(log *slog.Logger) error {
	l.log = log
	var err error
	l.ln, err = bind(l.addr, l.tls)
	return err
}

// bind listens on addr, with TLS when tlsConfig is set; a port in use is an error here,
// when the broker starts.
func bind(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

// Serve accepts connections until Close and hands each to mochi.
func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		go func() {
			err := establish(l.id, conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			if err != nil {
				l.log.Debug("mqtt connection ended", "listener", l.id, "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, has mochi disconnect its clients on this listener, and closes
// the connections that never became clients.
func (l *tcpListener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()
	if l.ln != nil {
		_ = l.ln.Close()
	}
	// mochi's clients are left to mochi, which has sent them DISCONNECT and closes
	// their connections once they have read it (or after mqtt.DisconnectLinger; mochi
	// patch 19): closing them here would reset a client still writing before it read
	// the reason. The rest sent no CONNECT.
	owned := l.clientConns(l.id)
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		if !owned[c] {
			_ = c.Close()
		}
	}
	l.mu.Unlock()
}
