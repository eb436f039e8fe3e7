package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/internal/tlsconf"
)

const loginPassword = "pw-bench 1"

// secured is a daemon with a users file, MQTT over TLS, WebSocket and secure
// WebSocket, and HTTPS with a tokens file (token "tok-read" may read).
type secured struct {
	*arinatest.Daemon
	addrs   map[string]string // mqtt, mqtts, ws, wss: URL of each listener
	https   string            // https://host:port
	roots   *tls.Config       // trusts the test CA
	clients *tls.Config       // trusts the test CA, presents the client certificate (badge-reader-1)
}

func startSecured(t *testing.T) *secured {
	t.Helper()
	certs := testutil.MakeCerts(t)
	h, err := bcrypt.GenerateFromPassword([]byte(loginPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	usersPath, tokensPath := filepath.Join(dir, "users.yaml"), filepath.Join(dir, "tokens.yaml")
	users := fmt.Sprintf("users:\n  - username: bench\n    password_hash: %q\n    acl:\n      - {topic: \"kitchen/#\", access: readwrite}\n"+
		"  - username: badge-reader-1\n    certificate_only: true\n    acl:\n      - {topic: \"kitchen/#\", access: readwrite}\n", h)
	tokens := fmt.Sprintf("tokens:\n  - {name: board, sha256: %s, scopes: [read]}\n", auth.HashToken("tok-read"))
	for p, c := range map[string]string{usersPath: users, tokensPath: tokens} {
		if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uf, err := auth.OpenUsersFile(usersPath)
	if err != nil {
		t.Fatal(err)
	}
	tf, err := auth.OpenTokensFile(tokensPath)
	if err != nil {
		t.Fatal(err)
	}
	mqttTLS, err := tlsconf.Load(tlsconf.Files{CertFile: certs.ServerCert, KeyFile: certs.ServerKey, ClientCAFile: certs.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	httpTLS, err := tlsconf.Load(tlsconf.Files{CertFile: certs.ServerCert, KeyFile: certs.ServerKey})
	if err != nil {
		t.Fatal(err)
	}
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.MQTT.Users = uf
		o.MQTT.TLS = mqttTLS.Config()
		o.MQTT.TLSListen, o.MQTT.WSListen, o.MQTT.WSSListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		o.HTTP.Tokens = tf
		o.HTTP.TLS = httpTLS.Config()
	})
	a := d.Broker.Addrs()
	s := &secured{Daemon: d, https: "https://" + d.HTTPAddr(), addrs: map[string]string{
		"mqtt": "mqtt://" + a["tcp"], "mqtts": "mqtts://" + a["tls"], "ws": "ws://" + a["ws"] + "/mqtt", "wss": "wss://" + a["wss"],
	}}
	pem, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	s.roots = &tls.Config{RootCAs: pool}
	s.clients = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}
	return s
}

// TestRun_Login: both clients, both protocols, over each transport, log in to a
// secured broker (password, or a client certificate) and get every event acked; a
// refused login is a ConnackError with the broker's code, not a run of errors.
func TestRun_Login(t *testing.T) {
	s := startSecured(t)
	pw := Login{Username: "bench", Password: []byte(loginPassword)}
	for _, client := range []string{ClientWire, ClientPaho} {
		for _, proto := range []Protocol{MQTT311, MQTT5} {
			for _, scheme := range []string{"mqtt", "mqtts", "ws", "wss"} {
				login := pw
				if scheme == "mqtts" || scheme == "wss" {
					login.TLS = s.roots
				}
				if scheme == "wss" && client == ClientWire {
					login = Login{TLS: s.clients} // certificate only
				}
				t.Run(fmt.Sprintf("%s/%s/%s", client, proto, scheme), func(t *testing.T) {
					rep, err := Run(t.Context(), Options{Broker: s.addrs[scheme], Login: login, Client: client, Protocol: proto,
						QoS: 1, Publishers: 2, InFlight: 4, Events: 40, Subscribe: true, ClientIDPrefix: "login-" + scheme + "-"})
					if err != nil {
						t.Fatal(err)
					}
					if rep.Acked != 40 || rep.Errors != 0 {
						t.Fatalf("acked %d, errors %d (%s), want 40 and 0", rep.Acked, rep.Errors, rep.FirstError)
					}
				})
			}
		}
	}
	for _, tc := range []struct {
		name  string
		proto Protocol
		login Login
		code  byte
	}{
		{"5/NoLogin", MQTT5, Login{}, 0x87},
		{"5/WrongPassword", MQTT5, Login{Username: "bench", Password: []byte("nope")}, 0x86},
		{"311/NoLogin", MQTT311, Login{}, 5},
		{"311/WrongPassword", MQTT311, Login{Username: "bench", Password: []byte("nope")}, 4},
	} {
		for _, client := range []string{ClientWire, ClientPaho} {
			t.Run(tc.name+"/"+client, func(t *testing.T) {
				start := time.Now()
				_, err := Run(t.Context(), Options{Broker: s.addrs["mqtt"], Login: tc.login, Client: client, Protocol: tc.proto, Events: 10})
				var ce *ConnackError
				if !errors.As(err, &ce) || ce.Code != tc.code || ce.Protocol != tc.proto {
					t.Fatalf("Run = %v, want a ConnackError with code %#x", err, tc.code)
				}
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("refused after %v, want at once", d)
				}
			})
		}
	}
	// paho's publishes share one connection: over TLS and WebSocket each packet must
	// reach the broker whole (mqttdial's packetConn), or a concurrent PUBLISH or
	// PINGREQ lands inside another and the broker closes the connection.
	for _, scheme := range []string{"mqtts", "wss"} {
		t.Run("ConcurrentPahoPublishes/"+scheme, func(t *testing.T) {
			login := pw
			login.TLS = s.roots
			rep, err := Run(t.Context(), Options{Broker: s.addrs[scheme], Login: login, Client: ClientPaho, Protocol: MQTT5,
				QoS: 1, Publishers: 2, InFlight: 32, Events: 4000})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Acked != 4000 || rep.Errors != 0 || rep.ConnectionsLost != 0 {
				t.Fatalf("acked %d, errors %d (%s), connections lost %d; want 4000, 0, 0", rep.Acked, rep.Errors, rep.FirstError, rep.ConnectionsLost)
			}
		})
	}
	t.Run("UntrustedCertificate", func(t *testing.T) {
		_, err := Run(t.Context(), Options{Broker: s.addrs["mqtts"], Login: pw, Events: 10})
		var ua x509.UnknownAuthorityError
		if !errors.As(err, &ua) {
			t.Fatalf("Run = %v, want x509.UnknownAuthorityError", err)
		}
	})
	t.Run("Idle", func(t *testing.T) {
		login := pw
		login.TLS = s.roots
		rep, err := HoldIdle(t.Context(), IdleOptions{Broker: s.addrs["wss"], Login: login, Connections: 5, Hold: time.Millisecond})
		if err != nil || rep.Opened != 5 {
			t.Fatalf("HoldIdle = %+v, %v; want 5 opened", rep, err)
		}
		_, err = HoldIdle(t.Context(), IdleOptions{Broker: s.addrs["mqtt"], Connections: 2, Hold: time.Millisecond})
		var ce *ConnackError
		if !errors.As(err, &ce) || ce.Code != 0x87 {
			t.Fatalf("HoldIdle without a login = %v, want refused with 0x87", err)
		}
	})
}

// TestRun_LoginHTTP: the visibility probes and the query readers reach an HTTPS API
// with a tokens file; without the token the run refuses to start.
func TestRun_LoginHTTP(t *testing.T) {
	s := startSecured(t)
	login := Login{Username: "bench", Password: []byte(loginPassword)}
	rep, err := Run(t.Context(), Options{Broker: s.addrs["mqtt"], Login: login, Publishers: 1, Events: 300, SampleEvery: 10,
		HTTPURL: s.https, HTTPToken: "tok-read", HTTPTLS: s.roots})
	if err != nil {
		t.Fatal(err)
	}
	if v := rep.Visibility; v == nil || v.Probes == 0 || v.HTTPErrors != 0 || v.Latency == nil {
		t.Fatalf("visibility %+v, want probes seen and no HTTP errors", v)
	}
	_, err = Run(t.Context(), Options{Broker: s.addrs["mqtt"], Login: login, Events: 10, HTTPURL: s.https, HTTPTLS: s.roots})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Run without the token = %v, want an error naming 401", err)
	}
	q, err := RunQueries(t.Context(), QueryOptions{URL: s.https, Token: "tok-read", TLS: s.roots, Workers: 2, Duration: 200 * time.Millisecond})
	if err != nil || q.Requests == 0 || q.Errors != 0 {
		t.Fatalf("RunQueries = %+v, %v; want requests and no errors", q, err)
	}
}
