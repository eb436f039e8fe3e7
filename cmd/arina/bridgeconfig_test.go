package main

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/broker"
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
	cfg, err := loadConfig(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	o := cfg.daemonOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if o.MQTT.CountsPrefix != "plant/counts" || o.MQTT.CountsInterval != time.Second || o.MQTT.MaxBatchPayload != 2048 {
		t.Errorf("mqtt options %+v, want counts plant/counts every 1s and batch limit 2048", o.MQTT)
	}
	want := broker.Upstream{Name: "factory", URL: "tcp://10.0.0.5:1883", ClientID: "arina-node1-factory",
		Username: "arina", Password: "secret", Topics: []string{"site1/{content}/{reaction}", "site2/+/{content}/{reaction}"},
		ShareGroup: "arina", MaxReconnectInterval: 5 * time.Second}
	if len(o.Upstreams) != 1 || !equalUpstream(o.Upstreams[0], want) {
		t.Errorf("upstreams %+v, want [%+v]", o.Upstreams, want)
	}
	if d := DefaultConfig(); d.MQTT.CountsPrefix != "arina/counts" {
		t.Errorf("default counts prefix %q, want arina/counts", d.MQTT.CountsPrefix)
	}
}

func equalUpstream(a, b broker.Upstream) bool {
	return a.Name == b.Name && a.URL == b.URL && a.ClientID == b.ClientID && a.Username == b.Username &&
		a.Password == b.Password && strings.Join(a.Topics, ",") == strings.Join(b.Topics, ",") &&
		a.ShareGroup == b.ShareGroup && a.MaxReconnectInterval == b.MaxReconnectInterval && a.TLS == b.TLS
}

// TestLoadConfig_BadUpstreams: every problem of the bridge section is reported, with
// its entry, before anything starts.
func TestLoadConfig_BadUpstreams(t *testing.T) {
	path := MustWriteConfig(t, `
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
      colour: blue
`)
	_, err := loadConfig(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil))
	if err == nil {
		t.Fatal("loadConfig accepted a broken bridge section")
	}
	for _, want := range []string{"colour"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	path = MustWriteConfig(t, `
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
`)
	_, err = loadConfig(MustFlags(t, mapEnv(nil), "serve", "--config", path), mapEnv(nil))
	if !errors.Is(err, broker.ErrInvalidUpstream) {
		t.Fatalf("loadConfig = %v, want ErrInvalidUpstream", err)
	}
	for _, want := range []string{"upstreams[0]", "client_id is required", "scheme", "{content}", "ca_file", `name "factory" is used twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
