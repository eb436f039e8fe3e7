package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/sparkplug"
)

// TestRun_SmallPlant drives a real daemon (embedded broker, memory store, change feed)
// with a small plant in both modes: every change is acked, seen on the stream and
// left as sent, and the report counts them.
func TestRun_SmallPlant(t *testing.T) {
	for _, mode := range []string{"sparkplug", "json"} {
		t.Run(mode, func(t *testing.T) {
			d := arinatest.Start(t, func(o *daemon.Options) { o.MQTT.Sparkplug = &sparkplug.Options{} })
			c := config{broker: d.MQTTAddr, httpAddr: strings.TrimPrefix(d.HTTPURL, "http://"), mode: mode,
				group: "plant", metric: "on", prefix: "spb-", topicPrefix: "kitchen", nodes: 2, devices: 20,
				rate: 400, duration: time.Second, warmup: 200 * time.Millisecond, timeout: 10 * time.Second, pid: os.Getpid()}
			if mode == "json" {
				c.prefix = "json-spb-"
			}
			r, err := run(c)
			if err != nil {
				t.Fatalf("run: %v (report %+v)", err, r)
			}
			if r.Sent < 200 || r.Seen != r.Sent || r.Visible.N != int(r.Sent) || r.PubAck.N != int(r.Sent) {
				t.Errorf("sent %d, seen %d, visible n %d, puback n %d: want every measured change acked and seen", r.Sent, r.Seen, r.Visible.N, r.PubAck.N)
			}
			if r.NotSeen != 0 || r.Unmatched != 0 || r.Mismatches != 0 || r.Stale != 0 || r.AckErrors != 0 {
				t.Errorf("report %+v: want nothing lost, unmatched, stale or differing", r)
			}
			if r.DaemonCPUUS <= 0 {
				t.Errorf("daemon CPU per metric %v, want > 0 (the daemon is this process)", r.DaemonCPUUS)
			}
		})
	}
}
