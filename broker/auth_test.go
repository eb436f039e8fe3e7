package broker_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// These tests start the whole daemon with a users file and drive it with real paho
// clients: eclipse/paho.mqtt.golang for MQTT 3.1.1, eclipse/paho.golang for MQTT 5.

const authTimeout = 10 * time.Second

// authUsers is the users file of the tests; %s are bcrypt hashes of "pw-<username>".
const authUsers = `users:
  - username: sensor
    password_hash: "%[1]s"
    acl:
      - {topic: "kitchen/+/active", access: write}
      - {topic: "devices/%%u/#", access: readwrite}
      - {topic: "clients/%%c/#", access: readwrite}
      - {topic: "arina/counts/#", access: read}
  - username: viewer
    password_hash: "%[2]s"
    acl:
      - {topic: "kitchen/#", access: read}
      - {topic: "kitchen/secret/#", access: deny}
      - {topic: "arina/counts/#", access: read}
  - username: admin
    password_hash: "%[3]s"
    acl:
      - {topic: "#", access: readwrite}
`

// authHashes are the bcrypt hashes (minimum cost, for speed) of the users' passwords.
var authHashes = func() []any {
	var out []any
	for _, u := range []string{"sensor", "viewer", "admin"} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		out = append(out, string(h))
	}
	return out
}()

// authDaemon is a daemon with a users file the test may rewrite and reload.
type authDaemon struct {
	*arinatest.Daemon
	users *auth.UsersFile
	path  string
}

// authStart writes the users file (authUsers unless given), starts a daemon with it and
// count topics under arina/counts, and makes sure every client is gone before the
// daemon's Close (mochi v2.7.9 can deadlock when a client leaves during Close) and no
// goroutine is left after it.
func authStart(t *testing.T, usersYAML ...string) *authDaemon {
	t.Helper()
	content := fmt.Sprintf(authUsers, authHashes...)
	if len(usersYAML) > 0 {
		content = usersYAML[0]
	}
	// Registered first, so it runs last: after the clients and the daemon are gone.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	path := filepath.Join(t.TempDir(), "users.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := auth.OpenUsersFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.MQTT.Users = users
		o.MQTT.CountsPrefix = "arina/counts"
		o.MQTT.CountsInterval = 10 * time.Millisecond
	})
	t.Cleanup(func() {
		testutil.WaitFor(t, authTimeout, func() error {
			if n := authMetric(t, d, "arina_mqtt_clients_connected", ""); n != 0 {
				return fmt.Errorf("%v MQTT clients still connected", n)
			}
			return nil
		})
	})
	return &authDaemon{Daemon: d, users: users, path: path}
}

// rewrite replaces the users file and reloads it.
func (d *authDaemon) rewrite(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(d.path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.users.Reload(); err != nil {
		t.Fatalf("reloading users: %v", err)
	}
}

// authMetric reads a counter or gauge from the daemon's registry; label is "" or
// "name=value".
func authMetric(tb testing.TB, d *arinatest.Daemon, name, label string) float64 {
	tb.Helper()
	mfs, err := d.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName()+"="+lp.GetValue() == label {
					match = true
				}
			}
			if !match {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	tb.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

// authWantMetric fails the test unless the metric has the value want.
func authWantMetric(tb testing.TB, d *arinatest.Daemon, name, label string, want float64) {
	tb.Helper()
	if got := authMetric(tb, d, name, label); got != want {
		tb.Fatalf("%s{%s} = %v, want %v", name, label, got, want)
	}
}

// authCounts returns the counts of content (nil for a content never seen).
func authCounts(tb testing.TB, d *authDaemon, content string) map[string]int64 {
	tb.Helper()
	got, status := arinatest.Counts(tb, d.HTTPURL, content)
	if status != 200 && status != 404 {
		tb.Fatalf("counts of %s: status %d", content, status)
	}
	return got
}

// --- MQTT 5 ---

type authClient5 struct {
	*paho.Client
	msgs chan *paho.Publish
}

// authDial5 connects an MQTT 5 client and returns it with its CONNACK, or the error
// of a refused connection. A connected client is disconnected at cleanup.
func authDial5(t *testing.T, addr string, cp *paho.Connect) (*authClient5, *paho.Connack, error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, authTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c := &authClient5{msgs: make(chan *paho.Publish, 64)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			select {
			case c.msgs <- pr.Packet:
			default:
			}
			return true, nil
		}},
	})
	cp.KeepAlive = 30
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if err != nil {
		return nil, ca, err
	}
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		<-c.Done()
	})
	return c, ca, nil
}

