package test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/store"
)

func durable(dir, mode string) func(*daemon.Options) {
	return func(o *daemon.Options) {
		o.Durability = mode
		o.Durable.Dir = dir
		o.Durable.MinFreeBytes = 1
	}
}

// metric returns the value of one sample line of /metrics, e.g. `arina_ingest_batch_size_count`.
func metric(tb testing.TB, baseURL, sample string) float64 {
	tb.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		tb.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestDurable_PipelinedAcks: one connection with many QoS 1 publishes in flight is
// acknowledged in batches (group commit), not one fsync per publish, and every
// acknowledged event survives a restart on the same directory.
func TestDurable_PipelinedAcks(t *testing.T) {
	dir := t.TempDir()
	d := arinatest.Start(t, durable(dir, store.DurabilitySync))
	c := MustConnect311(t, d.MQTTAddr, "gateway-1")
	const n = 500
	toks := make([]pahomqtt.Token, n)
	for i := range n { // all in flight at once
		toks[i] = c.Publish("kitchen/Line/busy", 1, false, fmt.Sprintf("add station-%d", i))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	got, _ := arinatest.Counts(t, d.HTTPURL, "Line")
	if got["busy"] != n {
		t.Fatalf("busy = %d, want %d", got["busy"], n)
	}
	batches := metric(t, d.HTTPURL, "arina_ingest_batch_size_count")
	t.Logf("%d events in %v writer batches", n, batches)
	if batches >= n/2 {
		t.Fatalf("%v batches for %d pipelined publishes: acks are serialized per event", batches, n)
	}
	c.Disconnect(100)
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	d2 := arinatest.Start(t, durable(dir, store.DurabilitySync))
	got2, _ := arinatest.Counts(t, d2.HTTPURL, "Line")
	if !maps.Equal(got, got2) {
		t.Fatalf("after restart counts = %v, want %v", got2, got)
	}
}
