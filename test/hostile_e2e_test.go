package test

// The hostile-input catalogue: every row of the table in docs/SECURITY.md is a subtest
// of TestHostile_Catalogue that sends the bad input with a real client (paho for MQTT
// 3.1.1, paho.golang for MQTT 5, mosquitto_pub/mosquitto_sub, net/http, crypto/tls,
// gorilla/websocket, or raw bytes where no client library would send them), asserts
// what the client sees, and asserts the exact change of the metrics that count it:
// the samples a row names move by exactly the amount it says, and no other sample of
// the refusal and apply counters (hostileStrict) moves at all, so nothing rejected was
// applied. The table in the doc is rendered from hostileRows, and
// TestHostile_CatalogueMatchesDoc fails when the two differ: regenerate it with
//
//	go test ./test/ -run TestHostile_CatalogueMatchesDoc -update-security-doc
//
// Helpers here are prefixed with "hostile" so they cannot collide with those of the
// other files of package test.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	pkt5 "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	pkt311 "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/gorilla/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/internal/tlsconf"
)

var hostileUpdateDoc = flag.Bool("update-security-doc", false, "rewrite the catalogue table in docs/SECURITY.md from hostileRows")

// hostileTimeout bounds every wait for an answer.
const hostileTimeout = 10 * time.Second

// The limits of the shared daemon without authentication.
const (
	hostileMaxPacket       = 16 << 10
	hostileMaxBatchPayload = 8 << 10
)

// hostileAllowedOrigin is the one browser origin the shared daemon's WebSocket allows.
const hostileAllowedOrigin = "https://board.example"

// The tokens of the shared daemon with authentication; its tokens file holds only
// their hashes.
const (
	hostileTokRead  = "hostile-read-token"
	hostileTokWrite = "hostile-write-token"
	hostileTokBoth  = "hostile-ops-token"
)

// hostileUsers is the users file of the shared daemon with authentication; %s are
// bcrypt hashes of "pw-sensor" and "pw-viewer". badge-reader-1 logs in with its
// client certificate only.
const hostileUsers = `users:
  - username: sensor
    password_hash: "%s"
    acl:
      - {topic: "kitchen/+/active", access: write}
      - {topic: "kitchen/batch", access: write}
  - username: viewer
    password_hash: "%s"
    acl:
      - {topic: "kitchen/#", access: read}
      - {topic: "kitchen/secret/#", access: deny}
  - username: badge-reader-1
    certificate_only: true
    acl:
      - {topic: "kitchen/+/active", access: write}
`

// hostileStrict are the counters of refusals and applies: in every row, each of their
// samples that the row does not name must stay as it was.
var hostileStrict = []string{
	"arina_events_rejected_total",
	"arina_events_applied_total",
	"arina_mqtt_auth_failures_total",
	"arina_mqtt_acl_denied_total",
	"arina_mqtt_limit_hits_total",
	"arina_http_auth_failures_total",
	"arina_http_limit_hits_total",
}

// hostileSample is the expected change of one metric sample, written as on /metrics.
type hostileSample struct {
	sample string
	delta  float64
}

func rejected(source, reason string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_events_rejected_total{reason=%q,source=%q}`, reason, source), n}
}

func applied(source string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_events_applied_total{source=%q}`, source), n}
}

func received(source string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_events_received_total{source=%q}`, source), n}
}

func authFailed(reason string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_mqtt_auth_failures_total{reason=%q}`, reason), n}
}

func aclDenied(access string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_mqtt_acl_denied_total{access=%q}`, access), n}
}

func sysRefused(n float64) hostileSample {
	return hostileSample{`arina_mqtt_publishes_refused_total{reason="sys_topic"}`, n}
}

func limitHit(limit string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_mqtt_limit_hits_total{limit=%q}`, limit), n}
}

func httpAuthFailed(reason string, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_http_auth_failures_total{reason=%q}`, reason), n}
}

func httpRequests(route string, code int, n float64) hostileSample {
	return hostileSample{fmt.Sprintf(`arina_http_requests_total{code="%d",route=%q}`, code, route), n}
}

func mqttReceived(n float64) hostileSample {
	return hostileSample{"arina_mqtt_messages_received_total", n}
}

// hostileRow is one row of the catalogue.
type hostileRow struct {
	name    string          // subtest of TestHostile_Catalogue; the doc's test column
	proto   string          // MQTT or HTTP
	input   string          // the bad input (doc)
	sees    string          // what the client sees (doc)
	metrics []hostileSample // exact changes; other hostileStrict samples must not move
	note    string          // said after the metrics in the doc, e.g. why nothing counts it
	bug     string          // a known bug: the row's test is skipped with "BUG: <bug>"
	daemon  func(*testing.T, *hostileEnv) *arinatest.Daemon
	run     func(*testing.T, *hostileEnv, *arinatest.Daemon)
}

// hostileEnv holds the daemons and clients the rows share.
type hostileEnv struct {
	open   *arinatest.Daemon // no authentication; small packet and batch limits; WebSocket
	v5     *paho.Client      // MQTT 5 client of open
	v3     pahomqtt.Client   // MQTT 3.1.1 client of open
	wsAddr string            // open's WebSocket listener

	auth    *arinatest.Daemon // users file, tokens file, MQTT over TLS with client certificates
	certs   *testutil.Certs
	tlsAddr string // auth's MQTT over TLS listener
}

func openDaemon(_ *testing.T, e *hostileEnv) *arinatest.Daemon { return e.open }
func authDaemon(_ *testing.T, e *hostileEnv) *arinatest.Daemon { return e.auth }

// ownDaemon starts a daemon of the row's own, without authentication, for settings
// the shared ones must not have (tiny limits and timeouts).
func ownDaemon(opts ...func(*daemon.Options)) func(*testing.T, *hostileEnv) *arinatest.Daemon {
	return func(t *testing.T, _ *hostileEnv) *arinatest.Daemon { return hostileStart(t, opts...) }
}

// hostileStart starts a daemon and, at cleanup, before the daemon's Close and after
// the clients' own cleanups, waits until the broker has seen every client go (mochi
// v2.7.9 can deadlock in Close when a client leaves during it, mochi-mqtt/server#488).
func hostileStart(tb testing.TB, opts ...func(*daemon.Options)) *arinatest.Daemon {
	tb.Helper()
	d := arinatest.Start(tb, opts...)
	tb.Cleanup(func() {
		testutil.WaitFor(tb, hostileTimeout, func() error {
			if n := hostileSnapshot(tb, d)["arina_mqtt_clients_connected"]; n != 0 {
				return fmt.Errorf("%v MQTT clients still connected", n)
			}
			return nil
		})
	})
	return d
}

// hostileSnapshot returns every counter and gauge sample of the daemon, keyed as on
// /metrics: name{label="value",...} with labels in name order.
func hostileSnapshot(tb testing.TB, d *arinatest.Daemon) map[string]float64 {
	tb.Helper()
	mfs, err := d.Registry.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	out := make(map[string]float64)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, lp := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
				}
				sort.Strings(ls)
				key += "{" + strings.Join(ls, ",") + "}"
			}
			out[key] = v
		}
	}
	return out
}

func hostileFamily(sample string) string {
	name, _, _ := strings.Cut(sample, "{")
	return name
}

// hostileCheckMetrics waits until every sample the row names has moved by its delta
// (failing at once if one overshoots), then checks that no other sample of the
// hostileStrict families moved.
func hostileCheckMetrics(t *testing.T, d *arinatest.Daemon, before map[string]float64, want []hostileSample) {
	t.Helper()
	expected := make(map[string]float64)
	for _, s := range want {
		expected[s.sample] += s.delta
	}
	var after map[string]float64
	testutil.WaitFor(t, hostileTimeout, func() error {
		after = hostileSnapshot(t, d)
		var short []string
		for sample, delta := range expected {
			got := after[sample] - before[sample]
			if got > delta {
				t.Fatalf("%s moved by %v, want %v", sample, got, delta)
			}
			if got < delta {
				short = append(short, fmt.Sprintf("%s moved by %v, want %v", sample, got, delta))
			}
		}
		if len(short) > 0 {
			return errors.New(strings.Join(short, "; "))
		}
		return nil
	})
	keys := slices.Collect(maps.Keys(after))
	keys = append(keys, slices.Collect(maps.Keys(before))...)
	for _, k := range keys {
		if !slices.Contains(hostileStrict, hostileFamily(k)) {
			continue
		}
		if _, named := expected[k]; named {
			continue
		}
		if after[k] != before[k] {
			t.Errorf("%s moved by %v; the row counts no such thing", k, after[k]-before[k])
		}
	}
}

// TestHostile_Catalogue runs every row of the hostile-input catalogue.
func TestHostile_Catalogue(t *testing.T) {
	e := hostileSetup(t)
	for _, row := range hostileRows() {
		t.Run(row.name, func(t *testing.T) {
			if row.bug != "" {
				t.Skip("BUG: " + row.bug)
			}
			d := row.daemon(t, e)
			before := hostileSnapshot(t, d)
			row.run(t, e, d)
			hostileCheckMetrics(t, d, before, row.metrics)
		})
	}
	// The shared clients were never dropped by any row.
	if !e.v3.IsConnectionOpen() {
		t.Error("the shared MQTT 3.1.1 client was disconnected")
	}
	select {
	case <-e.v5.Done():
		t.Error("the shared MQTT 5 client was disconnected")
	default:
	}
}

func hostileSetup(t *testing.T) *hostileEnv {
	t.Helper()
	e := &hostileEnv{}
	e.open = hostileStart(t, func(o *daemon.Options) {
		o.MQTT.Limits.MaxPacketSize = hostileMaxPacket
		o.MQTT.MaxBatchPayload = hostileMaxBatchPayload
		o.MQTT.WSListen = "127.0.0.1:0"
		o.MQTT.Limits.AllowedOrigins = []string{hostileAllowedOrigin}
	})
	e.wsAddr = e.open.Broker.Addrs()["ws"]
	e.v5 = ingestMustConnectV5(t, e.open.MQTTAddr, "hostile-v5")
	e.v3 = MustConnect311(t, e.open.MQTTAddr, "hostile-v3")

	e.certs = testutil.MakeCerts(t)
	dir := t.TempDir()
	var hashes []any
	for _, pw := range []string{"pw-sensor", "pw-viewer"} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, string(h))
	}
	usersPath := filepath.Join(dir, "users.yaml")
	tokensPath := filepath.Join(dir, "tokens.yaml")
	tokens := fmt.Sprintf("tokens:\n  - {name: board, sha256: %s, scopes: [read]}\n  - {name: line-app, sha256: %s, scopes: [write]}\n  - {name: ops, sha256: %s, scopes: [write, read]}\n",
		auth.HashToken(hostileTokRead), auth.HashToken(hostileTokWrite), auth.HashToken(hostileTokBoth))
	for path, content := range map[string]string{usersPath: fmt.Sprintf(hostileUsers, hashes...), tokensPath: tokens} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	users, err := auth.OpenUsersFile(usersPath)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := auth.OpenTokensFile(tokensPath)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := tlsconf.Load(tlsconf.Files{CertFile: e.certs.ServerCert, KeyFile: e.certs.ServerKey, ClientCAFile: e.certs.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	e.auth = hostileStart(t, func(o *daemon.Options) {
		o.MQTT.Users = users
		o.MQTT.TLS = srvTLS.Config()
		o.MQTT.TLSListen = "127.0.0.1:0"
		o.HTTP.Tokens = toks
	})
	e.tlsAddr = e.auth.Broker.Addrs()["tls"]
	return e
}

// --- MQTT helpers ---

// hostilePub5 publishes with an MQTT 5 client and returns the reason code of the
// PUBACK or PUBREC (0 for QoS 0).
func hostilePub5(t *testing.T, c *paho.Client, topic string, qos byte, payload []byte) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: payload})
	if pr == nil {
		t.Fatalf("MQTT 5 publish to %.80q: no answer: %v", topic, err)
	}
	return pr.ReasonCode
}

// hostilePub311 publishes with an MQTT 3.1.1 client and fails unless the flow
// completes (QoS 1: the PUBACK arrives) and the connection stays open.
func hostilePub311(t *testing.T, c pahomqtt.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(hostileTimeout) || tok.Error() != nil {
		t.Fatalf("MQTT 3.1.1 publish to %.80q: no PUBACK: %v", topic, tok.Error())
	}
	if !c.IsConnectionOpen() {
		t.Fatalf("MQTT 3.1.1 client disconnected after publishing to %.80q", topic)
	}
}

// hostileNotApplied fails unless content has never held a reaction.
func hostileNotApplied(t *testing.T, d *arinatest.Daemon, content string) {
	t.Helper()
	if got, status := hostileCounts(t, d, content); status != http.StatusNotFound {
		t.Fatalf("counts of %.80q = %v (status %d): a rejected event was applied", content, got, status)
	}
}

// hostileCounts reads the seed count route (with the ops token, which the daemon
// without tokens ignores).
func hostileCounts(t *testing.T, d *arinatest.Daemon, content string) (map[string]int64, int) {
	t.Helper()
	status, _, body := hostileHTTP(t, http.MethodGet, d.HTTPURL+"/api/v1/reaction/reaction_counts/"+pathEscape(content), hostileTokBoth, "", "")
	if status != http.StatusOK {
		return nil, status
	}
	var out struct {
		ReactionCount map[string]int64 `json:"reaction_count"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decoding counts %s: %v", body, err)
	}
	return out.ReactionCount, status
}

