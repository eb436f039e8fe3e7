package main

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/testutil"
)

// TestServe_DebugLogAcceptedQoS1 checks what log.level debug says about accepted QoS 1
// events: one short line each, and no "rejected" line. The ingest hook holds each PUBACK
// back until the event is applied by returning mochi's ErrRejectPacket; mochi used to log
// that as "publish packet rejected" with a dump of the whole packet (2.5 KB) for every
// accepted event. A publish really refused (a malformed payload) is still logged as such.
func TestServe_DebugLogAcceptedQoS1(t *testing.T) {
	t.Parallel()
	mosquittoPub := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	s := MustServe(t, map[string]string{
		"ARINA_MQTT_LISTEN":      "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":      "127.0.0.1:0",
		"ARINA_STORE_DURABILITY": "none",
		"ARINA_LOG_LEVEL":        "debug",
	}, "serve")
	host, port, _ := net.SplitHostPort(s.MQTTAddr)
	const n = 3
	for i := range n {
		// MQTT 5, QoS 1: arina pub waits for the PUBACK.
		if out, _, err := MustRun(t, nil, "pub", "--broker", s.MQTTAddr, "--content", "Stew", "--reaction", "fire",
			"--user", fmt.Sprintf("v5-%d", i)); err != nil {
			t.Fatalf("pub = %q, %v", out, err)
		}
		// MQTT 3.1.1, QoS 1: mosquitto_pub waits for the PUBACK too.
		out, err := exec.CommandContext(t.Context(), mosquittoPub, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1",
			"-i", fmt.Sprintf("sensor-%d", i), "-t", "kitchen/Stew/fire", "-m", fmt.Sprintf("add v3-%d", i)).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub = %q, %v", out, err)
		}
	}
	// A refused one, to show the log still says so: 3.1.1 is acked and the event dropped.
	out, err := exec.CommandContext(t.Context(), mosquittoPub, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1",
		"-i", "bad-sensor", "-t", "kitchen/Stew/fire", "-m", "juggle x").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub = %q, %v", out, err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(s.Stderr.String(), "bad-sensor") {
			return fmt.Errorf("no log line for the malformed event yet")
		}
		return nil
	})
	if err := s.Stop(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	var held, rejected int
	for line := range strings.Lines(s.Stderr.String()) {
		if len(line) > 400 {
			t.Errorf("log line of %d bytes, want short lines: %.200s...", len(line), line)
		}
		switch {
		case strings.Contains(line, "ack held until applied"):
			held++
		case strings.Contains(line, "rejected"):
			if !strings.Contains(line, "bad-sensor") {
				t.Errorf("rejection logged for an accepted event: %s", line)
			}
			rejected++
		}
	}
	if held != 2*n {
		t.Errorf("%d \"ack held until applied\" lines, want one per accepted event: %d", held, 2*n)
	}
	if rejected == 0 {
		t.Errorf("no line says the malformed event was rejected; log:\n%s", s.Stderr)
	}
}