// authLogin5 is the connect of a user whose password is "pw-<username>".
func authLogin5(username, clientID string) *paho.Connect {
	return &paho.Connect{ClientID: clientID, CleanStart: true, Username: username, UsernameFlag: true,
		Password: []byte("pw-" + username), PasswordFlag: true}
}

// authMustDial5 connects or fails the test.
func authMustDial5(t *testing.T, addr string, cp *paho.Connect) *authClient5 {
	t.Helper()
	c, ca, err := authDial5(t, addr, cp)
	if err != nil {
		t.Fatalf("connecting %s as %q: %v (CONNACK %+v)", cp.ClientID, cp.Username, err, ca)
	}
	return c
}

// publish publishes and returns the reason code of the PUBACK/PUBREC (0 for QoS 0).
func (c *authClient5) publish(t *testing.T, topic string, qos byte, payload string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	if pr == nil {
		t.Fatalf("publishing to %s: %v", topic, err)
	}
	return pr.ReasonCode
}

// subscribe returns the SUBACK reason code of one filter.
func (c *authClient5) subscribe(t *testing.T, filter string) byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
	if sa == nil {
		t.Fatalf("subscribing to %s: %v", filter, err)
	}
	return sa.Reasons[0]
}

// next returns the next message received, failing the test after authTimeout.
func (c *authClient5) next(t *testing.T) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(authTimeout):
		t.Fatal("no message received")
		return nil
	}
}

// --- MQTT 3.1.1 ---

// authDial311 connects a 3.1.1 client and returns it with the CONNACK return code.
func authDial311(t *testing.T, addr, clientID, username, password string, opts func(*pahomqtt.ClientOptions)) (pahomqtt.Client, byte, error) {
	t.Helper()
	o := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(authTimeout)
	if username != "" {
		o.SetUsername(username).SetPassword(password)
	}
	if opts != nil {
		opts(o)
	}
	c := pahomqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(authTimeout) {
		t.Fatalf("connecting %s: timed out", clientID)
	}
	rc := tok.(*pahomqtt.ConnectToken).ReturnCode()
	if tok.Error() != nil {
		return nil, rc, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, rc, nil
}

// authPublish311 publishes and waits until the flow completes (PUBACK, PUBCOMP).
func authPublish311(t *testing.T, c pahomqtt.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(authTimeout) || tok.Error() != nil {
		t.Fatalf("publishing to %s (QoS %d): %v", topic, qos, tok.Error())
	}
}

// --- tests ---

func TestAuth_Connect(t *testing.T) {
	d := authStart(t)
	will := func(topic string) func(*pahomqtt.ClientOptions) {
		return func(o *pahomqtt.ClientOptions) { o.SetWill(topic, "remove sensor", 1, false) }
	}
	tests := []struct {
		name, user, password string
		will                 string // will topic, "" for none
		v311, v5             byte   // CONNACK codes
		reason               string // label of arina_mqtt_auth_failures_total, "" if accepted
	}{
		{"Anonymous", "", "", "", 5, 0x87, "anonymous"},
		{"WrongPassword", "sensor", "pw-viewer", "", 4, 0x86, "bad_credentials"},
		{"EmptyPassword", "sensor", "", "", 4, 0x86, "bad_credentials"},
		{"UnknownUser", "nobody", "pw-nobody", "", 4, 0x86, "bad_credentials"},
		{"Good", "sensor", "pw-sensor", "", 0, 0, ""},
		{"WillAllowed", "sensor", "pw-sensor", "kitchen/stove/active", 0, 0, ""},
		{"WillDenied", "sensor", "pw-sensor", "kitchen/stove/fire", 5, 0x87, "will_denied"},
		{"WillNoWrite", "viewer", "pw-viewer", "kitchen/secret/x", 5, 0x87, "will_denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			label := "reason=" + tt.reason
			before := 0.0
			if tt.reason != "" {
				before = authMetric(t, d.Daemon, "arina_mqtt_auth_failures_total", label)
			}

			var opts func(*pahomqtt.ClientOptions)
			if tt.will != "" {
				opts = will(tt.will)
			}
			_, rc, err := authDial311(t, d.MQTTAddr, "c311-"+tt.name, tt.user, tt.password, opts)
			if rc != tt.v311 || (err == nil) != (tt.v311 == 0) {
				t.Errorf("MQTT 3.1.1: CONNACK return code %d (%v), want %d", rc, err, tt.v311)
			}

			cp := &paho.Connect{ClientID: "c5-" + tt.name, CleanStart: true}
			if tt.user != "" {
				cp.Username, cp.UsernameFlag = tt.user, true
				// The password flag is set for "" too: a zero-length password is a
				// password, checked like any other (mochi patch 17).
				cp.Password, cp.PasswordFlag = []byte(tt.password), true
			}
			if tt.will != "" {
				cp.WillMessage = &paho.WillMessage{Topic: tt.will, QoS: 1, Payload: []byte("remove sensor")}
			}
			_, ca, err := authDial5(t, d.MQTTAddr, cp)
			if ca == nil || ca.ReasonCode != tt.v5 || (err == nil) != (tt.v5 == 0) {
				t.Errorf("MQTT 5: CONNACK %+v (%v), want reason %#x", ca, err, tt.v5)
			}

			if tt.reason != "" {
				authWantMetric(t, d.Daemon, "arina_mqtt_auth_failures_total", label, before+2)
			}
		})
	}
}