func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// badEvent publishes payload to topic from the shared MQTT 5 client (QoS 1: wants
// reason 0x99) and the shared MQTT 3.1.1 client (QoS 1: wants a PUBACK and the
// connection kept), then checks that content got nothing.
func badEvent(content, topic string, payload []byte) func(*testing.T, *hostileEnv, *arinatest.Daemon) {
	return func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
		if rc := hostilePub5(t, e.v5, topic, 1, payload); rc != 0x99 {
			t.Errorf("MQTT 5 PUBACK reason %#x, want 0x99 (payload format invalid)", rc)
		}
		hostilePub311(t, e.v3, topic, 1, payload)
		hostileNotApplied(t, d, content)
	}
}

// notIngested publishes a valid-looking event to a topic that is not an ingest topic:
// acknowledged with success by both clients, and no event.
func notIngested(content, topic string) func(*testing.T, *hostileEnv, *arinatest.Daemon) {
	return func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
		if rc := hostilePub5(t, e.v5, topic, 1, []byte("add sam")); rc != 0 {
			t.Errorf("MQTT 5 PUBACK reason %#x, want 0x00", rc)
		}
		hostilePub311(t, e.v3, topic, 1, []byte("add sam"))
		hostileNotApplied(t, d, content)
	}
}

// hostileDial5 connects an MQTT 5 client over conn and returns it with its CONNACK, or
// the error of a refused connection; a connected client is disconnected at cleanup.
func hostileDial5(t *testing.T, conn net.Conn, cp *paho.Connect) (*paho.Client, *paho.Connack, error) {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: pkt5.NewThreadSafeConn(conn)})
	cp.KeepAlive = 30
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		_ = conn.Close()
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		select {
		case <-c.Done():
		case <-time.After(hostileTimeout):
			t.Errorf("MQTT 5 client %s did not shut down", cp.ClientID)
		}
	})
	return c, ca, nil
}

func hostileTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, hostileTimeout)
	if err != nil {
		t.Fatalf("dialing %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// hostileConnack5 connects an MQTT 5 client to addr and returns the CONNACK reason
// code; a refused connection is the expected case.
func hostileConnack5(t *testing.T, addr string, cp *paho.Connect) byte {
	t.Helper()
	_, ca, err := hostileDial5(t, hostileTCP(t, addr), cp)
	if ca == nil {
		t.Fatalf("MQTT 5 connect as %q: no CONNACK: %v", cp.Username, err)
	}
	return ca.ReasonCode
}

// hostileConnack311 connects an MQTT 3.1.1 paho client and returns the CONNACK return
// code; opts may adjust the options (broker, credentials, will).
func hostileConnack311(t *testing.T, broker, clientID string, opts func(*pahomqtt.ClientOptions)) (pahomqtt.Client, byte) {
	t.Helper()
	o := pahomqtt.NewClientOptions().AddBroker(broker).SetClientID(clientID).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(hostileTimeout)
	if opts != nil {
		opts(o)
	}
	c := pahomqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(hostileTimeout) {
		t.Fatalf("MQTT 3.1.1 connect %s: timed out", clientID)
	}
	rc := tok.(*pahomqtt.ConnectToken).ReturnCode()
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, rc
}

func login(user, password string) func(*pahomqtt.ClientOptions) {
	return func(o *pahomqtt.ClientOptions) { o.SetUsername(user).SetPassword(password) }
}

func login5(clientID, user, password string) *paho.Connect {
	cp := &paho.Connect{ClientID: clientID, CleanStart: true}
	if user != "" {
		cp.Username, cp.UsernameFlag = user, true
	}
	if password != "" {
		cp.Password, cp.PasswordFlag = []byte(password), true
	}
	return cp
}

// hostileRawConnect311 writes an MQTT 3.1.1 CONNECT (pkt311) on conn.
func hostileRawConnect311(t *testing.T, conn net.Conn, clientID string, adjust func(*pkt311.ConnectPacket)) {
	t.Helper()
	cp := pkt311.NewControlPacket(pkt311.Connect).(*pkt311.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive, cp.ClientIdentifier = "MQTT", 4, true, 30, clientID
	if adjust != nil {
		adjust(cp)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(hostileTimeout))
	if err := cp.Write(conn); err != nil {
		t.Fatalf("writing CONNECT: %v", err)
	}
}

// hostileReadConnack311 reads the CONNACK of a raw 3.1.1 connection and returns its
// return code.
func hostileReadConnack311(t *testing.T, conn net.Conn) byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
	p, err := pkt311.ReadPacket(conn)
	if err != nil {
		t.Fatalf("reading CONNACK: %v", err)
	}
	ca, ok := p.(*pkt311.ConnackPacket)
	if !ok {
		t.Fatalf("got %v, want CONNACK", p)
	}
	return ca.ReturnCode
}

// hostileRawPublish returns an MQTT 3.1.1 (or, with v5, MQTT 5 without properties)
// PUBLISH of QoS 1 with the topic as raw bytes, which no client library would send.
func hostileRawPublish(topic []byte, id uint16, payload []byte, v5 bool) []byte {
	body := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, byte(id>>8), byte(id))
	if v5 {
		body = append(body, 0) // no properties
	}
	body = append(body, payload...)
	return append(append([]byte{0x32}, ingestRemainingLength(len(body))...), body...)
}

// hostileWantClosed reads until the server closes the connection and returns what it
// sent before; it fails if the connection stays open for hostileTimeout.
func hostileWantClosed(t *testing.T, conn net.Conn) []byte {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open (read %x)", got)
	}
	return got
}

// hostileMosquitto runs mosquitto_pub or mosquitto_sub against addr and returns its
// combined output and exit error.
func hostileMosquitto(t *testing.T, program, addr string, args ...string) (string, error) {
	t.Helper()
	bin := testutil.NeedProgram(t, program, "mosquitto-clients")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*hostileTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out), err
}

