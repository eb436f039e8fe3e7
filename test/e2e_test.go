// Package test holds Arina's black-box end-to-end tests: a whole daemon on loopback,
// driven by real MQTT clients and HTTP.
package test

import (
	"fmt"
	"maps"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// MustConnect311 connects a paho MQTT 3.1.1 client to addr and disconnects it at cleanup.
func MustConnect311(tb testing.TB, addr, clientID string) pahomqtt.Client {
	tb.Helper()
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connecting %s: %v", clientID, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(100) })
	return c
}

// MustPublish publishes and waits for the publish to complete (PUBACK for QoS 1).
func MustPublish(tb testing.TB, c pahomqtt.Client, topic string, qos byte, payload string) {
	tb.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publishing %q to %s: %v", payload, topic, tok.Error())
	}
}

func TestIngest_MQTT311ToHTTPCounts(t *testing.T) {
	d := arinatest.Start(t)
	c := MustConnect311(t, d.MQTTAddr, "t-311")
	for _, m := range []string{"add Sam", "add Ann", `{"user_id":"Bob","action":"add"}`, "add Sam", "remove Ann", "remove Zed"} {
		MustPublish(t, c, "kitchen/Stew/fire", 1, m)
	}
	MustPublish(t, c, "kitchen/Stew/yum", 1, "add Sam")

	// The PUBACK arrived only after apply: the counts are exact at once, no polling.
	got, status := arinatest.Counts(t, d.HTTPURL, "Stew")
	if want := map[string]int64{"fire": 2, "yum": 1}; status != 200 || !maps.Equal(got, want) {
		t.Fatalf("counts = %v (status %d), want %v", got, status, want)
	}
	if _, status := arinatest.Counts(t, d.HTTPURL, "Unknown"); status != 404 {
		t.Fatalf("unknown content status = %d, want 404", status)
	}
}

func TestIngest_QoS0(t *testing.T) {
	d := arinatest.Start(t)
	c := MustConnect311(t, d.MQTTAddr, "t-qos0")
	for i := range 50 {
		MustPublish(t, c, "kitchen/Soup/fire", 0, fmt.Sprintf("add u%d", i))
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		got, _ := arinatest.Counts(t, d.HTTPURL, "Soup")
		if got["fire"] != 50 {
			return fmt.Errorf("fire = %d, want 50", got["fire"])
		}
		return nil
	})
}