// TestAuth_EmptyPassword: with a users file, a zero-length password (password flag
// set) is checked like any other: it admits a user whose password is "", and no other;
// a zero-length username is anonymous. mochi refused every such CONNECT as malformed
// (0x82) before any check (mochi patch 17).
func TestAuth_EmptyPassword(t *testing.T) {
	blank, err := bcrypt.GenerateFromPassword(nil, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := authStart(t, fmt.Sprintf(`users:
  - username: blank
    password_hash: "%s"
    acl:
      - {topic: "kitchen/+/active", access: write}
  - username: sensor
    password_hash: "%s"
    acl:
      - {topic: "kitchen/+/active", access: write}
`, blank, authHashes[0]))
	for _, tt := range []struct {
		name, user string
		v5         byte
		reason     string // label of arina_mqtt_auth_failures_total, "" if accepted
	}{
		{"UserWithEmptyPassword", "blank", 0, ""},
		{"UserWithOtherPassword", "sensor", 0x86, "bad_credentials"},
		{"EmptyUsername", "", 0x87, "anonymous"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			label := "reason=" + tt.reason
			before := 0.0
			if tt.reason != "" {
				before = authMetric(t, d.Daemon, "arina_mqtt_auth_failures_total", label)
			}
			_, ca, err := authDial5(t, d.MQTTAddr, &paho.Connect{ClientID: "c5-" + tt.name, CleanStart: true,
				Username: tt.user, UsernameFlag: true, Password: []byte{}, PasswordFlag: true})
			if ca == nil || ca.ReasonCode != tt.v5 || (err == nil) != (tt.v5 == 0) {
				t.Fatalf("CONNACK %+v (%v), want reason %#x", ca, err, tt.v5)
			}
			if tt.reason != "" {
				authWantMetric(t, d.Daemon, "arina_mqtt_auth_failures_total", label, before+1)
			}
		})
	}
}

// TestAuth_ClientIDOfAnotherUser: a client id whose session belongs to another user is
// refused, so that user's subscriptions and queued messages stay theirs; the same
// user may take the session over as usual.
func TestAuth_ClientIDOfAnotherUser(t *testing.T) {
	d := authStart(t)
	first := authLogin5("viewer", "shared-id")
	first.CleanStart = false
	authMustDial5(t, d.MQTTAddr, first)

	_, ca, err := authDial5(t, d.MQTTAddr, authLogin5("sensor", "shared-id"))
	if err == nil || ca == nil || ca.ReasonCode != 0x87 {
		t.Fatalf("another user took over the session: CONNACK %+v, %v", ca, err)
	}
	authWantMetric(t, d.Daemon, "arina_mqtt_auth_failures_total", "reason=client_id_in_use", 1)

	again := authLogin5("viewer", "shared-id")
	again.CleanStart = false
	authMustDial5(t, d.MQTTAddr, again)
}

