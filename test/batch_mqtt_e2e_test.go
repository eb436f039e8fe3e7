package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/testutil"
)

func batchItem(content, reaction, user, action string) string {
	return fmt.Sprintf(`{"action":%q,"content_id":%q,"reaction_type":%q,"user_id":%q}`, action, content, reaction, user)
}

// TestMQTTBatch_Gateway: a gateway publishes many events in one message to
// kitchen/batch, as NDJSON (mosquitto_pub, MQTT 3.1.1) and as a JSON array (paho, MQTT
// 5); the PUBACK means every valid item is applied, in order.
func TestMQTTBatch_Gateway(t *testing.T) {
	bin := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	d := arinatest.Start(t)

	var lines []string
	for i := range 50 {
		lines = append(lines, batchItem("line-1", "busy", fmt.Sprintf("station-%d", i), "add"))
	}
	lines = append(lines, batchItem("line-1", "busy", "station-0", "remove"), batchItem("line-2", "busy", "station-9", "add"))
	if out, err := ingestMosquittoPub(t, bin, d.MQTTAddr, "-q", "1", "-t", "kitchen/batch", "-m", strings.Join(lines, "\n")); err != nil {
		t.Fatalf("mosquitto_pub batch: %v\n%s", err, out)
	}
	// QoS 1 acked: applied, nothing to poll.
	if counts, _ := arinatest.Counts(t, d.HTTPURL, "line-1"); counts["busy"] != 49 {
		t.Errorf("line-1 counts %v after the NDJSON batch, want busy 49", counts)
	}
	if counts, _ := arinatest.Counts(t, d.HTTPURL, "line-2"); counts["busy"] != 1 {
		t.Errorf("line-2 counts %v, want busy 1", counts)
	}

	c := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "gateway-5", CleanStart: true, KeepAlive: 30}, nil)
	publish := func(payload string) *paho.PublishResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pr, err := c.Publish(ctx, &paho.Publish{Topic: "kitchen/batch", QoS: 1, Payload: []byte(payload)})
		if err != nil && pr == nil {
			t.Fatalf("publish batch: %v", err)
		}
		return pr
	}
	// A JSON array with invalid items: they are dropped and counted, the rest apply.
	before := metric(t, d.HTTPURL, `arina_events_rejected_total{reason="invalid_action",source="mqtt"}`)
	pr := publish("[" + strings.Join([]string{
		batchItem("line-3", "busy", "a", "add"),
		batchItem("line-3", "busy", "b", "jump"), // invalid action
		batchItem("line-3", "busy", "c", "add"),
		`{"action":"add","content_id":"line-3","reaction_type":"busy"}`, // no user
	}, ",") + "]")
	if pr.ReasonCode != 0 {
		t.Errorf("partly invalid batch: reason %#x, want 0 (the valid items applied)", pr.ReasonCode)
	}
	if counts, _ := arinatest.Counts(t, d.HTTPURL, "line-3"); counts["busy"] != 2 {
		t.Errorf("line-3 counts %v, want busy 2 (a, c)", counts)
	}
	if got := metric(t, d.HTTPURL, `arina_events_rejected_total{reason="invalid_action",source="mqtt"}`) - before; got != 1 {
		t.Errorf("invalid_action rejects grew by %v, want 1", got)
	}
	// Nothing valid, or not a batch at all: MQTT 5 gets 0x99 and nothing applies.
	for _, bad := range []string{
		"[" + batchItem("line-4", "busy", "a", "jump") + "]",
		`[{"action":"add"`,
		"",
		"[" + strings.Repeat(batchItem("line-4", "busy", "a", "add")+",", 1000) + batchItem("line-4", "busy", "z", "add") + "]",
	} {
		if pr := publish(bad); pr.ReasonCode != 0x99 {
			t.Errorf("batch %.40q: reason %#x, want 0x99", bad, pr.ReasonCode)
		}
	}
	if _, status := arinatest.Counts(t, d.HTTPURL, "line-4"); status != 404 {
		t.Errorf("line-4 status %d, want 404: nothing of the refused batches applied", status)
	}
}
