package api

import (
	"bytes"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits net/http enforces before any handler runs: headers over MaxHeaderBytes (it
// answers 431 itself) and clients too slow to send their request (it closes the
// connection). No handler sees them, so each connection is watched to count them in
// arina_http_limit_hits_total{limit}. Under HTTPS the watch sits beneath TLS, where it
// counts slow clients (and slow TLS handshakes) but cannot see a 431.
const (
	limitHeaderSize = "header_size"
	limitSlowClient = "slow_client" // read_header_timeout or read_timeout
)

// limitListener wraps accepted connections with limitConn.
type limitListener struct {
	net.Listener
	hits *prometheus.CounterVec
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &limitConn{Conn: c, hits: l.hits}, nil
}

// limitConn counts the 431 answers net/http writes, and the reads that time out
// while a request is being read (not the idle wait between requests, and not the
// reads net/http cuts short on purpose with a deadline in the past).
type limitConn struct {
	net.Conn
	hits     *prometheus.CounterVec
	deadline atomic.Int64 // unix ns of the read deadline in force; 0: none
	timedOut atomic.Bool  // counted already: a connection counts once
}

var http431 = []byte(" 431 ")

func (c *limitConn) Write(p []byte) (int, error) {
	// net/http writes "HTTP/1.0 431 Request Header Fields Too Large" in one call.
	if len(p) > 13 && bytes.HasPrefix(p, []byte("HTTP/1.")) && bytes.Equal(p[8:13], http431) {
		c.hits.WithLabelValues(limitHeaderSize).Inc()
	}
	return c.Conn.Write(p)
}

func (c *limitConn) SetReadDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *limitConn) SetDeadline(t time.Time) error {
	c.note(t)
	return c.Conn.SetDeadline(t)
}

func (c *limitConn) note(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(0)
		return
	}
	c.deadline.Store(t.UnixNano())
}

func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		if dl := c.deadline.Load(); dl != 0 && time.Unix(0, dl).After(time.Unix(1e9, 0)) && c.timedOut.CompareAndSwap(false, true) {
			c.hits.WithLabelValues(limitSlowClient).Inc()
		}
	}
	return n, err
}

func newLimitHits() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_http_limit_hits_total",
		Help: "HTTP connections refused or closed by a limit net/http enforces before any handler: header_size (431), slow_client (request not read within read_header_timeout or read_timeout, or idle past idle_timeout).",
	}, []string{"limit"})
	v.WithLabelValues(limitHeaderSize)
	v.WithLabelValues(limitSlowClient)
	return v
}