// TestAuth_PublishMQTT5: a publish no rule allows gets reason 0x87 and never reaches
// the store or subscribers; allowed ones do, and Arina's own relay and count-topic
// publisher are not held to any ACL.
func TestAuth_PublishMQTT5(t *testing.T) {
	d := authStart(t)
	viewer := authMustDial5(t, d.MQTTAddr, authLogin5("viewer", "v5-viewer"))
	if rc := viewer.subscribe(t, "kitchen/#"); rc != 1 {
		t.Fatalf("viewer SUBACK kitchen/# = %#x", rc)
	}
	if rc := viewer.subscribe(t, "arina/counts/Stew"); rc != 1 {
		t.Fatalf("viewer SUBACK arina/counts/Stew = %#x", rc)
	}
	sensor := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "v5-sensor"))

	for _, qos := range []byte{1, 2} {
		if rc := sensor.publish(t, "kitchen/Stew/fire", qos, "add sam"); rc != 0x87 {
			t.Fatalf("denied QoS %d publish: reason %#x, want 0x87", qos, rc)
		}
	}
	_ = sensor.publish(t, "kitchen/Stew/fire", 0, "add ann")
	if rc := sensor.publish(t, "kitchen/Soup/active", 2, "add sam"); rc != 0 {
		t.Fatalf("allowed QoS 2 publish: reason %#x", rc)
	}
	if rc := sensor.publish(t, "kitchen/Stew/active", 1, "add sam"); rc != 0 {
		t.Fatalf("allowed publish: reason %#x", rc)
	}
	// Publishes are handled in order: the QoS 0 one is dealt with too.
	if got, want := authCounts(t, d, "Soup"), map[string]int64{"active": 1}; !maps.Equal(got, want) {
		t.Fatalf("Soup counts = %v, want %v", got, want)
	}
	if got, want := authCounts(t, d, "Stew"), map[string]int64{"active": 1}; !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v: a denied publish was applied", got, want)
	}
	authWantMetric(t, d.Daemon, "arina_mqtt_acl_denied_total", "access=write", 3)

	// The viewer gets the allowed message (relayed by Arina's inline client) and the
	// count topic (published by it too), and nothing that was denied.
	got := map[string]string{}
	for len(got) < 3 {
		m := viewer.next(t)
		got[m.Topic] = string(m.Payload)
	}
	if got["kitchen/Stew/active"] != "add sam" || got["kitchen/Soup/active"] != "add sam" ||
		!strings.Contains(got["arina/counts/Stew"], `"active":1`) {
		t.Fatalf("viewer received %q", got)
	}
	select {
	case m := <-viewer.msgs:
		t.Fatalf("viewer received %s %q", m.Topic, m.Payload)
	default:
	}
}

// TestAuth_PublishMQTT311: 3.1.1 has no negative ack; a denied publish is acknowledged
// (the client is not disconnected), never applied, and counted.
func TestAuth_PublishMQTT311(t *testing.T) {
	d := authStart(t)
	c, _, err := authDial311(t, d.MQTTAddr, "v3-sensor", "sensor", "pw-sensor", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, qos := range []byte{0, 1, 2} {
		authPublish311(t, c, "kitchen/Stew/fire", qos, qos == 1, fmt.Sprintf("add u%d", qos))
	}
	authPublish311(t, c, "kitchen/Stew/active", 1, false, "add sam")
	authPublish311(t, c, "kitchen/Stew/active", 2, false, "add ann")
	if !c.IsConnectionOpen() {
		t.Fatal("the client was disconnected")
	}
	if got, want := authCounts(t, d, "Stew"), map[string]int64{"active": 2}; !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v: a denied publish was applied", got, want)
	}
	authWantMetric(t, d.Daemon, "arina_mqtt_acl_denied_total", "access=write", 3)

	// The denied retained publish was not retained: a reader of everything subscribing
	// now gets no retained message under kitchen/. mochi queues retained messages
	// while handling the SUBSCRIBE, so they would come before the echo of a later publish.
	admin := authMustDial5(t, d.MQTTAddr, authLogin5("admin", "v3-admin"))
	for _, f := range []string{"kitchen/#", "sync/admin"} {
		if rc := admin.subscribe(t, f); rc != 1 {
			t.Fatalf("admin SUBACK %s = %#x", f, rc)
		}
	}
	_ = admin.publish(t, "sync/admin", 0, "sync")
	late := false
	for m := admin.next(t); m.Topic != "sync/admin"; m = admin.next(t) {
		// The allowed QoS 2 "add ann" is relayed by its client's acker after the PUBREC,
		// so it may still be on its way once the PUBCOMP is in: the admin, arriving
		// right then, may get it live, once. Nothing else may come before the echo.
		if m.Topic == "kitchen/Stew/active" && string(m.Payload) == "add ann" && !m.Retain && !late {
			late = true
			continue
		}
		t.Fatalf("admin received %s %q (retain %v): a denied publish was retained", m.Topic, m.Payload, m.Retain)
	}
}

