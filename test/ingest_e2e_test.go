package test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

// Helpers in this file are prefixed with "ingest" so they cannot collide with those of
// the other files of package test.

// ingestStore wraps a real memory store for the ingest tests: Apply can be held on a
// gate the test controls, every applied op is recorded, and Close can leave the memory
// readable after the daemon stopped.
type ingestStore struct {
	*store.Memory // queries other than Counts
	mem           *store.Memory
	gate          chan struct{} // nil: Apply is never held; otherwise Apply waits until it is closed
	keepOpen      bool          // Close does nothing, so the test can read mem after the daemon's Close
	entered       atomic.Int64  // Apply calls begun
	once          sync.Once

	mu      sync.Mutex
	applied map[store.Op]int // how many times each op was applied
}

var _ store.Store = (*ingestStore)(nil)

func newIngestStore(gated, keepOpen bool) *ingestStore {
	mem := store.NewMemory()
	s := &ingestStore{Memory: mem, mem: mem, keepOpen: keepOpen, applied: make(map[store.Op]int)}
	if gated {
		s.gate = make(chan struct{})
	}
	return s
}

func (s *ingestStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	s.entered.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if err := s.mem.Apply(ctx, ops, out); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range ops {
		s.applied[op]++
	}
	return nil
}

func (s *ingestStore) Counts(ctx context.Context, contentID string) ([]store.ReactionCount, error) {
	return s.mem.Counts(ctx, contentID)
}

func (s *ingestStore) Close() error {
	if s.keepOpen {
		return nil
	}
	return s.mem.Close()
}

// release opens the gate for good; it is safe to call more than once.
func (s *ingestStore) release() {
	s.once.Do(func() {
		if s.gate != nil {
			close(s.gate)
		}
	})
}

func (s *ingestStore) appliedOps() map[store.Op]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.applied)
}

// ingestStart starts a daemon with arinatest.Start. Its cleanup, which runs after those
// of the clients the test connects later (they disconnect) and before the daemon's
// Close, waits until the broker has let go of every client: mochi v2.7.9 can deadlock
// in Close when a client is removed while Close lists the clients (Clients.GetByListener
// takes its read lock twice; mochi-mqtt/server#488).
func ingestStart(t *testing.T, opts ...func(*daemon.Options)) *arinatest.Daemon {
	t.Helper()
	d := arinatest.Start(t, opts...)
	t.Cleanup(func() {
		if !d.Broker.Running() {
			return // the test closed the daemon itself
		}
		testutil.WaitFor(t, 10*time.Second, func() error {
			if n := ingestMetric(t, d.HTTPURL, "arina_mqtt_clients_connected"); n != 0 {
				return fmt.Errorf("%v MQTT clients still connected", n)
			}
			return nil
		})
	})
	return d
}

// ingestMemCounts reads the counts of content straight from a memory store, as a map.
func ingestMemCounts(tb testing.TB, m *store.Memory, content string) map[string]int64 {
	tb.Helper()
	return storetest.CountsMap(tb, m, content)
}

// ingestMustCounts asserts the seed count route's answer for content.
func ingestMustCounts(tb testing.TB, baseURL, content string, want map[string]int64) {
	tb.Helper()
	got, status := arinatest.Counts(tb, baseURL, content)
	if want == nil {
		if status != http.StatusNotFound {
			tb.Fatalf("counts of %s = %v (status %d), want 404", content, got, status)
		}
		return
	}
	if status != http.StatusOK || !maps.Equal(got, want) {
		tb.Fatalf("counts of %s = %v (status %d), want %v", content, got, status, want)
	}
}

// ingestMustConnectV5 connects an MQTT 5 paho.golang client over its own TCP connection
// and disconnects it, waiting for its goroutines, at cleanup.
func ingestMustConnectV5(tb testing.TB, addr, clientID string) *paho.Client {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dialing %s: %v", addr, err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ca, err := c.Connect(ctx, &paho.Connect{ClientID: clientID, CleanStart: true, KeepAlive: 30}); err != nil {
		_ = conn.Close()
		tb.Fatalf("connecting %s (connack %+v): %v", clientID, ca, err)
	}
	tb.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0}) // fails harmlessly if the broker already dropped us
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			tb.Errorf("mqtt 5 client %s did not shut down", clientID)
		}
	})
	return c
}

