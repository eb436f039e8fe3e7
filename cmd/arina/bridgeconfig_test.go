package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arina-dev/arina/bridge"
	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/internal/testutil"
)

// TestDaemonOptions_FromConfig: what the file says reaches the parts: count topics,
// batch limit and the bridge's upstreams.
func TestDaemonOptions_FromConfig(t *testing.T) {
	path := MustWriteConfig(t, `
mqtt:
  counts_prefix: "plant/counts"
  counts_interval: 1s
  max_batch_payload: 2048
bridge:
  upstreams:
    - name: factory
      url: tcp://10.0.0.5:1883
      client_id: arina-node1-factory
      username: arina
      password: secret
      topics: ["site1/{content}/{reaction}", "site2/+/{content}/{reaction}"]
      share_group: arina
      max_reconnect_interval: 5s
`)
	cfg, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	o, err := cfg.DaemonOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if o.MQTT.CountsPrefix != "plant/counts" || o.MQTT.CountsInterval != time.Second || o.MQTT.MaxBatchPayload != 2048 {
		t.Errorf("mqtt options %+v, want counts plant/counts every 1s and batch limit 2048", o.MQTT)
	}
	want := bridge.Upstream{Name: "factory", URL: "tcp://10.0.0.5:1883", ClientID: "arina-node1-factory",
		Username: "arina", Password: "secret", Topics: []string{"site1/{content}/{reaction}", "site2/+/{content}/{reaction}"},
		ShareGroup: "arina", MaxReconnectInterval: 5 * time.Second}
	if len(o.Upstreams) != 1 || !reflect.DeepEqual(o.Upstreams[0], want) {
		t.Errorf("upstreams %+v, want [%+v]", o.Upstreams, want)
	}
	if d := config.Default(); d.MQTT.CountsPrefix != "arina/counts" {
		t.Errorf("default counts prefix %q, want arina/counts", d.MQTT.CountsPrefix)
	}
}

// TestLoadConfig_BadUpstreams: every problem of the bridge section is reported, with
// its entry, before anything starts.
func TestLoadConfig_BadUpstreams(t *testing.T) {
	const broken = `
bridge:
  upstreams:
    - name: factory
      url: http://10.0.0.5
      topics: ["site1/+/+"]
      tls:
        ca_file: /nonexistent/ca.pem
    - name: factory
      url: tcp://x:1883
      client_id: a
      topics: ["s/{content}/{reaction}"]
`
	// An unknown key inside an entry is refused first, naming the key.
	path := MustWriteConfig(t, broken+"      colour: blue\n")
	if _, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil)); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("loadConfig = %v, want an error naming colour", err)
	}
	path = MustWriteConfig(t, broken)
	_, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil))
	if !errors.Is(err, bridge.ErrInvalidUpstream) {
		t.Fatalf("loadConfig = %v, want ErrInvalidUpstream", err)
	}
	for _, want := range []string{"upstreams[0]", "client_id is required", "scheme", "{content}", "ca_file", `name "factory" is used twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestRun_Health: `arina health` exits 0 while the daemon is up and fails once it is
// gone, for container health checks.
func TestRun_Health(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	var out syncBuffer
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil {
		t.Fatalf("arina health: %v; output %s", err, out.String())
	}
	if err := run(context.Background(), []string{"health", "--ready", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil || !strings.Contains(out.String(), `"ready"`) {
		t.Fatalf("arina health --ready: %v; output %s", err, out.String())
	}
	if err := s.Stop(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err == nil {
		t.Fatal("arina health succeeded with the daemon stopped")
	}
}

// TestServe_SIGHUPDoesNotStop: SIGHUP (systemctl reload) reloads; it must never end
// the daemon, as Go's default for SIGHUP would.
func TestServe_SIGHUPDoesNotStop(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(s.Stderr.String(), "reloaded") {
			return errors.New(`no "reloaded" log line yet`)
		}
		return nil
	})
	var out syncBuffer
	if err := run(context.Background(), []string{"health", "--server", s.HTTPAddr}, &out, &out, mapEnv(nil)); err != nil {
		t.Fatalf("daemon not healthy after SIGHUP: %v %s", err, out.String())
	}
}

// TestRun_BenchQueries: `arina bench --queries` reads counts over HTTP and reports a rate.
func TestRun_BenchQueries(t *testing.T) {
	s := MustServe(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}, "serve", "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	stdout, _, err := MustRun(t, nil, "bench", "--queries", "--http", s.HTTPAddr, "--publishers", "2", "--duration", "300ms", "--json")
	if err != nil {
		t.Fatalf("bench --queries: %v", err)
	}
	var rep struct {
		Requests int64   `json:"requests"`
		Errors   int64   `json:"errors"`
		Rate     float64 `json:"rate"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Requests == 0 || rep.Errors != 0 || rep.Rate <= 0 {
		t.Fatalf("report %q (%v)", stdout, err)
	}
}