func TestAuth_Subscribe(t *testing.T) {
	d := authStart(t)
	viewer := authMustDial5(t, d.MQTTAddr, authLogin5("viewer", "sub-viewer"))
	for filter, want := range map[string]byte{
		"kitchen/#":               1,
		"kitchen/+/active":        1,
		"$share/g/kitchen/Soup/#": 1,
		"#":                       0x87,
		"+/Stew/active":           0x87,
		"kitchen/secret/#":        0x87,
		"$share/g/#":              0x87,
		"$SYS/#":                  0x87,
		"arina/counts/#":          1,
		"devices/viewer/x":        0x87,
	} {
		if got := viewer.subscribe(t, filter); got != want {
			t.Errorf("SUBACK %s = %#x, want %#x", filter, got, want)
		}
	}
	c, _, err := authDial311(t, d.MQTTAddr, "sub-311", "viewer", "pw-viewer", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Subscribe("#", 1, nil)
	if !tok.WaitTimeout(authTimeout) {
		t.Fatal("SUBSCRIBE timed out")
	}
	if got := tok.(*pahomqtt.SubscribeToken).Result()["#"]; got != 0x80 {
		t.Errorf("3.1.1 SUBACK # = %#x, want 0x80", got)
	}
	if deniedReads := authMetric(t, d.Daemon, "arina_mqtt_acl_denied_total", "access=read"); deniedReads != 7 {
		t.Errorf("read denials counted: %v, want 7", deniedReads)
	}

	// A subscription a deny rule only overlaps is allowed, but the denied topics are
	// not delivered.
	admin := authMustDial5(t, d.MQTTAddr, authLogin5("admin", "sub-admin"))
	// (Four levels: not ingest topics.)
	if rc := admin.publish(t, "kitchen/secret/recipe/soup", 1, "salt"); rc != 0 {
		t.Fatalf("admin publish: %#x", rc)
	}
	if rc := admin.publish(t, "kitchen/open/menu/today", 1, "soup"); rc != 0 {
		t.Fatalf("admin publish: %#x", rc)
	}
	if m := viewer.next(t); m.Topic != "kitchen/open/menu/today" {
		t.Fatalf("viewer received %s %q first", m.Topic, m.Payload)
	}
}

// TestAuth_Placeholders: %u and %c stand for the client's own username and client id.
func TestAuth_Placeholders(t *testing.T) {
	d := authStart(t)
	c := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "dev-7"))
	for topic, want := range map[string]byte{
		"devices/sensor/state": 0,
		"devices/viewer/state": 0x87,
		"clients/dev-7/state":  0,
		"clients/dev-8/state":  0x87,
	} {
		if got := c.publish(t, topic, 1, "x"); got != want {
			t.Errorf("publish %s: reason %#x, want %#x", topic, got, want)
		}
	}
	// A client id with wildcards in it widens nothing.
	if _, rc, err := authDial311(t, d.MQTTAddr, "+", "sensor", "pw-sensor", nil); err != nil {
		t.Fatalf("connecting with client id +: %d %v", rc, err)
	}
	wild := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "#"))
	if rc := wild.subscribe(t, "clients/#"); rc != 0x87 {
		t.Fatalf("client id # subscribed to clients/#: %#x", rc)
	}
}