// ingestConnect311 connects a paho.mqtt.golang MQTT 3.1.1 client with opts (broker,
// protocol version and retries are set here) and disconnects it at cleanup.
func ingestConnect311(tb testing.TB, addr, clientID string, opts *pahomqtt.ClientOptions) pahomqtt.Client {
	tb.Helper()
	opts.AddBroker("tcp://" + addr).SetClientID(clientID).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connecting %s: %v", clientID, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// ingestMetric returns the value of the series name{labels...} (label pairs as
// alternating names and values) on /metrics, or 0 when the series is absent.
func ingestMetric(tb testing.TB, baseURL, name string, labels ...string) float64 {
	tb.Helper()
	want := make(map[string]string, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	status, _, body := ingestHTTP(tb, http.MethodGet, baseURL+"/metrics", "", "")
	if status != http.StatusOK {
		tb.Fatalf("GET /metrics: status %d: %s", status, body)
	}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, value := line[:sp], line[sp+1:]
		n, lbl, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		got := make(map[string]string)
		if lbl = strings.TrimSuffix(lbl, "}"); lbl != "" {
			for pair := range strings.SplitSeq(lbl, ",") {
				k, v, _ := strings.Cut(pair, "=")
				got[k] = strings.Trim(v, `"`)
			}
		}
		if !maps.Equal(got, want) {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		return f
	}
	return 0
}

// ingestHTTP makes one request and returns the status, Content-Type and body.
func ingestHTTP(tb testing.TB, method, u, contentType, body string) (int, string, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		tb.Fatalf("building %s %s: %v", method, u, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("reading %s %s: %v", method, u, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// ingestMosquittoPub runs mosquitto_pub against addr with args and returns its
// combined output.
func ingestMosquittoPub(tb testing.TB, bin, addr string, args ...string) (string, error) {
	tb.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatalf("splitting %s: %v", addr, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestMosquittoPub_DoneScenario drives the scenario with the real mosquitto_pub
// binary and checks every HTTP answer: QoS 1 acks mean applied, so nothing is polled.
func TestMosquittoPub_DoneScenario(t *testing.T) {
	bin := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	d := ingestStart(t)

	for _, m := range []struct{ topic, msg string }{
		{"kitchen/Stew/fire", "add Sam"},
		{"kitchen/Stew/fire", "add Ann"},
		{"kitchen/Stew/fire", "add Bob"},
		{"kitchen/Stew/fire", "add Sam"},    // duplicate add: no change
		{"kitchen/Stew/fire", "remove Ann"}, // fire = {Sam, Bob}
		{"kitchen/Stew/fire", "remove Zed"}, // never added: no change
		{"kitchen/Stew/yum", "add Sam"},
	} {
		if out, err := ingestMosquittoPub(t, bin, d.MQTTAddr, "-q", "1", "-t", m.topic, "-m", m.msg); err != nil {
			t.Fatalf("mosquitto_pub %q to %s: %v\n%s", m.msg, m.topic, err, out)
		}
	}

	status, ct, body := ingestHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", "application/json",
		`{"type":"reaction","action":"add","content_id":"Stew","user_id":"Eve","reaction_type":"fire"}`)
	if status != http.StatusCreated || !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("POST seed payload: status %d, Content-Type %q: %s", status, ct, body)
	}
	var created struct {
		ContentID    string `json:"content_id"`
		ReactionType string `json:"reaction_type"`
		UserID       string `json:"user_id"`
		Count        int64  `json:"count"`
	}
	if err := json.Unmarshal(body, &created); err != nil || created.Count != 3 || created.UserID != "Eve" {
		t.Fatalf("POST answer %s (err %v), want user Eve and count 3", body, err)
	}

	seedRoutes := []string{"/api/v1/reaction/reaction_counts/", "/api/v1/reaction/reactions_count/", "/reaction/reactions_count/"}
	wantCounts := map[string]any{"content_id": "Stew", "reaction_count": map[string]any{"fire": 3.0, "yum": 1.0}}
	wantNotFound := map[string]any{"errors": map[string]any{"detail": "Not Found"}}
	checkRoutes := func(t *testing.T) {
		t.Helper()
		for _, route := range seedRoutes {
			status, ct, body := ingestHTTP(t, http.MethodGet, d.HTTPURL+route+"Stew", "", "")
			var got any
			if err := json.Unmarshal(body, &got); err != nil || status != http.StatusOK ||
				!strings.HasPrefix(ct, "application/json") || !reflect.DeepEqual(got, wantCounts) {
				t.Errorf("GET %sStew = %d %q %s, want 200 %v", route, status, ct, body, wantCounts)
			}
			status, ct, body = ingestHTTP(t, http.MethodGet, d.HTTPURL+route+"Unknown", "", "")
			if err := json.Unmarshal(body, &got); err != nil || status != http.StatusNotFound ||
				!strings.HasPrefix(ct, "application/json") || !reflect.DeepEqual(got, wantNotFound) {
				t.Errorf("GET %sUnknown = %d %q %s, want 404 %v", route, status, ct, body, wantNotFound)
			}
		}
	}
	checkRoutes(t)

	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		code                    string
	}{
		{"BadJSON", "application/json", `{"type":"reaction",`, 400, "bad_json"},
		{"MissingUser", "application/json", `{"type":"reaction","action":"add","content_id":"Stew","reaction_type":"fire"}`, 400, "missing_field"},
		{"BadAction", "application/json", `{"type":"reaction","action":"jump","content_id":"Stew","user_id":"Ivy","reaction_type":"fire"}`, 400, "invalid_action"},
		{"SlashInContent", "application/json", `{"type":"reaction","action":"add","content_id":"Stew/x","user_id":"Ivy","reaction_type":"fire"}`, 400, "invalid_id"},
		{"WrongType", "application/json", `{"type":"comment","action":"add","content_id":"Stew","user_id":"Ivy","reaction_type":"fire"}`, 400, "invalid_field"},
		{"NotJSONMediaType", "text/plain", `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Ivy","reaction_type":"fire"}`, 415, "unsupported_media_type"},
	} {
		t.Run("POST/"+tc.name, func(t *testing.T) {
			status, ct, body := ingestHTTP(t, http.MethodPost, d.HTTPURL+"/api/v1/reaction", tc.contentType, tc.body)
			var e struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || !strings.HasPrefix(ct, "application/json") ||
				e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("POST %s = %d %q %s, want %d with JSON error code %q", tc.body, status, ct, body, tc.status, tc.code)
			}
		})
	}
	checkRoutes(t) // the bad POSTs changed nothing

	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "mqtt"); got != 7 {
		t.Errorf(`arina_events_applied_total{source="mqtt"} = %v, want 7`, got)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "http"); got != 1 {
		t.Errorf(`arina_events_applied_total{source="http"} = %v, want 1`, got)
	}

	// Malformed events from mosquitto_pub: MQTT 5 gets a failure reason code, 3.1.1 is
	// acked (a resend cannot help); neither is applied, both are counted by reason.
	out, err := ingestMosquittoPub(t, bin, d.MQTTAddr, "-V", "mqttv5", "-q", "1", "-t", "kitchen/Stew/fire", "-m", "garbage")
	t.Logf("mosquitto_pub -V mqttv5 malformed: err %v, output %q", err, out)
	if !strings.Contains(out, "Payload format invalid") {
		t.Errorf("mosquitto_pub -V mqttv5 output %q does not report reason 0x99 (Payload format invalid)", out)
	}
	out, err = ingestMosquittoPub(t, bin, d.MQTTAddr, "-V", "mqttv311", "-q", "1", "-t", "kitchen/Stew/fire", "-m", `{"user_id":"Ivy","action":"jump"}`)
	if err != nil {
		t.Errorf("mosquitto_pub -V mqttv311 malformed: %v (a 3.1.1 client must get its ack)\n%s", err, out)
	}
	checkRoutes(t)
	for reason, want := range map[string]float64{"bad_payload": 1, "invalid_action": 1} {
		if got := ingestMetric(t, d.HTTPURL, "arina_events_rejected_total", "source", "mqtt", "reason", reason); got != want {
			t.Errorf(`arina_events_rejected_total{source="mqtt",reason=%q} = %v, want %v`, reason, got, want)
		}
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "mqtt"); got != 7 {
		t.Errorf(`after the malformed publishes arina_events_applied_total{source="mqtt"} = %v, want 7`, got)
	}
}

// TestIngest_MQTT5ReasonCodes checks the reason codes an MQTT 5 publisher gets: 0x00
// for an applied event, 0x99 (PUBACK or PUBREC) for a malformed one, which is never
// applied and is counted by reason.
func TestIngest_MQTT5ReasonCodes(t *testing.T) {
	d := ingestStart(t)
	c := ingestMustConnectV5(t, d.MQTTAddr, "t-v5-codes")
	publish := func(qos byte, topic, payload string) (*paho.PublishResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
	}

	resp, err := publish(1, "kitchen/Stew/fire", `{"user_id":"Sam","action":"add"}`)
	if err != nil || resp == nil || resp.ReasonCode != 0x00 {
		t.Fatalf("valid QoS 1 publish: resp %+v, err %v; want reason 0x00", resp, err)
	}
	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1})

	for _, tc := range []struct {
		name    string
		qos     byte
		topic   string
		payload string
		reason  ingest.Code
	}{
		{"Garbage", 1, "kitchen/Stew/fire", "garbage", ingest.CodeBadPayload},
		{"Empty", 1, "kitchen/Stew/fire", "", ingest.CodeBadPayload},
		{"BadJSON", 1, "kitchen/Stew/fire", `{"user_id":`, ingest.CodeBadJSON},
		{"BadAction", 1, "kitchen/Stew/fire", `{"user_id":"Ann","action":"jump"}`, ingest.CodeInvalidAction},
		{"ControlCharInTextUser", 1, "kitchen/Stew/fire", "add An\x01n", ingest.CodeInvalidID},
		{"ControlCharInJSONUser", 1, "kitchen/Stew/fire", `{"user_id":"An\u0001n","action":"add"}`, ingest.CodeInvalidID},
		{"WildcardInUser", 1, "kitchen/Stew/fire", "add An+n", ingest.CodeInvalidID},
		{"UserTooLong", 1, "kitchen/Stew/fire", "add " + strings.Repeat("u", ingest.MaxIDLen+1), ingest.CodeInvalidID},
		{"SeedContentIDMismatch", 1, "kitchen/Stew/fire", `{"type":"reaction","action":"add","content_id":"Soup","user_id":"Ann","reaction_type":"fire"}`, ingest.CodeIDMismatch},
		{"SeedReactionMismatch", 1, "kitchen/Stew/fire", `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Ann","reaction_type":"yum"}`, ingest.CodeIDMismatch},
		{"ReactionTooLong", 1, "kitchen/Stew/" + strings.Repeat("r", ingest.MaxReactionLen+1), "add Ann", ingest.CodeInvalidID},
		{"QoS2Garbage", 2, "kitchen/Stew/fire", "garbage", ingest.CodeBadPayload},
		{"QoS2ControlChar", 2, "kitchen/Stew/fire", "add An\x01n", ingest.CodeInvalidID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ingestMetric(t, d.HTTPURL, "arina_events_rejected_total", "source", "mqtt", "reason", string(tc.reason))
			resp, err := publish(tc.qos, tc.topic, tc.payload)
			if resp == nil {
				t.Fatalf("no publish response: %v", err)
			}
			if resp.ReasonCode != 0x99 {
				t.Errorf("reason code = %#x, want 0x99 (payload format invalid)", resp.ReasonCode)
			}
			if resp.Properties == nil || resp.Properties.ReasonString == "" || resp.Properties.ReasonString == "payload format invalid" {
				t.Errorf("reason string %+v: want what is wrong with the event, not just the code's name", resp.Properties)
			}
			// paho.golang v0.23.0 returns an error for a failed PUBACK, but for QoS 2 it
			// returns the failed PUBREC with a nil error: only the reason code tells.
			if tc.qos == 1 && err == nil {
				t.Errorf("QoS 1 publish refused with %#x returned no error", resp.ReasonCode)
			}
			if tc.qos == 2 && err != nil {
				t.Errorf("QoS 2 publish refused in its PUBREC: paho returned error %v, want the PUBREC only", err)
			}
			after := ingestMetric(t, d.HTTPURL, "arina_events_rejected_total", "source", "mqtt", "reason", string(tc.reason))
			if after != before+1 {
				t.Errorf(`arina_events_rejected_total{source="mqtt",reason=%q} went %v -> %v, want +1`, tc.reason, before, after)
			}
			ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1})
			ingestMustCounts(t, d.HTTPURL, "Soup", nil)
		})
	}

	// A payload over the limit is refused too (its metric is checked, and fails, in
	// TestIngest_PayloadTooLargeCounted).
	resp, err = publish(1, "kitchen/Stew/fire", "add "+strings.Repeat("x", 5000))
	if resp == nil || resp.ReasonCode != 0x99 || err == nil {
		t.Errorf("oversized QoS 1 publish: resp %+v, err %v; want reason 0x99", resp, err)
	}

	// After the refused QoS 2 exchanges, a valid QoS 2 publish (whose packet id may be
	// reused) completes and is applied before the PUBCOMP.
	resp, err = publish(2, "kitchen/Stew/yum", "add Ann")
	if err != nil || resp == nil || resp.ReasonCode != 0x00 {
		t.Fatalf("valid QoS 2 publish: resp %+v, err %v; want reason 0x00", resp, err)
	}
	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1, "yum": 1})
	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "mqtt"); got != 2 {
		t.Errorf(`arina_events_applied_total{source="mqtt"} = %v, want 2`, got)
	}
}