// hostileTLSDial opens a TLS connection to addr trusting the test CA, presenting cert
// (none when certFile is ""), and, if force, presenting it even when the server's
// acceptable CAs do not list its issuer.
func hostileTLSDial(t *testing.T, e *hostileEnv, addr, certFile, keyFile string, force bool) (*tls.Conn, error) {
	t.Helper()
	pem, err := os.ReadFile(e.certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
		if force {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
	}
	d := &net.Dialer{Timeout: hostileTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, nil
}

// hostileTLSRefused dials addr over TLS with a client certificate, sends an MQTT 3.1.1
// CONNECT and fails unless the handshake is refused with an error containing want and
// no CONNACK arrives.
func hostileTLSRefused(t *testing.T, e *hostileEnv, addr, certFile, keyFile string, force bool, want string) {
	t.Helper()
	conn, err := hostileTLSDial(t, e, addr, certFile, keyFile, force)
	if err == nil {
		// TLS 1.3: the server checks the client's certificate after the client's
		// handshake is done; the refusal arrives as an alert on the first read.
		_, _ = conn.Write([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30, 0, 0}) // CONNECT; a write error shows on the read
		_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
		var b [4]byte
		var n int
		n, err = conn.Read(b[:])
		if err == nil {
			t.Fatalf("the server answered %x over a refused TLS handshake", b[:n])
		}
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("TLS error %q, want one containing %q", err, want)
	}
}

// --- HTTP helpers ---

// hostileHTTP makes one request with bearer token tok ("" for none) and returns the
// status, headers and body.
func hostileHTTP(t *testing.T, method, u, tok, contentType, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		t.Fatalf("building %s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header, b
}

// hostileWantError fails unless the answer is status with the JSON error code (and
// field, if not "").
func hostileWantError(t *testing.T, status int, hdr http.Header, body []byte, wantStatus int, wantCode, wantField string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || status != wantStatus || e.Error.Code != wantCode ||
		e.Error.Field != wantField || e.Error.Message == "" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("answer %d %q %s, want %d with JSON error code %q field %q", status, hdr.Get("Content-Type"), body, wantStatus, wantCode, wantField)
	}
}

// seed is the seed's JSON event with fields overridden by raw JSON fragments.
func seed(content string, fields ...string) string {
	m := []string{`"type":"reaction"`, `"action":"add"`, fmt.Sprintf(`"content_id":%q`, content), `"user_id":"sam"`, `"reaction_type":"fire"`}
	for _, f := range fields {
		key, _, _ := strings.Cut(f, ":")
		replaced := false
		for i, old := range m {
			if k, _, _ := strings.Cut(old, ":"); k == key {
				m[i], replaced = f, true
			}
		}
		if !replaced {
			m = append(m, f)
		}
	}
	return "{" + strings.Join(m, ",") + "}"
}

// badPost posts body to the single-event route with the ops token and wants status
// and code; content must stay untouched.
func badPost(content, contentType, body string, status int, code, field string) func(*testing.T, *hostileEnv, *arinatest.Daemon) {
	return func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
		s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", hostileTokBoth, contentType, body)
		hostileWantError(t, s, h, b, status, code, field)
		hostileNotApplied(t, d, content)
	}
}

const (
	routeReaction  = "POST /api/v1/reaction"
	routeReactions = "POST /api/v1/reactions"
)

// httpBad is the metrics of a rejected single-event POST.
func httpBad(reason string, status int) []hostileSample {
	return []hostileSample{rejected("http", reason, 1), httpRequests(routeReaction, status, 1)}
}

// --- the catalogue ---

func hostileRows() []hostileRow {
	long := strings.Repeat("x", 257)
	const twoClients = "MQTT 5 QoS 1: PUBACK 0x99 (payload format invalid); MQTT 3.1.1 QoS 1: PUBACK, event dropped, connection kept"
	rows := []hostileRow{
		// --- MQTT: the event on an ingest topic ---
		{name: "MQTTMalformedJSON", proto: "MQTT", input: "`kitchen/C/fire` payload `{\"user_id\":\"sam\",\"action\":`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_json", 2)}, daemon: openDaemon,
			run: badEvent("MQTTMalformedJSON", "kitchen/MQTTMalformedJSON/fire", []byte(`{"user_id":"sam","action":`))},
		{name: "MQTTTrailingData", proto: "MQTT", input: "payload `{\"user_id\":\"sam\",\"action\":\"add\"} x` (data after the object)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_json", 2)}, daemon: openDaemon,
			run: badEvent("MQTTTrailingData", "kitchen/MQTTTrailingData/fire", []byte(`{"user_id":"sam","action":"add"} x`))},
		{name: "MQTTWrongType", proto: "MQTT", input: "payload `{\"user_id\":42,\"action\":\"add\"}` (number for a string)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_field", 2)}, daemon: openDaemon,
			run: badEvent("MQTTWrongType", "kitchen/MQTTWrongType/fire", []byte(`{"user_id":42,"action":"add"}`))},
		{name: "MQTTMissingUser", proto: "MQTT", input: "payload `{\"action\":\"add\"}`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "missing_field", 2)}, daemon: openDaemon,
			run: badEvent("MQTTMissingUser", "kitchen/MQTTMissingUser/fire", []byte(`{"action":"add"}`))},
		{name: "MQTTEmptyPayload", proto: "MQTT", input: "empty payload on `kitchen/C/fire`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_payload", 2)}, daemon: openDaemon,
			run: badEvent("MQTTEmptyPayload", "kitchen/MQTTEmptyPayload/fire", nil)},
		{name: "MQTTNoVerb", proto: "MQTT", input: "text payload `sam` (no verb, not JSON)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_payload", 2)}, daemon: openDaemon,
			run: badEvent("MQTTNoVerb", "kitchen/MQTTNoVerb/fire", []byte("sam"))},
		{name: "MQTTUnknownAction", proto: "MQTT", input: "text `like sam`; JSON `\"action\":\"like\"`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_action", 3)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badEvent("MQTTUnknownAction", "kitchen/MQTTUnknownAction/fire", []byte("like sam"))(t, e, d)
				if rc := hostilePub5(t, e.v5, "kitchen/MQTTUnknownAction/fire", 1, []byte(`{"user_id":"sam","action":"like"}`)); rc != 0x99 {
					t.Errorf("MQTT 5 PUBACK reason %#x, want 0x99", rc)
				}
			}},
		{name: "MQTTNegativeTS", proto: "MQTT", input: "payload `{\"user_id\":\"sam\",\"action\":\"add\",\"ts\":-5}`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_field", 2)}, daemon: openDaemon,
			run: badEvent("MQTTNegativeTS", "kitchen/MQTTNegativeTS/fire", []byte(`{"user_id":"sam","action":"add","ts":-5}`))},
		{name: "MQTTHugeUserID", proto: "MQTT", input: "`add ` + a 257-byte user id",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 2)}, daemon: openDaemon,
			run: badEvent("MQTTHugeUserID", "kitchen/MQTTHugeUserID/fire", []byte("add "+long))},
		{name: "MQTTHugeContentID", proto: "MQTT", input: "topic `kitchen/<257 bytes>/fire` (reaction type: over 64 bytes)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 3)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badEvent(long, "kitchen/"+long+"/fire", []byte("add sam"))(t, e, d)
				if rc := hostilePub5(t, e.v5, "kitchen/MQTTHugeContentID/"+strings.Repeat("r", 65), 1, []byte("add sam")); rc != 0x99 {
					t.Errorf("MQTT 5 PUBACK reason %#x for a 65-byte reaction type, want 0x99", rc)
				}
				hostileNotApplied(t, d, "MQTTHugeContentID")
			}},
		{name: "MQTTControlCharacter", proto: "MQTT", input: "`add sa\\x07m`; JSON `\"user_id\":\"sa\\u0000m\"`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 3)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badEvent("MQTTControlCharacter", "kitchen/MQTTControlCharacter/fire", []byte("add sa\x07m"))(t, e, d)
				if rc := hostilePub5(t, e.v5, "kitchen/MQTTControlCharacter/fire", 1, []byte(`{"user_id":"sa\u0000m","action":"add"}`)); rc != 0x99 {
					t.Errorf("MQTT 5 PUBACK reason %#x, want 0x99", rc)
				}
			}},
		{name: "MQTTInvalidUTF8JSON", proto: "MQTT", input: "JSON payload with byte 0xFF in the user id",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_json", 2)}, daemon: openDaemon,
			run: badEvent("MQTTInvalidUTF8JSON", "kitchen/MQTTInvalidUTF8JSON/fire", []byte("{\"user_id\":\"s\xffm\",\"action\":\"add\"}"))},
		{name: "MQTTInvalidUTF8Text", proto: "MQTT", input: "text payload `add s\\xC3m` (truncated UTF-8 sequence)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 2)}, daemon: openDaemon,
			run: badEvent("MQTTInvalidUTF8Text", "kitchen/MQTTInvalidUTF8Text/fire", []byte("add s\xc3m"))},
		{name: "MQTTLoneSurrogate", proto: "MQTT", input: "JSON `\"user_id\":\"\\ud800\"` (decodes to U+FFFD)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 2)}, daemon: openDaemon,
			run: badEvent("MQTTLoneSurrogate", "kitchen/MQTTLoneSurrogate/fire", []byte(`{"user_id":"\ud800","action":"add"}`))},
		{name: "MQTTWildcardInUserID", proto: "MQTT", input: "`add sam/#`; `add a+b`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "invalid_id", 3)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badEvent("MQTTWildcardInUserID", "kitchen/MQTTWildcardInUserID/fire", []byte("add sam/#"))(t, e, d)
				if rc := hostilePub5(t, e.v5, "kitchen/MQTTWildcardInUserID/fire", 1, []byte("add a+b")); rc != 0x99 {
					t.Errorf("MQTT 5 PUBACK reason %#x, want 0x99", rc)
				}
			}},
		{name: "MQTTIDMismatch", proto: "MQTT", input: "seed JSON on `kitchen/C/fire` naming `content_id` `Other` (or another `reaction_type`)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "id_mismatch", 3)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badEvent("MQTTIDMismatch", "kitchen/MQTTIDMismatch/fire", []byte(seed("Other")))(t, e, d)
				if rc := hostilePub5(t, e.v5, "kitchen/MQTTIDMismatch/fire", 1, []byte(seed("MQTTIDMismatch", `"reaction_type":"yum"`))); rc != 0x99 {
					t.Errorf("MQTT 5 PUBACK reason %#x, want 0x99", rc)
				}
				hostileNotApplied(t, d, "Other")
			}},
		{name: "MQTTOversizedPayload", proto: "MQTT", input: "5000-byte payload on an ingest topic (over `mqtt.max_event_payload`, 4096)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "payload_too_large", 2)}, daemon: openDaemon,
			run: badEvent("MQTTOversizedPayload", "kitchen/MQTTOversizedPayload/fire", []byte("add "+strings.Repeat("x", 4996)))},
		{name: "MQTTMosquittoMalformed", proto: "MQTT", input: "`mosquitto_pub -V mqttv5 -q 1 -m garbage` and the same with `-V mqttv311`",
			sees:    "mosquitto_pub v5 prints `Payload format invalid` (0x99); v3.1.1 exits 0 (acked, dropped)",
			metrics: []hostileSample{rejected("mqtt", "bad_payload", 2)}, daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				topic := "kitchen/MQTTMosquittoMalformed/fire"
				out, _ := hostileMosquitto(t, "mosquitto_pub", d.MQTTAddr, "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "garbage")
				if !strings.Contains(out, "Payload format invalid") {
					t.Errorf("mosquitto_pub -V mqttv5 printed %q, want the 0x99 reason", out)
				}
				if out, err := hostileMosquitto(t, "mosquitto_pub", d.MQTTAddr, "-V", "mqttv311", "-q", "1", "-t", topic, "-m", "garbage"); err != nil {
					t.Errorf("mosquitto_pub -V mqttv311: %v\n%s", err, out)
				}
				hostileNotApplied(t, d, "MQTTMosquittoMalformed")
			}},
		{name: "MQTTMalformedWill", proto: "MQTT", input: "a will `garbage` on `kitchen/C/active`, fired by dropping the TCP connection",
			sees:    "nothing (the client is gone); the will is not ingested",
			metrics: []hostileSample{rejected("mqtt", "bad_payload", 1)}, daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				hostileRawConnect311(t, conn, "hostile-will", func(cp *pkt311.ConnectPacket) {
					cp.WillFlag, cp.WillTopic, cp.WillMessage = true, "kitchen/MQTTMalformedWill/active", []byte("garbage")
				})
				if rc := hostileReadConnack311(t, conn); rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				_ = conn.Close() // no DISCONNECT: the will fires
				hostileNotApplied(t, d, "MQTTMalformedWill")
			}},

		// --- MQTT: topics ---
		{name: "MQTTTopicTooFewLevels", proto: "MQTT", input: "`add sam` to `kitchen/C` (two levels)",
			sees:    "PUBACK 0x00 (MQTT 5 and 3.1.1): relayed as a plain message, not an event",
			metrics: []hostileSample{received("mqtt", 0), mqttReceived(2)}, daemon: openDaemon,
			run: notIngested("MQTTTopicTooFewLevels", "kitchen/MQTTTopicTooFewLevels")},
		{name: "MQTTTopicTooManyLevels", proto: "MQTT", input: "`add sam` to `kitchen/C/fire/extra`",
			sees:    "PUBACK 0x00 (MQTT 5 and 3.1.1): relayed as a plain message, not an event",
			metrics: []hostileSample{received("mqtt", 0), mqttReceived(2)}, daemon: openDaemon,
			run: notIngested("MQTTTopicTooManyLevels", "kitchen/MQTTTopicTooManyLevels/fire/extra")},
		{name: "MQTTWildcardInTopic", proto: "MQTT", input: "PUBLISH QoS 1 to `kitchen/St+ew/fire` (raw packet; clients refuse to send it)",
			sees:    "MQTT 5: DISCONNECT 0x82 (protocol error), connection closed; 3.1.1: connection closed; no PUBACK",
			metrics: []hostileSample{received("mqtt", 0)}, note: "a protocol error, logged by the broker", daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				hostileDialRaw5(t, conn, "hostile-wild5")
				_, _ = conn.Write(hostileRawPublish([]byte("kitchen/St+ew/fire"), 1, []byte("add sam"), true))
				_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
				cp, err := pkt5.ReadPacket(conn)
				if err != nil || cp.Type != pkt5.DISCONNECT || cp.Content.(*pkt5.Disconnect).ReasonCode != 0x82 {
					t.Fatalf("MQTT 5: got %v (%v), want DISCONNECT 0x82", cp, err)
				}
				hostileWantClosed(t, conn)

				conn = hostileTCP(t, d.MQTTAddr)
				hostileRawConnect311(t, conn, "hostile-wild3", nil)
				if rc := hostileReadConnack311(t, conn); rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				_, _ = conn.Write(hostileRawPublish([]byte("kitchen/St#ew/fire"), 1, []byte("add sam"), false))
				if got := hostileWantClosed(t, conn); len(got) != 0 {
					t.Fatalf("MQTT 3.1.1: the server sent %x before closing, want nothing", got)
				}
				hostileNotApplied(t, d, "St+ew")
			}},
		{name: "MQTTInvalidUTF8Topic", proto: "MQTT", input: "PUBLISH to a topic with byte 0xFF, or NUL (raw packet)",
			sees:    "connection closed without an answer (malformed packet), MQTT 5 and 3.1.1",
			metrics: []hostileSample{received("mqtt", 0)}, note: "logged by the broker", daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				for _, topic := range []string{"kitchen/S\xfftew/fire", "kitchen/S\x00tew/fire"} {
					conn := hostileTCP(t, d.MQTTAddr)
					hostileDialRaw5(t, conn, "hostile-utf5")
					_, _ = conn.Write(hostileRawPublish([]byte(topic), 1, []byte("add sam"), true))
					if got := hostileWantClosed(t, conn); len(got) != 0 {
						t.Fatalf("MQTT 5 topic %q: the server sent %x before closing", topic, got)
					}
					conn = hostileTCP(t, d.MQTTAddr)
					hostileRawConnect311(t, conn, "hostile-utf3", nil)
					if rc := hostileReadConnack311(t, conn); rc != 0 {
						t.Fatalf("CONNACK %d", rc)
					}
					_, _ = conn.Write(hostileRawPublish([]byte(topic), 1, []byte("add sam"), false))
					if got := hostileWantClosed(t, conn); len(got) != 0 {
						t.Fatalf("MQTT 3.1.1 topic %q: the server sent %x before closing", topic, got)
					}
				}
			}},
		{name: "MQTTTruncatedSubscribe", proto: "MQTT", input: "MQTT 5 SUBSCRIBE whose last filter lacks its options byte (raw packet)",
			sees:    "connection closed without an answer (malformed packet); every other client carries on",
			metrics: []hostileSample{received("mqtt", 0)}, note: "stock mochi v2.7.9 panicked here and the process exited; fixed in Arina's patched copy", daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				hostileDialRaw5(t, conn, "hostile-trunc-sub")
				filter := "kitchen/#"
				body := append([]byte{0, 9, 0, byte(len(filter) >> 8), byte(len(filter))}, filter...) // id 9, no properties, no options
				_, _ = conn.Write(append(append([]byte{0x82}, ingestRemainingLength(len(body))...), body...))
				if got := hostileWantClosed(t, conn); len(got) != 0 {
					t.Fatalf("the server sent %x before closing, want nothing", got)
				}
				if err := packetFuzzConnack(d.MQTTAddr, "hostile-trunc-after"); err != nil {
					t.Fatalf("the daemon stopped serving: %v", err)
				}
			}},
		{name: "MQTTPublishToSys", proto: "MQTT", input: "PUBLISH QoS 1 to `$SYS/arina/x` (MQTT 5, then 3.1.1)",
			sees:    "MQTT 5: PUBACK 0x87 (not authorized); 3.1.1: PUBACK, message dropped; never relayed, connection kept",
			metrics: []hostileSample{received("mqtt", 0), sysRefused(2)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				got := make(chan string, 8)
				sub := MustConnect311(t, d.MQTTAddr, "hostile-sys-sub")
				defer sub.Disconnect(0)
				tok := sub.SubscribeMultiple(map[string]byte{"$SYS/arina/#": 1, "plain/#": 1}, func(_ pahomqtt.Client, m pahomqtt.Message) {
					got <- m.Topic()
				})
				if !tok.WaitTimeout(hostileTimeout) || tok.Error() != nil {
					t.Fatalf("subscribing: %v", tok.Error())
				}
				conn := hostileTCP(t, d.MQTTAddr)
				hostileDialRaw5(t, conn, "hostile-sys")
				_ = conn.SetDeadline(time.Now().Add(hostileTimeout))
				_, _ = conn.Write(hostileRawPublish([]byte("$SYS/arina/x"), 1, []byte("add sam"), true))
				_, _ = conn.Write(hostileRawPublish([]byte("plain/x"), 2, []byte("x"), true))
				_, _ = pkt5.NewControlPacket(pkt5.PINGREQ).WriteTo(conn)
				// The broker handles a connection's packets in order.
				for _, want := range []struct {
					typ    byte
					id     uint16
					reason byte
				}{{pkt5.PUBACK, 1, 0x87}, {pkt5.PUBACK, 2, 0}, {pkt5.PINGRESP, 0, 0}} {
					cp, err := pkt5.ReadPacket(conn)
					if err != nil || cp.Type != want.typ || cp.PacketID() != want.id ||
						(want.typ == pkt5.PUBACK && cp.Content.(*pkt5.Puback).ReasonCode != want.reason) {
						t.Fatalf("got %v (%v), want packet type %d id %d reason %#x", cp, err, want.typ, want.id, want.reason)
					}
				}
				MustPublish(t, e.v3, "$SYS/arina/y", 1, "add sam") // acknowledged
				MustPublish(t, e.v3, "plain/y", 1, "y")
				// Each connection's messages are relayed in order: had a $SYS message been
				// relayed, it would come before the plain one that followed it.
				for _, want := range []string{"plain/x", "plain/y"} {
					select {
					case topic := <-got:
						if topic != want {
							t.Fatalf("subscriber got %s, want %s (a $SYS publish was relayed)", topic, want)
						}
					case <-time.After(hostileTimeout):
						t.Fatalf("subscriber got nothing, want %s", want)
					}
				}
			}},
		{name: "MQTTPublishBeforeConnect", proto: "MQTT", input: "a PUBLISH as the first packet of a connection",
			sees: "connection closed, no CONNACK", metrics: []hostileSample{received("mqtt", 0)}, daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				_, _ = conn.Write(hostileRawPublish([]byte("kitchen/MQTTPublishBeforeConnect/fire"), 1, []byte("add sam"), false))
				if got := hostileWantClosed(t, conn); len(got) != 0 {
					t.Fatalf("the server sent %x before closing", got)
				}
				hostileNotApplied(t, d, "MQTTPublishBeforeConnect")
			}},

		// --- MQTT: batches ---
		{name: "MQTTBatchMalformed", proto: "MQTT", input: "`kitchen/batch` payload `[{\"action\":`",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "bad_json", 2)}, daemon: openDaemon,
			run: badEvent("MQTTBatchMalformed", "kitchen/batch", []byte(`[{"action":`))},
		{name: "MQTTBatchInvalidItems", proto: "MQTT", input: "`kitchen/batch` array: one valid item, one with `user_id` `a/b`, one with action `like`",
			sees:    "PUBACK 0x00 once the valid item is applied (MQTT 5 and 3.1.1); the invalid items are dropped",
			metrics: []hostileSample{rejected("mqtt", "invalid_id", 2), rejected("mqtt", "invalid_action", 2), applied("mqtt", 2)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				items := `[{"action":"add","content_id":"MQTTBatchInvalidItems","reaction_type":"busy","user_id":"s1"},` +
					`{"action":"add","content_id":"MQTTBatchInvalidItems","reaction_type":"busy","user_id":"a/b"},` +
					`{"action":"like","content_id":"MQTTBatchInvalidItems","reaction_type":"busy","user_id":"s2"}]`
				if rc := hostilePub5(t, e.v5, "kitchen/batch", 1, []byte(items)); rc != 0 {
					t.Errorf("MQTT 5 PUBACK reason %#x, want 0x00", rc)
				}
				hostilePub311(t, e.v3, "kitchen/batch", 1, []byte(items))
				if got, _ := hostileCounts(t, d, "MQTTBatchInvalidItems"); !maps.Equal(got, map[string]int64{"busy": 1}) {
					t.Fatalf("counts %v, want only the valid item: busy 1", got)
				}
			}},
		{name: "MQTTBatchTooManyItems", proto: "MQTT", input: "`kitchen/batch` NDJSON of 1001 lines",
			sees: twoClients + "; no item applied", metrics: []hostileSample{rejected("mqtt", "too_many_items", 2)}, daemon: openDaemon,
			run: badEvent("MQTTBatchTooManyItems", "kitchen/batch", bytes.Repeat([]byte("{}\n"), 1001))},
		{name: "MQTTBatchOversized", proto: "MQTT", input: "9000-byte `kitchen/batch` payload (over `mqtt.max_batch_payload`, here 8192)",
			sees: twoClients, metrics: []hostileSample{rejected("mqtt", "payload_too_large", 2)}, daemon: openDaemon,
			run: badEvent("MQTTBatchOversized", "kitchen/batch", []byte(`[`+strings.Repeat(" ", 8998)+`]`))},

		// --- MQTT: limits ---
		{name: "MQTTOversizedPacket", proto: "MQTT", input: "a 20000-byte PUBLISH (over `mqtt.max_packet_size`, here 16384), any topic",
			sees:    "connection closed at the fixed header, no answer (MQTT 5 and 3.1.1)",
			metrics: []hostileSample{limitHit("packet_size", 2)}, daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				big := []byte(strings.Repeat("x", 20000))
				conn := hostileTCP(t, d.MQTTAddr)
				hostileDialRaw5(t, conn, "hostile-big5")
				_, _ = conn.Write(hostileRawPublish([]byte("big/x"), 1, big, true))
				if got := hostileWantClosed(t, conn); len(got) != 0 {
					t.Fatalf("MQTT 5: the server sent %x before closing", got)
				}
				lost := make(chan error, 1)
				c, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-big3", func(o *pahomqtt.ClientOptions) {
					o.SetConnectionLostHandler(func(_ pahomqtt.Client, err error) { lost <- err })
				})
				if rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				c.Publish("big/x", 1, false, big)
				select {
				case <-lost:
				case <-time.After(hostileTimeout):
					t.Fatal("MQTT 3.1.1: the connection stayed open")
				}
			}},
		{name: "MQTTMaxPacketSizeAnnounced", proto: "MQTT", input: "an MQTT 5 client reads `Maximum Packet Size` in the CONNACK",
			sees:   "CONNACK carries Maximum Packet Size = `mqtt.max_packet_size`, so the client knows its limit before it sends",
			daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				c, ca, err := hostileDial5(t, hostileTCP(t, d.MQTTAddr), &paho.Connect{ClientID: "hostile-mps", CleanStart: true})
				if err != nil {
					t.Fatal(err)
				}
				_ = c
				if ca.Properties == nil || ca.Properties.MaximumPacketSize == nil || *ca.Properties.MaximumPacketSize != hostileMaxPacket {
					t.Fatalf("CONNACK properties %+v: Maximum Packet Size is not %d", ca.Properties, hostileMaxPacket)
				}
			}},
		{name: "MQTTClientIDTooLong", proto: "MQTT", input: "a 257-byte client id (over `mqtt.max_client_id_len`, 256)",
			sees:    "MQTT 5: CONNACK 0x85 (client identifier not valid); 3.1.1: CONNACK 2 (identifier rejected)",
			metrics: []hostileSample{limitHit("client_id_length", 2)}, daemon: openDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				id := strings.Repeat("c", 257)
				if rc := hostileConnack5(t, d.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true}); rc != 0x85 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x85", rc)
				}
				if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, id, nil); rc != 2 {
					t.Errorf("MQTT 3.1.1 CONNACK %d, want 2", rc)
				}
			}},
		{name: "MQTTTooManyConnections", proto: "MQTT", input: "a third client while two are connected (`mqtt.max_connections: 2`)",
			sees:    "MQTT 5: CONNACK 0x89 (server busy); 3.1.1: CONNACK 3 (server unavailable); the connected clients keep working",
			metrics: []hostileSample{limitHit("connections", 2), applied("mqtt", 1)},
			daemon:  ownDaemon(func(o *daemon.Options) { o.MQTT.Limits.MaxConnections = 2 }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				MustConnect311(t, d.MQTTAddr, "hostile-conn-1")
				first := ingestMustConnectV5(t, d.MQTTAddr, "hostile-conn-2")
				if rc := hostileConnack5(t, d.MQTTAddr, &paho.Connect{ClientID: "hostile-conn-3", CleanStart: true}); rc != 0x89 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x89", rc)
				}
				if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-conn-4", nil); rc != 3 {
					t.Errorf("MQTT 3.1.1 CONNACK %d, want 3", rc)
				}
				if rc := hostilePub5(t, first, "kitchen/MQTTTooManyConnections/fire", 1, []byte("add sam")); rc != 0 {
					t.Errorf("a connected client's publish got %#x", rc)
				}
			}},
		{name: "MQTTPublishFlood", proto: "MQTT", input: "3 QoS 1 publishes at once per client with `mqtt.publish_rate: 0.2`, `publish_burst: 2`",
			sees:    "the first two apply; the third: MQTT 5 PUBACK 0x96 (message rate too high), 3.1.1 PUBACK and dropped; the connection is kept",
			metrics: []hostileSample{limitHit("publish_rate", 2), applied("mqtt", 4)},
			daemon:  ownDaemon(func(o *daemon.Options) { o.MQTT.Limits.PublishRate, o.MQTT.Limits.PublishBurst = 0.2, 2 }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				v5 := ingestMustConnectV5(t, d.MQTTAddr, "hostile-flood5")
				v3 := MustConnect311(t, d.MQTTAddr, "hostile-flood3")
				for i, want := range []byte{0, 0, 0x96} {
					if rc := hostilePub5(t, v5, "kitchen/MQTTPublishFlood/fire", 1, fmt.Appendf(nil, "add v5-%d", i)); rc != want {
						t.Errorf("MQTT 5 publish %d: reason %#x, want %#x", i, rc, want)
					}
					hostilePub311(t, v3, "kitchen/MQTTPublishFlood/fire", 1, fmt.Appendf(nil, "add v3-%d", i))
				}
				if got, _ := hostileCounts(t, d, "MQTTPublishFlood"); got["fire"] != 4 {
					t.Fatalf("fire = %d, want 4 (the two over the rate dropped)", got["fire"])
				}
			}},
		{name: "MQTTPublishFloodQoS2", proto: "MQTT", input: "an MQTT 5 QoS 2 publish over `mqtt.publish_rate`",
			sees:    "PUBREC 0x96 (message rate too high), which ends the QoS 2 exchange; nothing applied",
			metrics: []hostileSample{limitHit("publish_rate", 1)},
			daemon:  ownDaemon(func(o *daemon.Options) { o.MQTT.Limits.PublishRate, o.MQTT.Limits.PublishBurst = 0.2, 1 }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				hostileDialRaw5(t, conn, "hostile-flood-qos2")
				for id := uint16(1); id <= 2; id++ {
					p := &pkt5.Publish{Topic: "flood/x", QoS: 2, PacketID: id, Payload: []byte("x"), Properties: &pkt5.Properties{}}
					if _, err := p.WriteTo(conn); err != nil {
						t.Fatal(err)
					}
					_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
					cp, err := pkt5.ReadPacket(conn)
					if err != nil {
						t.Fatalf("publish %d: %v", id, err)
					}
					if cp.Type != pkt5.PUBREC {
						t.Fatalf("QoS 2 publish %d answered with %s, want PUBREC", id, cp)
					}
					if id == 2 && cp.Content.(*pkt5.Pubrec).ReasonCode != 0x96 {
						t.Fatalf("QoS 2 publish over the rate: PUBREC %s, want 0x96", cp)
					}
					if id == 1 {
						(&pkt5.Pubrel{PacketID: 1, Properties: &pkt5.Properties{}}).WriteTo(conn)
						if cp, err := pkt5.ReadPacket(conn); err != nil || cp.Type != pkt5.PUBCOMP {
							t.Fatalf("PUBCOMP: %v %v", cp, err)
						}
					}
				}
			}},
		{name: "MQTTPreConnectIdle", proto: "MQTT", input: "a TCP connection that never sends its CONNECT (or sends half of one)",
			sees:   "closed after 10 s without a CONNECT (connect timeout), and at shutdown at once: it never holds `arina` up; not counted against `mqtt.max_connections` until it is a client",
			daemon: ownDaemon(),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, d.MQTTAddr)
				_, _ = conn.Write([]byte{0x10, 0xff, 0x7f}) // a CONNECT header announcing 16383 bytes, none sent
				// The listener accepts connections one after the other: once a later client
				// has its CONNACK, the half-open one is being served.
				MustConnect311(t, d.MQTTAddr, "hostile-after-idle").Disconnect(100)
				testutil.WaitFor(t, hostileTimeout, func() error {
					if n := hostileSnapshot(t, d)["arina_mqtt_clients_connected"]; n != 0 {
						return fmt.Errorf("%v clients connected", n)
					}
					return nil
				})
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				if err := d.Close(ctx); err != nil {
					t.Fatalf("closing the daemon with a half-open connection: %v", err)
				}
			}},

		// --- MQTT: authentication and ACLs ---
		{name: "MQTTAnonymous", proto: "MQTT", input: "CONNECT without a username, users file configured",
			sees:    "MQTT 5: CONNACK 0x87 (not authorized); 3.1.1: CONNACK 5",
			metrics: []hostileSample{authFailed("anonymous", 2)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				if rc := hostileConnack5(t, d.MQTTAddr, login5("hostile-anon5", "", "")); rc != 0x87 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x87", rc)
				}
				if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-anon3", nil); rc != 5 {
					t.Errorf("MQTT 3.1.1 CONNACK %d, want 5", rc)
				}
			}},
		{name: "MQTTWrongPassword", proto: "MQTT", input: "user `sensor` with a wrong password; an unknown user",
			sees:    "MQTT 5: CONNACK 0x86 (bad user name or password); 3.1.1: CONNACK 4",
			metrics: []hostileSample{authFailed("bad_credentials", 4)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				for _, u := range [][2]string{{"sensor", "pw-viewer"}, {"nobody", "pw-nobody"}} {
					if rc := hostileConnack5(t, d.MQTTAddr, login5("hostile-pw5", u[0], u[1])); rc != 0x86 {
						t.Errorf("MQTT 5 CONNACK for %s %#x, want 0x86", u[0], rc)
					}
					if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-pw3", login(u[0], u[1])); rc != 4 {
						t.Errorf("MQTT 3.1.1 CONNACK for %s %d, want 4", u[0], rc)
					}
				}
			}},
		{name: "MQTTMosquittoWrongPassword", proto: "MQTT", input: "`mosquitto_pub -V mqttv5 -u sensor -P wrong`",
			sees:    "mosquitto_pub exits 1: `Connection error: Connection Refused: bad user name or password`",
			metrics: []hostileSample{authFailed("bad_credentials", 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				out, err := hostileMosquitto(t, "mosquitto_pub", d.MQTTAddr, "-V", "mqttv5", "-u", "sensor", "-P", "wrong",
					"-q", "1", "-t", "kitchen/MQTTMosquittoWrongPassword/active", "-m", "add sam")
				if err == nil || !strings.Contains(strings.ToLower(out), "bad user name or password") {
					t.Fatalf("mosquitto_pub: %v %q, want refused for bad user name or password", err, out)
				}
				hostileNotApplied(t, d, "MQTTMosquittoWrongPassword")
			}},
		{name: "MQTTCertOnlyUserPassword", proto: "MQTT", input: "user `badge-reader-1` (`certificate_only`) logging in with a password over plain TCP",
			sees: "MQTT 5: CONNACK 0x86; 3.1.1: CONNACK 4", metrics: []hostileSample{authFailed("bad_credentials", 2)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				if rc := hostileConnack5(t, d.MQTTAddr, login5("hostile-certpw5", "badge-reader-1", "guess")); rc != 0x86 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x86", rc)
				}
				if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-certpw3", login("badge-reader-1", "")); rc != 4 {
					t.Errorf("MQTT 3.1.1 CONNACK %d, want 4", rc)
				}
			}},
		{name: "MQTTACLPublish", proto: "MQTT", input: "user `sensor` (may write `kitchen/+/active`) publishes `add sam` to `kitchen/C/fire`: MQTT 5 QoS 1; 3.1.1 QoS 1 and QoS 0",
			sees:    "MQTT 5: PUBACK 0x87 (not authorized); 3.1.1: PUBACK (QoS 1), dropped, connection kept",
			metrics: []hostileSample{aclDenied("write", 3), received("mqtt", 0)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				c5, _, err := hostileDial5(t, hostileTCP(t, d.MQTTAddr), login5("hostile-acl5", "sensor", "pw-sensor"))
				if err != nil {
					t.Fatal(err)
				}
				if rc := hostilePub5(t, c5, "kitchen/MQTTACLPublish/fire", 1, []byte("add sam")); rc != 0x87 {
					t.Errorf("MQTT 5 PUBACK %#x, want 0x87", rc)
				}
				c3, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-acl3", login("sensor", "pw-sensor"))
				if rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				hostilePub311(t, c3, "kitchen/MQTTACLPublish/fire", 1, []byte("add sam"))
				hostilePub311(t, c3, "kitchen/MQTTACLPublish/fire", 0, []byte("add ann"))
				hostileNotApplied(t, d, "MQTTACLPublish")
			}},
		{name: "MQTTACLPublishMosquitto", proto: "MQTT", input: "`mosquitto_pub -V mqttv5 -u sensor -q 1 -t kitchen/C/fire`",
			sees: "mosquitto_pub prints `Publish 1 failed: Not authorized.`", metrics: []hostileSample{aclDenied("write", 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				out, _ := hostileMosquitto(t, "mosquitto_pub", d.MQTTAddr, "-V", "mqttv5", "-u", "sensor", "-P", "pw-sensor",
					"-q", "1", "-t", "kitchen/MQTTACLPublishMosquitto/fire", "-m", "add sam")
				if !strings.Contains(out, "Not authorized") {
					t.Fatalf("mosquitto_pub printed %q, want Not authorized", out)
				}
				hostileNotApplied(t, d, "MQTTACLPublishMosquitto")
			}},
		{name: "MQTTACLBatch", proto: "MQTT", input: "user `sensor` (may write `kitchen/+/active` and `kitchen/batch`) publishes to `kitchen/batch` an item for `(C, active)` and one for `(C, fire)`",
			sees:    "PUBACK 0x00 once the allowed item is applied (MQTT 5 and 3.1.1); the item for a topic the ACL denies is dropped",
			metrics: []hostileSample{rejected("mqtt", "not_authorized", 2), aclDenied("write", 2), applied("mqtt", 2)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				items := `[{"action":"add","content_id":"MQTTACLBatch","reaction_type":"active","user_id":"s1"},` +
					`{"action":"add","content_id":"MQTTACLBatch","reaction_type":"fire","user_id":"s2"}]`
				c5, _, err := hostileDial5(t, hostileTCP(t, d.MQTTAddr), login5("hostile-aclbatch5", "sensor", "pw-sensor"))
				if err != nil {
					t.Fatal(err)
				}
				if rc := hostilePub5(t, c5, "kitchen/batch", 1, []byte(items)); rc != 0 {
					t.Errorf("MQTT 5 PUBACK %#x, want 0x00", rc)
				}
				c3, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-aclbatch3", login("sensor", "pw-sensor"))
				if rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				hostilePub311(t, c3, "kitchen/batch", 1, []byte(items))
				if got, _ := hostileCounts(t, d, "MQTTACLBatch"); !maps.Equal(got, map[string]int64{"active": 1}) {
					t.Fatalf("counts %v, want only the allowed item: active 1", got)
				}
			}},
		{name: "MQTTACLSubscribe", proto: "MQTT", input: "user `viewer` (reads `kitchen/#`) subscribes to `#` and `kitchen/secret/#`",
			sees:    "MQTT 5: SUBACK 0x87 per filter; 3.1.1: SUBACK 0x80; connection kept",
			metrics: []hostileSample{aclDenied("read", 3)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				c5, _, err := hostileDial5(t, hostileTCP(t, d.MQTTAddr), login5("hostile-sub5", "viewer", "pw-viewer"))
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
				defer cancel()
				sa, err := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "#", QoS: 1}, {Topic: "kitchen/secret/#", QoS: 1}, {Topic: "kitchen/open/#", QoS: 1}}})
				if sa == nil || !slices.Equal(sa.Reasons, []byte{0x87, 0x87, 1}) {
					t.Errorf("MQTT 5 SUBACK %+v (%v), want 0x87 0x87 0x01", sa, err)
				}
				c3, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-sub3", login("viewer", "pw-viewer"))
				if rc != 0 {
					t.Fatalf("CONNACK %d", rc)
				}
				tok := c3.Subscribe("#", 1, nil)
				if !tok.WaitTimeout(hostileTimeout) || tok.(*pahomqtt.SubscribeToken).Result()["#"] != 0x80 {
					t.Errorf("MQTT 3.1.1 SUBACK %v, want 0x80", tok.(*pahomqtt.SubscribeToken).Result())
				}
				if !c3.IsConnectionOpen() {
					t.Error("MQTT 3.1.1 client disconnected")
				}
			}},
		{name: "MQTTMosquittoSubDenied", proto: "MQTT", input: "`mosquitto_sub -V mqttv5 -u viewer -t '#'`",
			sees:    "mosquitto_sub prints `All subscription requests were denied.` and exits 1",
			metrics: []hostileSample{aclDenied("read", 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				out, err := hostileMosquitto(t, "mosquitto_sub", d.MQTTAddr, "-V", "mqttv5", "-u", "viewer", "-P", "pw-viewer", "-t", "#", "-W", "5")
				if !strings.Contains(out, "All subscription requests were denied") {
					t.Fatalf("mosquitto_sub: %v %q, want every subscription denied", err, out)
				}
			}},
		{name: "MQTTWillDenied", proto: "MQTT", input: "`sensor` connects with a will on `kitchen/C/fire`, which it may not publish",
			sees: "MQTT 5: CONNACK 0x87; 3.1.1: CONNACK 5", metrics: []hostileSample{authFailed("will_denied", 2)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				cp := login5("hostile-will5", "sensor", "pw-sensor")
				cp.WillMessage = &paho.WillMessage{Topic: "kitchen/MQTTWillDenied/fire", QoS: 1, Payload: []byte("remove sensor")}
				if rc := hostileConnack5(t, d.MQTTAddr, cp); rc != 0x87 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x87", rc)
				}
				if _, rc := hostileConnack311(t, "tcp://"+d.MQTTAddr, "hostile-will3", func(o *pahomqtt.ClientOptions) {
					login("sensor", "pw-sensor")(o)
					o.SetWill("kitchen/MQTTWillDenied/fire", "remove sensor", 1, false)
				}); rc != 5 {
					t.Errorf("MQTT 3.1.1 CONNACK %d, want 5", rc)
				}
			}},
		{name: "MQTTClientIDOfAnotherUser", proto: "MQTT", input: "`sensor` connects with the client id of `viewer`'s live session",
			sees: "MQTT 5: CONNACK 0x87; the session stays `viewer`'s", metrics: []hostileSample{authFailed("client_id_in_use", 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				if _, _, err := hostileDial5(t, hostileTCP(t, d.MQTTAddr), login5("hostile-shared", "viewer", "pw-viewer")); err != nil {
					t.Fatal(err)
				}
				if rc := hostileConnack5(t, d.MQTTAddr, login5("hostile-shared", "sensor", "pw-sensor")); rc != 0x87 {
					t.Errorf("MQTT 5 CONNACK %#x, want 0x87", rc)
				}
			}},

		// --- MQTT: TLS and WebSocket ---
		{name: "MQTTTLSExpiredCert", proto: "MQTT", input: "TLS client certificate of `badge-reader-1` that expired an hour ago",
			sees: "TLS handshake refused: `remote error: tls: expired certificate`; no CONNACK",
			note: "the handshake error is logged by the broker", daemon: authDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				hostileTLSRefused(t, e, e.tlsAddr, e.certs.ExpiredCert, e.certs.ExpiredKey, false, "expired certificate")
			}},
		{name: "MQTTTLSOtherCA", proto: "MQTT", input: "TLS client certificate (CN `badge-reader-1`) signed by another CA, presented anyway",
			sees: "TLS handshake refused: `remote error: tls: unknown certificate authority`; no CONNACK",
			note: "the handshake error is logged by the broker", daemon: authDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				hostileTLSRefused(t, e, e.tlsAddr, e.certs.OtherCAClientCrt, e.certs.OtherCAClientKey, true, "unknown certificate authority")
			}},
		{name: "MQTTTLSCertOtherUsername", proto: "MQTT", input: "valid certificate of `badge-reader-1`, CONNECT with username `sensor` and its password",
			sees:    "MQTT 5: CONNACK 0x86 (the certificate names the user); the same certificate without a username connects",
			metrics: []hostileSample{authFailed("bad_credentials", 1)}, daemon: authDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				conn, err := hostileTLSDial(t, e, e.tlsAddr, e.certs.ClientCert, e.certs.ClientKey, false)
				if err != nil {
					t.Fatal(err)
				}
				if _, ca, _ := hostileDial5(t, conn, login5("hostile-cert-other", "sensor", "pw-sensor")); ca == nil || ca.ReasonCode != 0x86 {
					t.Errorf("CONNACK %+v, want 0x86", ca)
				}
				conn, err = hostileTLSDial(t, e, e.tlsAddr, e.certs.ClientCert, e.certs.ClientKey, false)
				if err != nil {
					t.Fatal(err)
				}
				if _, ca, err := hostileDial5(t, conn, login5("hostile-cert-ok", "", "")); err != nil {
					t.Errorf("the certificate alone: CONNACK %+v, %v", ca, err)
				}
			}},
		{name: "MQTTTLSNoClientCert", proto: "MQTT", input: "TLS without a client certificate, `mqtt.tls.require_client_cert: true`",
			sees: "TLS handshake refused: `remote error: tls: certificate required`; no CONNACK",
			note: "the handshake error is logged by the broker",
			daemon: func(t *testing.T, e *hostileEnv) *arinatest.Daemon {
				s, err := tlsconf.Load(tlsconf.Files{CertFile: e.certs.ServerCert, KeyFile: e.certs.ServerKey, ClientCAFile: e.certs.CAFile, RequireClientCert: true})
				if err != nil {
					t.Fatal(err)
				}
				return hostileStart(t, func(o *daemon.Options) { o.MQTT.TLS, o.MQTT.TLSListen = s.Config(), "127.0.0.1:0" })
			},
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				hostileTLSRefused(t, e, d.Broker.Addrs()["tls"], "", "", false, "certificate required")
			}},
		{name: "MQTTPlainOnTLSPort", proto: "MQTT", input: "a plain-TCP MQTT CONNECT to the MQTT-over-TLS port",
			sees: "connection closed (a TLS alert at most), never a CONNACK",
			note: "the handshake error is logged by the broker", daemon: authDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				conn := hostileTCP(t, e.tlsAddr)
				hostileRawConnect311(t, conn, "hostile-plain", func(cp *pkt311.ConnectPacket) {
					cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, "sensor", true, []byte("pw-sensor")
				})
				if got := hostileWantClosed(t, conn); len(got) > 0 && got[0] == 0x20 {
					t.Fatalf("the TLS port answered a plain CONNECT with a CONNACK: %x", got)
				}
			}},
		{name: "MQTTWebSocketBadOrigin", proto: "MQTT", input: "WebSocket upgrade with `Origin: https://evil.example` (allowed: `https://board.example`)",
			sees:    "HTTP 403 to the upgrade; an allowed origin, or no Origin (not a browser), connects",
			metrics: []hostileSample{limitHit("websocket_origin", 1)}, daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: hostileTimeout}
				c, resp, err := dialer.Dial("ws://"+e.wsAddr+"/mqtt", http.Header{"Origin": {"https://evil.example"}})
				if err == nil {
					c.Close()
					t.Fatal("the upgrade from a disallowed origin succeeded")
				}
				if resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("upgrade answer %v (%v), want 403", resp, err)
				}
				resp.Body.Close()
				for _, origin := range []string{hostileAllowedOrigin, ""} {
					h := http.Header{}
					if origin != "" {
						h.Set("Origin", origin)
					}
					c, resp, err := dialer.Dial("ws://"+e.wsAddr+"/mqtt", h)
					if err != nil {
						t.Fatalf("origin %q: %v", origin, err)
					}
					resp.Body.Close()
					c.Close()
				}
			}},
		{name: "MQTTWebSocketTextFrame", proto: "MQTT", input: "a CONNECT sent in a WebSocket text message",
			sees:   "connection closed, no CONNACK (MQTT over WebSocket is binary only)",
			daemon: openDaemon,
			run: func(t *testing.T, e *hostileEnv, _ *arinatest.Daemon) {
				dialer := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: hostileTimeout}
				c, resp, err := dialer.Dial("ws://"+e.wsAddr+"/mqtt", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				defer c.Close()
				var b bytes.Buffer
				cp := pkt311.NewControlPacket(pkt311.Connect).(*pkt311.ConnectPacket)
				cp.ProtocolName, cp.ProtocolVersion, cp.CleanSession, cp.Keepalive, cp.ClientIdentifier = "MQTT", 4, true, 30, "hostile-text"
				_ = cp.Write(&b)
				if err := c.WriteMessage(websocket.TextMessage, b.Bytes()); err != nil {
					t.Fatal(err)
				}
				_ = c.SetReadDeadline(time.Now().Add(hostileTimeout))
				if typ, msg, err := c.ReadMessage(); err == nil {
					t.Fatalf("the server answered a text message with %d %x", typ, msg)
				} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Fatal("the server kept the connection open")
				}
			}},

		// --- HTTP: the event ---
		{name: "HTTPMalformedJSON", proto: "HTTP", input: "`POST /api/v1/reaction` body `{\"type\":\"reaction\",`",
			sees: "400 `bad_json`", metrics: httpBad("bad_json", 400), daemon: authDaemon,
			run: badPost("HTTPMalformedJSON", "application/json", `{"type":"reaction",`, 400, "bad_json", "")},
		{name: "HTTPTrailingData", proto: "HTTP", input: "a valid event followed by `{}`",
			sees: "400 `bad_json`", metrics: httpBad("bad_json", 400), daemon: authDaemon,
			run: badPost("HTTPTrailingData", "application/json", seed("HTTPTrailingData")+"{}", 400, "bad_json", "")},
		{name: "HTTPEmptyBody", proto: "HTTP", input: "empty body",
			sees: "400 `bad_json`", metrics: httpBad("bad_json", 400), daemon: authDaemon,
			run: badPost("HTTPEmptyBody", "application/json", "", 400, "bad_json", "")},
		{name: "HTTPDeepNesting", proto: "HTTP", input: "`user_id` of 20000 nested `[` (under the body limit)",
			sees: "400 `bad_json` (the decoder's depth limit)", metrics: httpBad("bad_json", 400), daemon: authDaemon,
			run: badPost("HTTPDeepNesting", "application/json", `{"user_id":`+strings.Repeat("[", 20000), 400, "bad_json", "")},
		{name: "HTTPWrongType", proto: "HTTP", input: "`\"user_id\":7`; `\"ts\":1e30`",
			sees: "400 `invalid_field`, `field` names it", metrics: []hostileSample{rejected("http", "invalid_field", 2), httpRequests(routeReaction, 400, 2)},
			daemon: authDaemon,
			run: func(t *testing.T, e *hostileEnv, d *arinatest.Daemon) {
				badPost("HTTPWrongType", "application/json", seed("HTTPWrongType", `"user_id":7`), 400, "invalid_field", "user_id")(t, e, d)
				badPost("HTTPWrongType", "application/json", seed("HTTPWrongType", `"ts":1e30`), 400, "invalid_field", "ts")(t, e, d)
			}},
		{name: "HTTPWrongEventType", proto: "HTTP", input: "`\"type\":\"comment\"`",
			sees: "400 `invalid_field`, field `type`", metrics: httpBad("invalid_field", 400), daemon: authDaemon,
			run: badPost("HTTPWrongEventType", "application/json", seed("HTTPWrongEventType", `"type":"comment"`), 400, "invalid_field", "type")},
		{name: "HTTPMissingField", proto: "HTTP", input: "`\"user_id\":null`",
			sees: "400 `missing_field`, field `user_id`", metrics: httpBad("missing_field", 400), daemon: authDaemon,
			run: badPost("HTTPMissingField", "application/json", seed("HTTPMissingField", `"user_id":null`), 400, "missing_field", "user_id")},
		{name: "HTTPUnknownAction", proto: "HTTP", input: "`\"action\":\"like\"`",
			sees: "400 `invalid_action`, field `action`", metrics: httpBad("invalid_action", 400), daemon: authDaemon,
			run: badPost("HTTPUnknownAction", "application/json", seed("HTTPUnknownAction", `"action":"like"`), 400, "invalid_action", "action")},
		{name: "HTTPNegativeTS", proto: "HTTP", input: "`\"ts\":-1`",
			sees: "400 `invalid_field`, field `ts`", metrics: httpBad("invalid_field", 400), daemon: authDaemon,
			run: badPost("HTTPNegativeTS", "application/json", seed("HTTPNegativeTS", `"ts":-1`), 400, "invalid_field", "ts")},
		{name: "HTTPHugeID", proto: "HTTP", input: "a 257-byte `content_id`",
			sees: "400 `invalid_id`, field `content_id`", metrics: httpBad("invalid_id", 400), daemon: authDaemon,
			run: badPost(long, "application/json", seed(long), 400, "invalid_id", "content_id")},
		{name: "HTTPControlCharacter", proto: "HTTP", input: "`\"user_id\":\"a\\u0007b\"`",
			sees: "400 `invalid_id`, field `user_id`", metrics: httpBad("invalid_id", 400), daemon: authDaemon,
			run: badPost("HTTPControlCharacter", "application/json", seed("HTTPControlCharacter", `"user_id":"a\u0007b"`), 400, "invalid_id", "user_id")},
		{name: "HTTPInvalidUTF8", proto: "HTTP", input: "byte 0xFF inside the `user_id` string",
			sees: "400 `bad_json` (never silently turned into U+FFFD)", metrics: httpBad("bad_json", 400), daemon: authDaemon,
			run: badPost("HTTPInvalidUTF8", "application/json", seed("HTTPInvalidUTF8", "\"user_id\":\"s\xffm\""), 400, "bad_json", "")},
		{name: "HTTPLoneSurrogate", proto: "HTTP", input: "`\"user_id\":\"\\ud800\"`",
			sees: "400 `invalid_id`, field `user_id`", metrics: httpBad("invalid_id", 400), daemon: authDaemon,
			run: badPost("HTTPLoneSurrogate", "application/json", seed("HTTPLoneSurrogate", `"user_id":"\ud800"`), 400, "invalid_id", "user_id")},
		{name: "HTTPWildcardInID", proto: "HTTP", input: "`content_id` `Stew/#`",
			sees: "400 `invalid_id`, field `content_id`", metrics: httpBad("invalid_id", 400), daemon: authDaemon,
			run: badPost("Stew/#", "application/json", seed("Stew/#"), 400, "invalid_id", "content_id")},
		{name: "HTTPWrongMediaType", proto: "HTTP", input: "a valid event as `Content-Type: text/plain`",
			sees: "415 `unsupported_media_type`", metrics: httpBad("unsupported_media_type", 415), daemon: authDaemon,
			run: badPost("HTTPWrongMediaType", "text/plain", seed("HTTPWrongMediaType"), 415, "unsupported_media_type", "")},
		{name: "HTTPOversizedBody", proto: "HTTP", input: "a 70000-byte body (over `http.max_body_bytes`, 65536)",
			sees: "413 `payload_too_large`", metrics: httpBad("payload_too_large", 413), daemon: authDaemon,
			run: badPost("HTTPOversizedBody", "application/json", seed("HTTPOversizedBody", `"pad":"`+strings.Repeat("x", 70000)+`"`), 413, "payload_too_large", "")},

		// --- HTTP: batches ---
		{name: "HTTPBatchInvalidItems", proto: "HTTP", input: "`POST /api/v1/reactions` array: one valid item, one `user_id` `a/b`, one action `like`",
			sees:    "200 with per-item results: `applied`, then `rejected` `invalid_id` and `invalid_action`",
			metrics: []hostileSample{rejected("http", "invalid_id", 1), rejected("http", "invalid_action", 1), applied("http", 1), httpRequests(routeReactions, 200, 1)},
			daemon:  authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				c := "HTTPBatchInvalidItems"
				body := "[" + seed(c) + "," + seed(c, `"user_id":"a/b"`) + "," + seed(c, `"action":"like"`) + "]"
				s, _, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reactions", hostileTokBoth, "application/json", body)
				var got struct {
					Results []struct {
						Status string `json:"status"`
						Error  *struct {
							Code string `json:"code"`
						} `json:"error"`
					} `json:"results"`
					Applied, Rejected int
				}
				if err := json.Unmarshal(b, &got); err != nil || s != http.StatusOK || got.Applied != 1 || got.Rejected != 2 ||
					got.Results[1].Error.Code != "invalid_id" || got.Results[2].Error.Code != "invalid_action" {
					t.Fatalf("answer %d %s", s, b)
				}
				if counts, _ := hostileCounts(t, d, c); !maps.Equal(counts, map[string]int64{"fire": 1}) {
					t.Fatalf("counts %v, want only the valid item", counts)
				}
			}},
		{name: "HTTPBatchTooManyItems", proto: "HTTP", input: "a JSON array of 1001 `{}`",
			sees: "413 `too_many_items`", metrics: []hostileSample{rejected("http", "too_many_items", 1), httpRequests(routeReactions, 413, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reactions", hostileTokBoth, "application/json", "["+strings.Repeat("{},", 1000)+"{}]")
				hostileWantError(t, s, h, b, 413, "too_many_items", "")
			}},
		{name: "HTTPBatchNotArray", proto: "HTTP", input: "a single object instead of an array",
			sees: "400 `bad_json`", metrics: []hostileSample{rejected("http", "bad_json", 1), httpRequests(routeReactions, 400, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reactions", hostileTokBoth, "application/json", seed("HTTPBatchNotArray"))
				hostileWantError(t, s, h, b, 400, "bad_json", "")
				hostileNotApplied(t, d, "HTTPBatchNotArray")
			}},

		// --- HTTP: tokens ---
		{name: "HTTPNoToken", proto: "HTTP", input: "a valid event without `Authorization`",
			sees:    "401 `unauthorized` with `WWW-Authenticate: Bearer realm=\"arina\"`",
			metrics: []hostileSample{httpAuthFailed("missing", 1), httpRequests(routeReaction, 401, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", "", "application/json", seed("HTTPNoToken"))
				hostileWantError(t, s, h, b, 401, "unauthorized", "")
				if h.Get("WWW-Authenticate") != `Bearer realm="arina"` {
					t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
				}
				hostileNotApplied(t, d, "HTTPNoToken")
			}},
		{name: "HTTPInvalidToken", proto: "HTTP", input: "`Authorization: Bearer not-a-token`",
			sees:    "401 `unauthorized`, `WWW-Authenticate` with `error=\"invalid_token\"`",
			metrics: []hostileSample{httpAuthFailed("invalid", 1), httpRequests(routeReaction, 401, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", "not-a-token", "application/json", seed("HTTPInvalidToken"))
				hostileWantError(t, s, h, b, 401, "unauthorized", "")
				if !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
				}
				hostileNotApplied(t, d, "HTTPInvalidToken")
			}},
		{name: "HTTPReadTokenWrites", proto: "HTTP", input: "a valid event with a token that has only the `read` scope",
			sees:    "403 `forbidden`, `WWW-Authenticate` with `error=\"insufficient_scope\"`",
			metrics: []hostileSample{httpAuthFailed("forbidden", 1), httpRequests(routeReaction, 403, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", hostileTokRead, "application/json", seed("HTTPReadTokenWrites"))
				hostileWantError(t, s, h, b, 403, "forbidden", "")
				if !strings.Contains(h.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
					t.Errorf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
				}
				hostileNotApplied(t, d, "HTTPReadTokenWrites")
			}},
		{name: "HTTPWriteTokenReads", proto: "HTTP", input: "`GET /metrics` with a token that has only the `write` scope",
			sees: "403 `forbidden`", metrics: []hostileSample{httpAuthFailed("forbidden", 1), httpRequests("GET /metrics", 403, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodGet, d.HTTPURL+"/metrics", hostileTokWrite, "", "")
				hostileWantError(t, s, h, b, 403, "forbidden", "")
			}},

		// --- HTTP: the connection ---
		{name: "HTTPMethodNotAllowed", proto: "HTTP", input: "`DELETE /api/v1/reaction`",
			sees: "405 `method_not_allowed` with `Allow: POST`", metrics: []hostileSample{httpRequests("/api/v1/reaction", 405, 1)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, h, b := hostileHTTP(t, http.MethodDelete, d.HTTPURL+"/api/v1/reaction", hostileTokBoth, "", "")
				hostileWantError(t, s, h, b, 405, "method_not_allowed", "")
				if h.Get("Allow") != "POST" {
					t.Errorf("Allow %q", h.Get("Allow"))
				}
			}},
		{name: "HTTPBadLimit", proto: "HTTP", input: "`GET /api/v1/contents?limit=0` (also `1001`, `x`)",
			sees: "400 `invalid_field`", metrics: []hostileSample{httpRequests("GET /api/v1/contents", 400, 3)}, daemon: authDaemon,
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				for _, l := range []string{"0", "1001", "x"} {
					s, h, b := hostileHTTP(t, http.MethodGet, d.HTTPURL+"/api/v1/contents?limit="+l, hostileTokBoth, "", "")
					hostileWantError(t, s, h, b, 400, "invalid_field", "")
				}
			}},
		{name: "HTTPOversizedHeader", proto: "HTTP", input: "a 16 KiB header with `http.max_header_bytes: 4096`",
			sees:    "431, plain text `431 Request Header Fields Too Large` (net/http answers before any handler)",
			metrics: []hostileSample{{`arina_http_limit_hits_total{limit="header_size"}`, 1}},
			daemon:  ownDaemon(func(o *daemon.Options) { o.HTTP.MaxHeaderBytes = 4096 }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, strings.TrimPrefix(d.HTTPURL, "http://"))
				fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n\r\n", strings.Repeat("p", 16<<10))
				_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 431 || string(body) != "431 Request Header Fields Too Large" {
					t.Fatalf("answer %d %q", resp.StatusCode, body)
				}
			}},
		{name: "HTTPSlowHeaders", proto: "HTTP", input: "half a request header, then silence (`http.read_header_timeout`, here 200ms)",
			sees:    "connection closed after the timeout with no answer",
			metrics: []hostileSample{{`arina_http_limit_hits_total{limit="slow_client"}`, 1}},
			daemon:  ownDaemon(func(o *daemon.Options) { o.HTTP.ReadHeaderTimeout = 200 * time.Millisecond }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				start := time.Now() // the server's timer starts after this, when it accepts
				conn := hostileTCP(t, strings.TrimPrefix(d.HTTPURL, "http://"))
				fmt.Fprint(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
				if got := hostileWantClosed(t, conn); len(got) != 0 {
					t.Fatalf("the server answered %q", got)
				}
				if took := time.Since(start); took < 200*time.Millisecond {
					t.Fatalf("closed after %v, before the timeout", took)
				}
			}},
		{name: "HTTPSlowBody", proto: "HTTP", input: "headers announcing 100 bytes of body, 10 sent, then silence (`http.read_timeout`, here 300ms)",
			sees: "400 `bad_request` once the read times out", metrics: append(httpBad("bad_request", 400), hostileSample{`arina_http_limit_hits_total{limit="slow_client"}`, 1}),
			daemon: ownDaemon(func(o *daemon.Options) { o.HTTP.ReadTimeout = 300 * time.Millisecond }),
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				conn := hostileTCP(t, strings.TrimPrefix(d.HTTPURL, "http://"))
				fmt.Fprint(conn, "POST /api/v1/reaction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"type\":\"r")
				_ = conn.SetReadDeadline(time.Now().Add(hostileTimeout))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				hostileWantError(t, resp.StatusCode, resp.Header, body, 400, "bad_request", "")
			}},
		{name: "HTTPPlainOnHTTPS", proto: "HTTP", input: "plain HTTP to the HTTPS listener (`http.tls.*` set)",
			sees: "400, plain text `Client sent an HTTP request to an HTTPS server.`", note: "crypto/tls and net/http answer before any handler",
			daemon: func(t *testing.T, e *hostileEnv) *arinatest.Daemon {
				s, err := tlsconf.Load(tlsconf.Files{CertFile: e.certs.ServerCert, KeyFile: e.certs.ServerKey})
				if err != nil {
					t.Fatal(err)
				}
				return hostileStart(t, func(o *daemon.Options) { o.HTTP.TLS = s.Config() })
			},
			run: func(t *testing.T, _ *hostileEnv, d *arinatest.Daemon) {
				s, _, b := hostileHTTP(t, http.MethodGet, d.HTTPURL+"/healthz", "", "", "")
				if s != http.StatusBadRequest || !strings.Contains(string(b), "Client sent an HTTP request to an HTTPS server") {
					t.Fatalf("answer %d %q", s, b)
				}
			}},
	}
	return rows
}

