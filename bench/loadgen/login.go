package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/arina-dev/arina/internal/mqttdial"
)

// Login is how the generator's connections reach and log in to a secured broker. The
// broker address (Options.Broker, IdleOptions.Broker) picks the transport: host:port or
// mqtt:// (TCP), mqtts:// (TLS), ws:// or wss:// (WebSocket).
type Login struct {
	Username string // "": none
	Password []byte // nil: none (only with a Username)
	// TLS configures mqtts:// and wss:// (CA, client certificate); nil: the system's
	// CAs. Its ServerName defaults to the broker's host.
	TLS *tls.Config
}

// ConnackError is a CONNACK that refused the connection; errors.As finds it in the
// error of Run or HoldIdle when the broker refused the login.
type ConnackError struct {
	Protocol Protocol
	Code     byte // MQTT 5 reason code, or MQTT 3.1.1 return code
}

func (e *ConnackError) Error() string {
	if e.Protocol == MQTT311 {
		return fmt.Sprintf("refused with return code %d", e.Code)
	}
	return fmt.Sprintf("refused with reason %#x", e.Code)
}

// parseBroker reads a broker address; a bare host:port is plain MQTT.
func parseBroker(s string) (mqttdial.Target, error) { return mqttdial.Parse(s, false) }

// dialBroker opens the byte stream to the broker at addr (TLS and WebSocket
// handshakes done), bounded by ctx.
func dialBroker(ctx context.Context, addr string, l Login) (net.Conn, error) {
	t, err := parseBroker(addr)
	if err != nil {
		return nil, err
	}
	return mqttdial.Dial(ctx, t, l.TLS)
}
