package broker

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Limits protect the broker from clients that flood or misbehave. Each limit, when
// hit, is counted in arina_mqtt_limit_hits_total{limit}.
type Limits struct {
	// MaxConnections is the most clients connected at once; a client beyond it gets
	// CONNACK 0x89 server busy (3.1.1: 3 server unavailable). 0: DefaultMaxConnections.
	MaxConnections int
	// MaxPacketSize is the largest MQTT packet accepted, in bytes; a larger one ends the
	// connection (MQTT 5 clients are told in CONNACK). 0: DefaultMaxPacketSize.
	MaxPacketSize uint32
	// MaxClientIDLen is the longest client id accepted, in bytes; a longer one gets
	// CONNACK 0x85 (3.1.1: 2 identifier rejected). 0: DefaultMaxClientIDLen.
	MaxClientIDLen int
	// PublishRate is the most PUBLISH packets per second one client may send, on
	// average, with bursts up to PublishBurst; beyond it a publish is refused: MQTT 5
	// QoS 1/2 gets reason 0x96, anything else is dropped. 0: no limit.
	PublishRate  float64
	PublishBurst int
	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed to open
	// MQTT over WebSocket; "*" allows any. A request without an Origin header (not a
	// browser) is always allowed.
	AllowedOrigins []string
}

// Default limits.
const (
	DefaultMaxConnections = 10000
	DefaultMaxPacketSize  = 1 << 20
	DefaultMaxClientIDLen = 256
)

func (l *Limits) setDefaults() {
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = DefaultMaxPacketSize
	}
	if l.MaxClientIDLen <= 0 {
		l.MaxClientIDLen = DefaultMaxClientIDLen
	}
	if l.PublishRate > 0 && l.PublishBurst <= 0 {
		l.PublishBurst = max(1, int(l.PublishRate))
	}
}

// Names of the limits, the label of arina_mqtt_limit_hits_total.
const (
	limitConnections = "connections"
	limitClientID    = "client_id_length"
	limitPacketSize  = "packet_size"
	limitPublishRate = "publish_rate"
	limitWSOrigin    = "websocket_origin"
)

// limitsHook enforces the connection, client id and publish rate limits, and counts
// packets refused for their size. It runs before the ingest hook, so a publish over
// the rate is never applied.
type limitsHook struct {
	mqtt.HookBase
	limits   Limits
	server   *mqtt.Server
	hits     *prometheus.CounterVec
	limiters sync.Map                                               // *mqtt.Client -> *rate.Limiter
	nack     func(*mqtt.Client, packets.Packet, packets.Code) error // writes a PUBACK/PUBREC with a reason code
}

func newLimitsHook(l Limits, server *mqtt.Server) *limitsHook {
	h := &limitsHook{limits: l, server: server, hits: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_mqtt_limit_hits_total",
		Help: "MQTT connections and packets refused by a limit: connections, client_id_length, packet_size, publish_rate, websocket_origin.",
	}, []string{"limit"})}
	for _, n := range []string{limitConnections, limitClientID, limitPacketSize, limitPublishRate, limitWSOrigin} {
		h.hits.WithLabelValues(n)
	}
	return h
}

func (h *limitsHook) ID() string { return "arina-limits" }

func (h *limitsHook) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnDisconnect || (b == mqtt.OnPublish && h.limits.PublishRate > 0)
}

// OnConnect refuses a client over the connection limit or with a too long client id.
// mochi closes the connection without a CONNACK when OnConnect fails, so the CONNACK
// with the reason is sent here.
func (h *limitsHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	var code packets.Code
	switch {
	case len(cl.ID) > h.limits.MaxClientIDLen:
		h.hits.WithLabelValues(limitClientID).Inc()
		code = packets.ErrClientIdentifierNotValid
	case atomic.LoadInt64(&h.server.Info.ClientsConnected) >= int64(h.limits.MaxConnections):
		h.hits.WithLabelValues(limitConnections).Inc()
		code = packets.ErrServerBusy
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable
		}
	default:
		if h.limits.PublishRate > 0 {
			h.limiters.Store(cl, rate.NewLimiter(rate.Limit(h.limits.PublishRate), h.limits.PublishBurst))
		}
		return nil
	}
	_ = h.server.SendConnack(cl, code, false, nil)
	return code
}

// OnDisconnect forgets the client's rate limiter and counts packets too large.
func (h *limitsHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	h.limiters.Delete(cl)
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.hits.WithLabelValues(limitPacketSize).Inc()
	}
}

// OnPublish refuses a publish over the client's rate.
func (h *limitsHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	return pk, h.OnPublishPtr(cl, &pk)
}

// OnPublishPtr is OnPublish with the packet by pointer, which mochi calls in its place
// (mochi patch 35: no copy of the packet on the read goroutine's stack). The packet is
// only read.
func (h *limitsHook) OnPublishPtr(cl *mqtt.Client, pk *packets.Packet) error {
	if cl.Net.Inline {
		return nil
	}
	v, ok := h.limiters.Load(cl)
	if !ok || v.(*rate.Limiter).Allow() {
		return nil
	}
	return h.overRate(cl, pk)
}

// overRate refuses a publish over the client's rate; out of line, so that
// OnPublishPtr's frame holds no copy of the packet.
//
//go:noinline
func (h *limitsHook) overRate(cl *mqtt.Client, pk *packets.Packet) error {
	h.hits.WithLabelValues(limitPublishRate).Inc()
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		return h.nack(cl, *pk, packets.ErrMessageRateTooHigh) // PUBACK or PUBREC 0x96
	}
	return packets.CodeSuccessIgnore // acked (QoS 1/2), dropped, not relayed
}

// checkOrigin returns the WebSocket upgrade check for the allowed origins.
func (h *limitsHook) checkOrigin() func(*http.Request) bool {
	any := false
	allowed := make(map[string]bool)
	for _, o := range h.limits.AllowedOrigins {
		if o == "*" {
			any = true
		}
		allowed[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" || any || allowed[strings.ToLower(origin)] {
			return true
		}
		h.hits.WithLabelValues(limitWSOrigin).Inc()
		return false
	}
}

// CheckOrigins validates WebSocket allowed origins.
func CheckOrigins(origins []string) error {
	var errs []error
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("origin %q: want scheme://host[:port] or *", o))
		}
	}
	return errors.Join(errs...)
}