// TestIngest_PayloadTooLargeCounted: a payload over mqtt.max_event_payload is refused
// but, unlike every other rejection, not counted in arina_events_rejected_total.
func TestIngest_PayloadTooLargeCounted(t *testing.T) {
	d := ingestStart(t)
	c := ingestMustConnectV5(t, d.MQTTAddr, "t-v5-large")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho.Publish{Topic: "kitchen/Stew/fire", QoS: 1, Payload: []byte("add " + strings.Repeat("x", 5000))})
	if resp == nil || resp.ReasonCode != 0x99 {
		t.Fatalf("oversized publish: resp %+v, err %v; want reason 0x99", resp, err)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_rejected_total", "source", "mqtt", "reason", string(ingest.CodePayloadTooLarge)); got != 1 {
		t.Errorf(`arina_events_rejected_total{source="mqtt",reason="payload_too_large"} = %v, want 1`, got)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_received_total", "source", "mqtt"); got != 1 {
		t.Errorf(`arina_events_received_total{source="mqtt"} = %v, want 1`, got)
	}
}

// TestIngest_Overload holds the writer in Apply with a one-slot queue: MQTT 5 QoS 1
// gets 0x97, MQTT 3.1.1 QoS 1 gets no PUBACK and its resend after reconnecting is
// applied once, QoS 0 is dropped and counted; nothing acknowledged is missing.
func TestIngest_Overload(t *testing.T) {
	st := newIngestStore(true, false)
	d := ingestStart(t, func(o *daemon.Options) {
		o.Ingest = ingest.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: 100 * time.Millisecond}
		o.Store = st
	})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)    // runs after release: the held publishers finish
	t.Cleanup(st.release) // cleanups run last-registered first: before the daemon's Close
	overload := func() float64 {
		return ingestMetric(t, d.HTTPURL, "arina_events_rejected_total", "source", "mqtt", "reason", "overload")
	}
	op := func(reaction, user string) store.Op {
		return store.Op{ContentID: "Over", ReactionType: reaction, UserID: user, Action: store.Add}
	}

	type result struct {
		resp *paho.PublishResponse
		err  error
	}
	held := func(c *paho.Client, topic, payload string) <-chan result {
		ch := make(chan result, 1)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)})
			ch <- result{resp, err}
		})
		return ch
	}

	// A is taken by the writer, which is held in Apply; B fills the one-slot queue.
	resA := held(ingestMustConnectV5(t, d.MQTTAddr, "ovl-v5-a"), "kitchen/Over/first", "add A")
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := st.entered.Load(); n < 1 {
			return errors.New("the writer has not called Apply yet")
		}
		return nil
	})
	resB := held(ingestMustConnectV5(t, d.MQTTAddr, "ovl-v5-b"), "kitchen/Over/second", "add B")
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := d.Writer.QueueLen(); n != 1 {
			return fmt.Errorf("queue length %d, want 1", n)
		}
		return nil
	})

	t.Run("MQTT5QoS1QuotaExceeded", func(t *testing.T) {
		c := ingestMustConnectV5(t, d.MQTTAddr, "ovl-v5-c")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "kitchen/Over/quota", QoS: 1, Payload: []byte("add C")})
		if resp == nil || resp.ReasonCode != 0x97 || err == nil {
			t.Fatalf("publish with the queue full: resp %+v, err %v; want reason 0x97 (quota exceeded)", resp, err)
		}
		if got := overload(); got != 1 {
			t.Errorf("overload rejections = %v, want 1", got)
		}
	})

	t.Run("QoS0Dropped", func(t *testing.T) {
		c := ingestMustConnectV5(t, d.MQTTAddr, "ovl-v5-q0")
		if _, err := c.Publish(context.Background(), &paho.Publish{Topic: "kitchen/Over/qos0", QoS: 0, Payload: []byte("add E")}); err != nil {
			t.Fatalf("QoS 0 publish: %v", err)
		}
		testutil.WaitFor(t, 5*time.Second, func() error {
			if got := overload(); got != 2 {
				return fmt.Errorf("overload rejections = %v, want 2", got)
			}
			return nil
		})
	})

	// MQTT 3.1.1, QoS 1, persistent session: no PUBACK while overloaded; the
	// connection is closed, so the client resends after reconnecting instead of
	// waiting forever with the publish in its in-flight window.
	ms := pahomqtt.NewMemoryStore()
	lost := make(chan error, 1)
	c311 := ingestConnect311(t, d.MQTTAddr, "ovl-311", pahomqtt.NewClientOptions().SetCleanSession(false).SetStore(ms).
		SetConnectionLostHandler(func(_ pahomqtt.Client, err error) { lost <- err }))
	tokD := c311.Publish("kitchen/Over/v311", 1, false, "add D")
	testutil.WaitFor(t, 5*time.Second, func() error {
		if got := overload(); got != 3 {
			return fmt.Errorf("overload rejections = %v, want 3", got)
		}
		return nil
	})
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the 3.1.1 connection stayed open after an unacknowledged publish")
	}
	if tokD.WaitTimeout(5*time.Second) && tokD.Error() == nil {
		t.Fatal("3.1.1 publish acknowledged while overloaded: the event would be lost")
	}
	ingestMustCounts(t, d.HTTPURL, "Over", nil) // A is still held in Apply

	st.release()
	for name, ch := range map[string]<-chan result{"A": resA, "B": resB} {
		r := <-ch
		if r.err != nil || r.resp == nil || r.resp.ReasonCode != 0x00 {
			t.Errorf("held publish %s: resp %+v, err %v; want reason 0x00 once applied", name, r.resp, r.err)
		}
	}
	ingestMustCounts(t, d.HTTPURL, "Over", map[string]int64{"first": 1, "second": 1})

	// The 3.1.1 client still holds D; after reconnecting with the same client id and
	// CleanSession(false), paho resends it (DUP) from its store.
	if n := len(ms.All()); n != 1 {
		t.Fatalf("3.1.1 client store holds %d messages, want 1 (D, never acked)", n)
	}
	if tok := c311.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnecting the 3.1.1 client: %v", tok.Error())
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := len(ms.All()); n != 0 {
			return fmt.Errorf("3.1.1 client store still holds %d messages: the resend was not acked", n)
		}
		return nil
	})
	ingestMustCounts(t, d.HTTPURL, "Over", map[string]int64{"first": 1, "second": 1, "v311": 1})

	applied := st.appliedOps()
	for o, want := range map[store.Op]int{
		op("first", "A"): 1, op("second", "B"): 1, op("v311", "D"): 1, // acknowledged: applied exactly once
		op("quota", "C"): 0, op("qos0", "E"): 0, // refused: never applied
	} {
		if applied[o] != want {
			t.Errorf("op %+v applied %d times, want %d", o, applied[o], want)
		}
	}
	if len(applied) != 3 {
		t.Errorf("applied ops %v, want exactly A, B and D", applied)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "mqtt"); got != 3 {
		t.Errorf(`arina_events_applied_total{source="mqtt"} = %v, want 3`, got)
	}
	if got := overload(); got != 3 {
		t.Errorf("overload rejections = %v, want 3 (C, E and D's first attempt)", got)
	}
}