// TestAuth_Reload: a reload applies to connections already open, which stay open.
func TestAuth_Reload(t *testing.T) {
	d := authStart(t)
	sensor := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "reload-sensor"))
	v3, _, err := authDial311(t, d.MQTTAddr, "reload-311", "sensor", "pw-sensor", nil)
	if err != nil {
		t.Fatal(err)
	}
	viewer := authMustDial5(t, d.MQTTAddr, authLogin5("viewer", "reload-viewer"))
	if rc := viewer.subscribe(t, "kitchen/#"); rc != 1 {
		t.Fatalf("viewer SUBACK = %#x", rc)
	}
	if rc := sensor.publish(t, "kitchen/Stew/fire", 1, "add sam"); rc != 0x87 {
		t.Fatalf("before reload: reason %#x, want 0x87", rc)
	}

	granted := strings.Replace(fmt.Sprintf(authUsers, authHashes...),
		`{topic: "kitchen/+/active", access: write}`, `{topic: "kitchen/+/+", access: write}`, 1)
	d.rewrite(t, granted)
	if rc := sensor.publish(t, "kitchen/Stew/fire", 1, "add sam"); rc != 0 {
		t.Fatalf("after reload: reason %#x, want 0", rc)
	}
	authPublish311(t, v3, "kitchen/Stew/fire", 1, false, "add ann")
	if got, want := authCounts(t, d, "Stew"), map[string]int64{"fire": 2}; !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	for range 2 {
		if m := viewer.next(t); m.Topic != "kitchen/Stew/fire" {
			t.Fatalf("viewer received %s", m.Topic)
		}
	}

	// Now the viewer may no longer read kitchen/Stew: its live subscription stops
	// delivering it, and the sensor loses write again.
	revoked := strings.Replace(fmt.Sprintf(authUsers, authHashes...),
		`{topic: "kitchen/secret/#", access: deny}`, `{topic: "kitchen/Stew/#", access: deny}`, 1)
	d.rewrite(t, revoked)
	if rc := sensor.publish(t, "kitchen/Stew/fire", 1, "add bob"); rc != 0x87 {
		t.Fatalf("after second reload: reason %#x, want 0x87", rc)
	}
	if rc := sensor.publish(t, "kitchen/Stew/active", 1, "add bob"); rc != 0 {
		t.Fatalf("after second reload: reason %#x, want 0", rc)
	}
	if rc := sensor.publish(t, "kitchen/Soup/active", 1, "add bob"); rc != 0 {
		t.Fatalf("after second reload: reason %#x, want 0", rc)
	}
	if m := viewer.next(t); m.Topic != "kitchen/Soup/active" {
		t.Fatalf("viewer received %s after losing read on it", m.Topic)
	}

	// A broken file keeps the rules in force.
	if err := os.WriteFile(d.path, []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.users.Reload(); !errors.Is(err, auth.ErrInvalidFile) {
		t.Fatalf("reloading a broken file: %v", err)
	}
	if rc := sensor.publish(t, "kitchen/Soup/active", 1, "add cat"); rc != 0 {
		t.Fatalf("after a failed reload: reason %#x, want 0", rc)
	}
	if !v3.IsConnectionOpen() {
		t.Fatal("the 3.1.1 client was disconnected")
	}
	authWantMetric(t, d.Daemon, "arina_mqtt_clients_connected", "", 3)
}

// TestAuth_TopicAlias: a publish by topic alias is checked on the topic the alias
// stands for. (One naming neither topic nor known alias gets DISCONNECT 0x94:
// test/mqtt5_conformance_test.go TestCompat_TopicAliasPerConnection.)
func TestAuth_TopicAlias(t *testing.T) {
	d := authStart(t)
	c := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "alias-sensor"))
	pub := func(topic string, alias uint16, payload string) byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
		defer cancel()
		pr, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload),
			Properties: &paho.PublishProperties{TopicAlias: &alias}})
		if pr == nil {
			t.Fatalf("publishing to %q (alias %d): %v", topic, alias, err)
		}
		return pr.ReasonCode
	}
	if rc := pub("kitchen/Stew/active", 1, "add sam"); rc != 0 {
		t.Fatalf("setting alias 1: %#x", rc)
	}
	if rc := pub("", 1, "add ann"); rc != 0 {
		t.Fatalf("publishing by alias 1: %#x", rc)
	}
	if rc := pub("kitchen/Stew/fire", 2, "add sam"); rc != 0x87 {
		t.Fatalf("setting alias 2 on a denied topic: %#x, want 0x87", rc)
	}
	if rc := pub("", 2, "add bob"); rc != 0x87 {
		t.Fatalf("publishing by the alias of a denied topic: %#x, want 0x87", rc)
	}
	if got, want := authCounts(t, d, "Stew"), map[string]int64{"active": 2}; !maps.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	authWantMetric(t, d.Daemon, "arina_mqtt_acl_denied_total", "access=write", 2)
}

