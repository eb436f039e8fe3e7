package main

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestServe_LowKeepaliveCountedNotWarned checks that a connection with keepalive 0 (no
// keepalive, legal MQTT) or under the recommended 5 s is counted in
// arina_mqtt_connects_low_keepalive_total and logged at debug only, and that 5 is not
// "below" 5: mochi warned for every such connection (8000 lines for 8000 idle sensors)
// and at 5 said "keepalive=5 recommended=5".
func TestServe_LowKeepaliveCountedNotWarned(t *testing.T) {
	t.Parallel()
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			t.Parallel()
			s := MustServe(t, map[string]string{
				"ARINA_MQTT_LISTEN":      "127.0.0.1:0",
				"ARINA_HTTP_LISTEN":      "127.0.0.1:0",
				"ARINA_STORE_DURABILITY": "none",
				"ARINA_LOG_LEVEL":        level,
			}, "serve")
			for _, ka := range []uint16{0, 3, 5, 60} {
				conn, err := net.Dial("tcp", s.MQTTAddr)
				if err != nil {
					t.Fatal(err)
				}
				c := paho.NewClient(paho.ClientConfig{Conn: conn})
				if _, err := c.Connect(t.Context(), &paho.Connect{ClientID: fmt.Sprintf("ka-%d", ka), CleanStart: true, KeepAlive: ka}); err != nil {
					conn.Close()
					t.Fatalf("connect with keepalive %d: %v", ka, err)
				}
				_ = c.Disconnect(&paho.Disconnect{})
			}
			metric := regexp.MustCompile(`(?m)^arina_mqtt_connects_low_keepalive_total (\S+)$`)
			resp, body, err := apiGet(t.Context(), "http://"+s.HTTPAddr+"/metrics", 16<<20)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /metrics = %v, %v", resp, err)
			}
			if m := metric.FindSubmatch(body); m == nil || string(m[1]) != "2" {
				t.Errorf("arina_mqtt_connects_low_keepalive_total = %q, want 2 (keepalive 0 and 3; not 5 or 60)", m)
			}
			if err := s.Stop(t, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			var debugLines []string
			for line := range strings.Lines(s.Stderr.String()) {
				if !strings.Contains(line, "keepalive") || strings.Contains(line, "arina started") {
					continue
				}
				if !strings.Contains(line, "level=DEBUG") {
					t.Errorf("keepalive logged above debug: %s", line)
				}
				debugLines = append(debugLines, line)
				if strings.Contains(line, "keepalive=5 ") || strings.Contains(line, "keepalive=60 ") {
					t.Errorf("keepalive of at least the recommended 5 s logged: %s", line)
				}
			}
			want := 0
			if level == "debug" {
				want = 2
			}
			if len(debugLines) != want {
				t.Errorf("%d keepalive lines at log.level %s, want %d: %q", len(debugLines), level, want, debugLines)
			}
		})
	}
}