// TestIngest_DrainOnShutdown closes the daemon while clients are publishing: every
// acknowledged event is in the store, and nothing is in it that was not sent. QoS 1 is
// published by MQTT 5 paho.golang clients; QoS 2 by MQTT 3.1.1 paho.mqtt.golang ones
// (paho.golang v0.23.0 races on its own session state when the server drops a
// connection with a QoS 2 exchange in flight: State.PacketReceived reads s.conn
// without the lock that connectionLost holds to clear it).
func TestIngest_DrainOnShutdown(t *testing.T) {
	t.Run("QoS1", func(t *testing.T) { testIngestDrain(t, 1) })
	t.Run("QoS2", func(t *testing.T) {
		testIngestDrain(t, 2)
	})
}

// ingestPublishFunc publishes one payload and returns once it is acknowledged (nil) or
// refused, failed or abandoned (an error).
type ingestPublishFunc func(ctx context.Context, topic, payload string) error

func ingestPublisher(t *testing.T, addr, clientID string, qos byte) ingestPublishFunc {
	if qos == 1 {
		c := ingestMustConnectV5(t, addr, clientID)
		return func(ctx context.Context, topic, payload string) error {
			resp, err := c.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Payload: []byte(payload)})
			if err == nil && resp.ReasonCode != 0 {
				err = fmt.Errorf("reason code %#x", resp.ReasonCode)
			}
			return err
		}
	}
	c := MustConnect311(t, addr, clientID)
	return func(ctx context.Context, topic, payload string) error {
		tok := c.Publish(topic, qos, false, payload)
		select {
		case <-tok.Done():
			return tok.Error()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func testIngestDrain(t *testing.T, qos byte) {
	st := newIngestStore(false, true)
	d := ingestStart(t, func(o *daemon.Options) { o.Store = st })

	const (
		numClients = 8
		finishing  = 4  // clients 0..3 publish n events and stop; the others publish until shut down
		n          = 40 // events per finishing client
		busyMin    = 10 // acks each busy client has before the shutdown starts
	)
	type clientLog struct {
		sent  []string // users published, in order (the last may not have been answered)
		acked map[string]bool
		err   error // why the client stopped early
	}
	logs := make([]clientLog, numClients)
	var ackedN [numClients]atomic.Int64
	clients := make([]ingestPublishFunc, numClients)
	for i := range clients {
		clients[i] = ingestPublisher(t, d.MQTTAddr, fmt.Sprintf("drain-%d", i), qos)
	}
	// paho.golang v0.23.0 does not answer a publish still waiting for its ack when the
	// connection is lost (State.clean drops it): such a publish would wait for its own
	// timeout. Its context is cancelled once the daemon has closed.
	pubCtx, stopPublishing := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopPublishing()
		wg.Wait()
	}()
	for i, publish := range clients {
		wg.Go(func() {
			lg := &logs[i]
			lg.acked = make(map[string]bool)
			limit := n
			if i >= finishing {
				limit = 1 << 20
			}
			for j := range limit {
				if pubCtx.Err() != nil {
					return
				}
				user := fmt.Sprintf("c%d-u%d", i, j)
				lg.sent = append(lg.sent, user)
				ctx, cancel := context.WithTimeout(pubCtx, 10*time.Second)
				err := publish(ctx, "kitchen/Drain/fire", "add "+user)
				cancel()
				if err != nil {
					lg.err = err
					return
				}
				lg.acked[user] = true
				ackedN[i].Add(1)
			}
		})
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		for i := range numClients {
			got := ackedN[i].Load()
			if i < finishing && got != n {
				return fmt.Errorf("client %d has %d acks, want %d", i, got, n)
			}
			if i >= finishing && got < busyMin {
				return fmt.Errorf("busy client %d has %d acks, want >= %d", i, got, busyMin)
			}
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- d.Close(ctx) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("closing the daemon while clients publish: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the daemon's Close(ctx) has not returned 10s after its 5s deadline")
	}
	stopPublishing()
	wg.Wait()

	applied := st.appliedOps()
	sentBy := make(map[string]int) // user -> client index
	for i := range logs {
		for _, u := range logs[i].sent {
			sentBy[u] = i
		}
	}
	var acked, unackedApplied int
	for o, times := range applied {
		i, ok := sentBy[o.UserID]
		switch {
		case o.ContentID != "Drain" || o.ReactionType != "fire" || o.Action != store.Add || !ok:
			t.Errorf("phantom op in the store: %+v", o)
			continue
		case times != 1:
			t.Errorf("op %+v applied %d times, want once", o, times)
		}
		if !logs[i].acked[o.UserID] {
			// Applied but its PUBACK lost to the shutdown: only the publish the client was
			// waiting on when the broker closed it.
			unackedApplied++
			if last := logs[i].sent[len(logs[i].sent)-1]; o.UserID != last {
				t.Errorf("unacknowledged %s applied, but client %d's last publish was %s", o.UserID, i, last)
			}
		}
	}
	for i := range logs {
		for u := range logs[i].acked {
			acked++
			if applied[store.Op{ContentID: "Drain", ReactionType: "fire", UserID: u, Action: store.Add}] == 0 {
				t.Errorf("acknowledged event add %s (client %d) is missing from the store", u, i)
			}
		}
		if i < finishing && len(logs[i].acked) != n {
			t.Errorf("client %d: %d of %d events acknowledged (err %v)", i, len(logs[i].acked), n, logs[i].err)
		}
	}
	counts := ingestMemCounts(t, st.mem, "Drain")
	if counts["fire"] != int64(len(applied)) || counts["fire"] != int64(acked+unackedApplied) {
		t.Errorf("memory store count %d, recorded applied %d, acked %d + applied but unacked %d",
			counts["fire"], len(applied), acked, unackedApplied)
	}
	t.Logf("acknowledged %d, applied %d (%d applied while their PUBACK was cut by the shutdown)",
		acked, len(applied), unackedApplied)
}

type ingestRelayed struct{ topic, payload string }

// TestIngest_RelayAfterSubscribe: events published while nobody subscribes are applied
// and, when retained, kept for later subscribers. Once a client has its SUBACK, every
// later event reaches it, at QoS 0 and 1.
func TestIngest_RelayAfterSubscribe(t *testing.T) {
	d := ingestStart(t)
	pub := MustConnect311(t, d.MQTTAddr, "listen-pub")
	MustPublish(t, pub, "kitchen/Soup/fire", 1, "add Early")
	if tok := pub.Publish("kitchen/Soup/fire", 1, true, "add Kept"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publishing retained: %v", tok.Error())
	}
	MustPublish(t, pub, "kitchen/Soup/fire", 0, "add Zero")
	// The relays of those events may still be under way: mochi fans a QoS 0 event out
	// after handing it to the writer (it can be applied, and counted, first), and the
	// acker relays a QoS 1 event after its PUBACK (a retained one could then reach the
	// subscriber twice, retained and live). This publish's PUBACK comes after both: the
	// connection reads it after it fanned "add Zero" out, and its acker writes it after
	// relaying "add Kept". Its own relay may trail it, so the subscriber below does
	// not subscribe to its topic.
	MustPublish(t, pub, "kitchen/Barrier/fire", 1, "add Sync")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got, _ := arinatest.Counts(t, d.HTTPURL, "Soup"); got["fire"] != 3 {
			return fmt.Errorf("counts %v, want fire 3", got)
		}
		return nil
	})

	msgs := make(chan string, 16)
	sub := MustConnect311(t, d.MQTTAddr, "listen-sub")
	tok := sub.Subscribe("kitchen/Soup/#", 1, func(_ pahomqtt.Client, m pahomqtt.Message) {
		select {
		case msgs <- m.Topic() + " " + string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}
	MustPublish(t, pub, "kitchen/Soup/heart", 1, "add Late")
	MustPublish(t, pub, "kitchen/Soup/heart", 0, "add LateZero")
	var got []string
	for len(got) < 3 {
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-time.After(10 * time.Second):
			t.Fatalf("received %q, want the retained event and the two published after the SUBACK", got)
		}
	}
	slices.Sort(got)
	want := []string{"kitchen/Soup/fire add Kept", "kitchen/Soup/heart add Late", "kitchen/Soup/heart add LateZero"}
	if !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q (nothing published before the subscription but the retained one)", got, want)
	}
	// A QoS 0 event is relayed as it is received, before the writer applies it (and a
	// count query does not wait for the writer's batch): wait for it.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if got, _ := arinatest.Counts(t, d.HTTPURL, "Soup"); !maps.Equal(got, map[string]int64{"fire": 3, "heart": 2}) {
			return fmt.Errorf("counts %v, want fire 3 and heart 2", got)
		}
		return nil
	})
}