// TestAuth_CountTopicsACL: count topics are served from the store, and each one a
// subscriber may not read is left out, as a retained message in the broker would be:
// a reader of arina/counts/Stew/# subscribing to arina/counts/# gets Stew's counts and
// none of Soup's, at subscribe time and live; a reader of everything gets both.
func TestAuth_CountTopicsACL(t *testing.T) {
	d := authStart(t, fmt.Sprintf(`users:
  - username: sensor
    password_hash: "%[1]s"
    acl:
      - {topic: "kitchen/#", access: write}
  - username: viewer
    password_hash: "%[2]s"
    acl:
      - {topic: "arina/counts/#", access: read}
      - {topic: "arina/counts/Soup/#", access: deny}
      - {topic: "arina/counts/Soup", access: deny}
      - {topic: "sync/viewer", access: readwrite}
  - username: admin
    password_hash: "%[3]s"
    acl:
      - {topic: "#", access: readwrite}
`, authHashes...))
	sensor := authMustDial5(t, d.MQTTAddr, authLogin5("sensor", "acl-sensor"))
	for _, topic := range []string{"kitchen/Stew/fire", "kitchen/Soup/fire"} {
		if rc := sensor.publish(t, topic, 1, "add sam"); rc != 0 {
			t.Fatalf("publish to %s: reason %#x", topic, rc)
		}
	}
	viewer := authMustDial5(t, d.MQTTAddr, authLogin5("viewer", "acl-viewer"))
	admin := authMustDial5(t, d.MQTTAddr, authLogin5("admin", "acl-admin"))
	// received reads messages until the echo of a sync publish, which comes after
	// what the SUBSCRIBE queued.
	received := func(c *authClient5, who string) map[string]string {
		t.Helper()
		// The sync topic first: mochi answers a SUBSCRIBE whose packet id one of its own
		// QoS 1 deliveries in flight uses with 0x91.
		if rc := c.subscribe(t, "sync/"+who); rc != 1 {
			t.Fatalf("%s SUBACK sync = %#x", who, rc)
		}
		if rc := c.subscribe(t, "arina/counts/#"); rc != 1 {
			t.Fatalf("%s SUBACK arina/counts/# = %#x", who, rc)
		}
		_ = c.publish(t, "sync/"+who, 0, "sync")
		got := map[string]string{}
		for m := c.next(t); m.Topic != "sync/"+who; m = c.next(t) {
			got[m.Topic] = string(m.Payload)
		}
		return got
	}
	want := map[string]string{"arina/counts/Stew": `{"content_id":"Stew","reaction_count":{"fire":1}}`, "arina/counts/Stew/fire": "1"}
	if got := received(viewer, "viewer"); !maps.Equal(got, want) {
		t.Fatalf("viewer got %q at subscribe time, want %q", got, want)
	}
	want["arina/counts/Soup"] = `{"content_id":"Soup","reaction_count":{"fire":1}}`
	want["arina/counts/Soup/fire"] = "1"
	if got := received(admin, "admin"); !maps.Equal(got, want) {
		t.Fatalf("admin got %q at subscribe time, want %q", got, want)
	}
	// Live: Soup changes, then Stew; the viewer sees only Stew's change.
	for _, topic := range []string{"kitchen/Soup/fire", "kitchen/Stew/fire"} {
		if rc := sensor.publish(t, topic, 1, "add ann"); rc != 0 {
			t.Fatalf("publish to %s: reason %#x", topic, rc)
		}
	}
	for {
		m := viewer.next(t)
		if strings.HasPrefix(m.Topic, "arina/counts/Soup") {
			t.Fatalf("viewer received %s %q, which it may not read", m.Topic, m.Payload)
		}
		if m.Topic == "arina/counts/Stew/fire" && string(m.Payload) == "2" {
			break
		}
	}
}