// hostileDialRaw5 sends an MQTT 5 CONNECT on conn and fails unless the CONNACK is a
// success.
func hostileDialRaw5(t *testing.T, conn net.Conn, clientID string) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(hostileTimeout))
	cc := &pkt5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, KeepAlive: 30, CleanStart: true, ClientID: clientID, Properties: &pkt5.Properties{}}
	if _, err := (&pkt5.ControlPacket{FixedHeader: pkt5.FixedHeader{Type: pkt5.CONNECT}, Content: cc}).WriteTo(conn); err != nil {
		t.Fatalf("writing CONNECT: %v", err)
	}
	cp, err := pkt5.ReadPacket(conn)
	if err != nil || cp.Type != pkt5.CONNACK || cp.Content.(*pkt5.Connack).ReasonCode != 0 {
		t.Fatalf("CONNACK: %v %v", cp, err)
	}
	_ = conn.SetDeadline(time.Time{})
}

// --- the doc ---

const (
	hostileDocPath  = "../docs/SECURITY.md"
	hostileDocBegin = "<!-- catalogue: generated from test/hostile_e2e_test.go; do not edit by hand -->"
	hostileDocEnd   = "<!-- end of catalogue -->"
)

// hostileTable renders the catalogue as the doc's Markdown table.
func hostileTable() string {
	var b strings.Builder
	b.WriteString("| # | input | protocol | what the client sees | what is counted | test |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for i, r := range hostileRows() {
		var counted []string
		for _, m := range r.metrics {
			counted = append(counted, fmt.Sprintf("`%s` +%v", m.sample, m.delta))
		}
		c := strings.Join(counted, "<br>")
		if c == "" {
			c = "none"
		}
		if r.note != "" {
			c += " (" + r.note + ")"
		}
		sees := r.sees
		test := "`TestHostile_Catalogue/" + r.name + "`"
		if r.bug != "" {
			test += " (skipped: known bug)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, cell(r.input), r.proto, cell(sees), cell(c), test)
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// TestHostile_CatalogueMatchesDoc fails when the catalogue table in docs/SECURITY.md is
// not exactly the one rendered from hostileRows, so that every row of the doc is a
// subtest of TestHostile_Catalogue and says what that subtest asserts.
func TestHostile_CatalogueMatchesDoc(t *testing.T) {
	doc, err := os.ReadFile(hostileDocPath)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), hostileDocBegin+"\n")
	table, after, ok2 := strings.Cut(rest, hostileDocEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no catalogue between %q and %q", hostileDocPath, hostileDocBegin, hostileDocEnd)
	}
	want := hostileTable()
	if *hostileUpdateDoc {
		if err := os.WriteFile(hostileDocPath, []byte(before+hostileDocBegin+"\n"+want+hostileDocEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Compare row by row, by test name, for a readable failure.
	names := func(tbl string) []string {
		var out []string
		for line := range strings.Lines(tbl) {
			if i := strings.Index(line, "`TestHostile_Catalogue/"); i >= 0 {
				name, _, _ := strings.Cut(line[i+len("`TestHostile_Catalogue/"):], "`")
				out = append(out, name)
			}
		}
		return out
	}
	docNames, testNames := names(table), names(want)
	for _, n := range docNames {
		if !slices.Contains(testNames, n) {
			t.Errorf("the doc lists TestHostile_Catalogue/%s, which is no subtest", n)
		}
	}
	for _, n := range testNames {
		if !slices.Contains(docNames, n) {
			t.Errorf("subtest TestHostile_Catalogue/%s is not in the doc", n)
		}
	}
	if table != want {
		wl, dl := strings.Split(want, "\n"), strings.Split(table, "\n")
		for i := range max(len(wl), len(dl)) {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(dl) {
				g = dl[i]
			}
			if w != g {
				t.Errorf("catalogue line %d differs:\n doc:  %s\n test: %s", i+1, g, w)
				break
			}
		}
		t.Errorf("the catalogue in %s is stale; regenerate it with: go test ./test/ -run TestHostile_CatalogueMatchesDoc -update-security-doc", hostileDocPath)
	}
	if n := len(testNames); n < 30 {
		t.Errorf("the catalogue has %d rows, want at least 30", n)
	}
	var mqtt, h int
	for _, r := range hostileRows() {
		if r.proto == "MQTT" {
			mqtt++
		} else {
			h++
		}
	}
	t.Logf("%d rows: %d MQTT, %d HTTP", len(testNames), mqtt, h)
}