// TestIngest_Relay: raw subscribers see accepted ingest messages and every non-ingest
// topic, never a malformed ingest message; non-ingest topics are not ingested.
func TestIngest_Relay(t *testing.T) {
	d := ingestStart(t)
	msgs := make(chan ingestRelayed, 64)
	sub := MustConnect311(t, d.MQTTAddr, "relay-sub")
	tok := sub.SubscribeMultiple(map[string]byte{"kitchen/#": 1, "other/#": 1}, func(_ pahomqtt.Client, m pahomqtt.Message) {
		select {
		case msgs <- ingestRelayed{m.Topic(), string(m.Payload())}:
		default: // never blocks paho; the test sees the loss as a missing message
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}

	pub := MustConnect311(t, d.MQTTAddr, "relay-pub")
	sent := []ingestRelayed{
		{"kitchen/Stew/fire", "add Sam"},       // accepted: relayed
		{"kitchen/Stew/fire", "not an event"},  // malformed, acked to 3.1.1: not relayed
		{"kitchen/Stew/fire", "add Bad\x01Id"}, // malformed id: not relayed
		{"kitchen/Stew/fire", "add Bob"},       // accepted: relayed
		{"kitchen/a/b/c", "add Ann"},           // not an ingest topic: relayed only
		{"other/x", "add Bob"},
		{"kitchen/Stew", "add Cy"},
	}
	for _, m := range sent {
		MustPublish(t, pub, m.topic, 1, m.payload)
	}
	// An accepted QoS 1 event is relayed by its client's acker once applied, so the
	// order across topics is not fixed; on one topic it is. A relay of a malformed
	// message would be queued while the broker handled it, before "add Bob" was even
	// sent: "add Bob" right after "add Sam" shows that the malformed ones were dropped.
	byTopic := make(map[string][]string)
	for i := range 5 {
		select {
		case m := <-msgs:
			byTopic[m.topic] = append(byTopic[m.topic], m.payload)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of 5 relayed messages received: %v", i, byTopic)
		}
	}
	want := map[string][]string{
		"kitchen/Stew/fire": {"add Sam", "add Bob"},
		"kitchen/a/b/c":     {"add Ann"},
		"other/x":           {"add Bob"},
		"kitchen/Stew":      {"add Cy"},
	}
	if !reflect.DeepEqual(byTopic, want) {
		t.Fatalf("relayed messages by topic = %q, want %q", byTopic, want)
	}
	if len(msgs) != 0 {
		t.Errorf("unexpected extra relayed message: %+v", <-msgs)
	}

	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 2})
	for _, content := range []string{"a", "b", "x", "other"} {
		ingestMustCounts(t, d.HTTPURL, content, nil)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_applied_total", "source", "mqtt"); got != 2 {
		t.Errorf(`arina_events_applied_total{source="mqtt"} = %v, want 2`, got)
	}
	if got := ingestMetric(t, d.HTTPURL, "arina_events_received_total", "source", "mqtt"); got != 4 {
		t.Errorf(`arina_events_received_total{source="mqtt"} = %v, want 4 (only ingest topics)`, got)
	}
}

// TestIngest_MultiLevelPrefix: with topic prefix plant1/kitchen only
// plant1/kitchen/<content>/<reaction> is ingested.
func TestIngest_MultiLevelPrefix(t *testing.T) {
	d := ingestStart(t, func(o *daemon.Options) { o.MQTT.TopicPrefix = "plant1/kitchen" })
	c := MustConnect311(t, d.MQTTAddr, "prefix-311")
	MustPublish(t, c, "plant1/kitchen/Stew/fire", 1, "add Sam")
	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1})

	for _, topic := range []string{"kitchen/Stew/fire", "plant1/Stew/fire", "plant1/kitchen/Stew/fire/x", "plant1/kitchenette/Stew/fire", "x/plant1/kitchen/Stew/fire"} {
		MustPublish(t, c, topic, 1, "add Ann")
	}
	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1})

	v5 := ingestMustConnectV5(t, d.MQTTAddr, "prefix-v5")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := v5.Publish(ctx, &paho.Publish{Topic: "plant1/kitchen/Stew/yum", QoS: 1, Payload: []byte(`{"user_id":"Ann","action":"add"}`)})
	if err != nil || resp.ReasonCode != 0 {
		t.Fatalf("MQTT 5 publish under the multi-level prefix: resp %+v, err %v", resp, err)
	}
	ingestMustCounts(t, d.HTTPURL, "Stew", map[string]int64{"fire": 1, "yum": 1})
	ingestMustCounts(t, d.HTTPURL, "kitchen", nil)
}

// ingestConnect311Will connects a 3.1.1 client whose will is willPayload on willTopic,
// and returns it with a function that cuts its TCP connection without a DISCONNECT.
func ingestConnect311Will(tb testing.TB, addr, clientID, willTopic, willPayload string) (pahomqtt.Client, func()) {
	tb.Helper()
	var (
		mu   sync.Mutex
		conn net.Conn
	)
	opts := pahomqtt.NewClientOptions().SetWill(willTopic, willPayload, 1, false).
		SetCustomOpenConnectionFn(func(u *url.URL, _ pahomqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
			mu.Lock()
			conn = c
			mu.Unlock()
			return c, err
		})
	c := ingestConnect311(tb, addr, clientID, opts)
	cut := func() {
		mu.Lock()
		defer mu.Unlock()
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, as when a device loses power
		}
		_ = conn.Close()
	}
	return c, cut
}

// TestIngest_Will: a will on an ingest topic is ingested when the connection drops,
// not after a clean DISCONNECT and not when Arina itself shuts down.
func TestIngest_Will(t *testing.T) {
	const topic = "kitchen/range-2/gas_on"
	connected := func(t *testing.T, d *arinatest.Daemon) float64 {
		return ingestMetric(t, d.HTTPURL, "arina_mqtt_clients_connected")
	}

	t.Run("ConnectionCut", func(t *testing.T) {
		d := ingestStart(t)
		c, cut := ingestConnect311Will(t, d.MQTTAddr, "valve7", topic, "remove valve7")
		MustPublish(t, c, topic, 1, "add valve7")
		ingestMustCounts(t, d.HTTPURL, "range-2", map[string]int64{"gas_on": 1})
		cut()
		testutil.WaitFor(t, 10*time.Second, func() error {
			if got, _ := arinatest.Counts(t, d.HTTPURL, "range-2"); got["gas_on"] != 0 {
				return fmt.Errorf("gas_on = %d, want 0 after the will", got["gas_on"])
			}
			return nil
		})
		// paho takes a locally closed connection for its own Disconnect and does not
		// notice the cut; the cleanup's Disconnect stops its goroutines.
	})

	t.Run("CleanDisconnect", func(t *testing.T) {
		d := ingestStart(t)
		c, _ := ingestConnect311Will(t, d.MQTTAddr, "valve8", topic, "remove valve8")
		MustPublish(t, c, topic, 1, "add valve8")
		sentinel := MustConnect311(t, d.MQTTAddr, "will-sentinel")
		if got := connected(t, d); got != 2 {
			t.Fatalf("clients connected = %v, want 2", got)
		}
		c.Disconnect(250)
		// mochi sends a will, if any, before it counts the client as gone; the
		// sentinel's QoS 1 event is then queued behind the will's event.
		testutil.WaitFor(t, 10*time.Second, func() error {
			if got := connected(t, d); got != 1 {
				return fmt.Errorf("clients connected = %v, want 1", got)
			}
			return nil
		})
		MustPublish(t, sentinel, "kitchen/range-2/sentinel", 1, "add s")
		ingestMustCounts(t, d.HTTPURL, "range-2", map[string]int64{"gas_on": 1, "sentinel": 1})
	})

	t.Run("BrokerShutdown", func(t *testing.T) {
		st := newIngestStore(false, true)
		d := ingestStart(t, func(o *daemon.Options) { o.Store = st })
		c, _ := ingestConnect311Will(t, d.MQTTAddr, "valve9", topic, "remove valve9")
		MustPublish(t, c, topic, 1, "add valve9")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Fatalf("closing the daemon: %v", err)
		}
		if got := ingestMemCounts(t, st.mem, "range-2"); !maps.Equal(got, map[string]int64{"gas_on": 1}) {
			t.Errorf("after shutdown range-2 = %v, want gas_on 1: a will caused by Arina's own shutdown was ingested", got)
		}
		testutil.WaitFor(t, 10*time.Second, func() error {
			if c.IsConnectionOpen() {
				return errors.New("paho has not noticed the shutdown yet")
			}
			return nil
		})
	})
}

// ingestRawConn is a minimal hand-written MQTT 3.1.1 client: it lets a test choose
// packet ids, which the paho clients do not.
type ingestRawConn struct {
	net.Conn
	tb testing.TB
}

func ingestRemainingLength(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func ingestMQTTString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// ingestRawConnect311 connects with a clean session and closes the connection at cleanup.
func ingestRawConnect311(tb testing.TB, addr, clientID string) *ingestRawConn {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dialing %s: %v", addr, err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	c := &ingestRawConn{Conn: conn, tb: tb}
	body := append(ingestMQTTString("MQTT"), 4, 0x02, 0, 60) // level 4, clean session, keepalive 60s
	body = append(body, ingestMQTTString(clientID)...)
	c.write(append(append([]byte{0x10}, ingestRemainingLength(len(body))...), body...))
	if typ, rest := c.read(); typ != 0x20 || len(rest) != 2 || rest[1] != 0 {
		tb.Fatalf("CONNACK: type %#x body %x", typ, rest)
	}
	return c
}

func (c *ingestRawConn) write(b []byte) {
	c.tb.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(b); err != nil {
		c.tb.Fatalf("writing packet: %v", err)
	}
}

// read reads one packet and returns its first byte and its body.
func (c *ingestRawConn) read() (byte, []byte) {
	c.tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [1]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.tb.Fatalf("reading packet: %v", err)
	}
	n, mult := 0, 1
	for {
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			c.tb.Fatalf("reading packet length: %v", err)
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c, body); err != nil {
		c.tb.Fatalf("reading packet body: %v", err)
	}
	return hdr[0], body
}

// publishQoS1 sends a QoS 1 PUBLISH with packet id and waits for its PUBACK.
func (c *ingestRawConn) publishQoS1(topic, payload string, id uint16) {
	c.tb.Helper()
	body := append(ingestMQTTString(topic), byte(id>>8), byte(id))
	body = append(body, payload...)
	c.write(append(append([]byte{0x32}, ingestRemainingLength(len(body))...), body...))
	typ, rest := c.read()
	if typ != 0x40 || len(rest) != 2 || uint16(rest[0])<<8|uint16(rest[1]) != id {
		c.tb.Fatalf("want PUBACK for packet id %d, got type %#x body %x", id, typ, rest)
	}
}

// publishQoS2 sends a QoS 2 PUBLISH with packet id and completes the exchange.
func (c *ingestRawConn) publishQoS2(topic, payload string, id uint16) {
	c.tb.Helper()
	body := append(ingestMQTTString(topic), byte(id>>8), byte(id))
	body = append(body, payload...)
	c.write(append(append([]byte{0x34}, ingestRemainingLength(len(body))...), body...))
	if typ, rest := c.read(); typ != 0x50 || len(rest) != 2 || uint16(rest[0])<<8|uint16(rest[1]) != id {
		c.tb.Fatalf("want PUBREC for packet id %d, got type %#x body %x", id, typ, rest)
	}
	c.write([]byte{0x62, 2, byte(id >> 8), byte(id)})
	if typ, rest := c.read(); typ != 0x70 || len(rest) != 2 || uint16(rest[0])<<8|uint16(rest[1]) != id {
		c.tb.Fatalf("want PUBCOMP for packet id %d, got type %#x body %x", id, typ, rest)
	}
}

// TestIngest_PacketIDReuse: a client may reuse a packet id as soon as it has its ack. A
// device that always uses id 1 must still have every acknowledged event applied.
func TestIngest_PacketIDReuse(t *testing.T) {
	for _, qos := range []byte{1, 2} {
		t.Run(fmt.Sprintf("QoS%d", qos), func(t *testing.T) {
			d := ingestStart(t)
			for i := range 20 { // subscribers make each relay, and so the broker's ack path, longer
				sub := MustConnect311(t, d.MQTTAddr, fmt.Sprintf("reuse-sub-%d", i))
				if tok := sub.Subscribe("kitchen/#", 0, func(pahomqtt.Client, pahomqtt.Message) {}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					t.Fatalf("subscribing: %v", tok.Error())
				}
			}
			c := ingestRawConnect311(t, d.MQTTAddr, "reuse-raw")
			const n = 2000
			for i := range n {
				payload := fmt.Sprintf("add u%d", i)
				if qos == 1 {
					c.publishQoS1("kitchen/Reuse/fire", payload, 1)
				} else {
					c.publishQoS2("kitchen/Reuse/fire", payload, 1)
				}
			}
			got, _ := arinatest.Counts(t, d.HTTPURL, "Reuse")
			if got["fire"] != n {
				t.Errorf("%d events acknowledged, %d applied: %d acknowledged events are lost", n, got["fire"], n-got["fire"])
			}
		})
	}
}
