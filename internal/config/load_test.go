package config

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/arina-dev/arina/bridge"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/sparkplug"
)

// load loads the configuration as the commands do, from env and (unless "") the file.
func load(env map[string]string, file string) (Config, error) {
	fs := pflag.NewFlagSet("arina", pflag.ContinueOnError)
	fs.String("config", "", "")
	if file != "" {
		if err := fs.Set("config", file); err != nil {
			return Config{}, err
		}
	}
	return Load(fs, func(key string) string { return env[key] })
}

// mustLoad is load that fails the test on an error.
func mustLoad(t *testing.T, env map[string]string, file string) Config {
	t.Helper()
	c, err := load(env, file)
	if err != nil {
		t.Fatalf("Load(env %v, file %q): %v", env, file, err)
	}
	return c
}

// mustEnvOptions loads the configuration from env and returns the daemon options it
// makes.
func mustEnvOptions(t *testing.T, env map[string]string) daemon.Options {
	t.Helper()
	c := mustLoad(t, env, "")
	o, err := c.DaemonOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// writeConfig writes yaml to a file of the test's and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "arina.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHomeAssistantConfig_Env(t *testing.T) {
	t.Parallel()
	o := mustEnvOptions(t, map[string]string{"ARINA_MQTT_HOMEASSISTANT_ENABLED": "true",
		"ARINA_MQTT_HOMEASSISTANT_DISCOVERY_PREFIX": "ha", "ARINA_STORE_DURABILITY": "none"})
	host, _ := os.Hostname()
	ha := o.MQTT.HomeAssistant
	if ha == nil || ha.DiscoveryPrefix != "ha" || ha.NodeID == "" || (host != "" && ha.NodeID != host) {
		t.Fatalf("home assistant options %+v, want prefix ha and node id the host name %q", ha, host)
	}
	if o := mustEnvOptions(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}); o.MQTT.HomeAssistant != nil {
		t.Fatalf("by default: %+v; want discovery off", o.MQTT.HomeAssistant)
	}
	if p := Default().MQTT.HomeAssistant.DiscoveryPrefix; p != "homeassistant" {
		t.Fatalf("default discovery prefix %q, want homeassistant", p)
	}
}

func TestHistoryConfig_Env(t *testing.T) {
	t.Parallel()
	o := mustEnvOptions(t, map[string]string{"ARINA_HISTORY_WINDOW": "5m", "ARINA_HISTORY_RESOLUTION": "1s",
		"ARINA_HISTORY_MAX_SETS": "7", "ARINA_STORE_DURABILITY": "none"})
	if o.NoHistory || o.History.Window != 5*time.Minute || o.History.Resolution != time.Second || o.History.MaxSets != 7 {
		t.Fatalf("daemon history options %+v (off %v), want 1s over 5m, 7 sets", o.History, o.NoHistory)
	}
	env := map[string]string{"ARINA_HISTORY_ENABLED": "false", "ARINA_HISTORY_WINDOW": "1s"}
	if _, err := load(env, ""); err == nil || !strings.Contains(err.Error(), "history.window") {
		t.Fatalf("a window below the resolution: %v, want a history.window error", err)
	}
}

func TestSparkplugConfig_Options(t *testing.T) {
	t.Parallel()
	if o := mustEnvOptions(t, map[string]string{"ARINA_STORE_DURABILITY": "none"}); o.MQTT.Sparkplug == nil ||
		!reflect.DeepEqual(*o.MQTT.Sparkplug, sparkplug.Options{Content: sparkplug.ContentEdge}) {
		t.Fatalf("default sparkplug options %+v, want on with content edge", o.MQTT.Sparkplug)
	}
	if o := mustEnvOptions(t, map[string]string{"ARINA_STORE_DURABILITY": "none", "ARINA_SPARKPLUG_ENABLED": "false"}); o.MQTT.Sparkplug != nil {
		t.Fatalf("sparkplug.enabled false: options %+v, want nil", o.MQTT.Sparkplug)
	}
	o := mustEnvOptions(t, map[string]string{"ARINA_STORE_DURABILITY": "none", "ARINA_SPARKPLUG_CONTENT": "edge_device",
		"ARINA_SPARKPLUG_HOST_ID": "scada"})
	if o.MQTT.Sparkplug.Content != sparkplug.ContentEdgeDevice || o.MQTT.Sparkplug.HostID != "scada" {
		t.Fatalf("env: options %+v, want edge_device and host scada", o.MQTT.Sparkplug)
	}

	file := filepath.Join(t.TempDir(), "arina.yaml")
	yaml := "store:\n  durability: none\nsparkplug:\n  rules:\n    - metric: \"Inputs/Badge/*\"\n      reaction: active\n      user: value\n    - metric: \"debug*\"\n      ignore: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, nil, file)
	want := []sparkplug.Rule{{Metric: "Inputs/Badge/*", Reaction: "active", User: "value"}, {Metric: "debug*", Ignore: true}}
	if got := c.Sparkplug.Options().Rules; !reflect.DeepEqual(got, want) {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
}

// TestDaemonOptions_FromConfig: what the file says reaches the parts: count topics,
// batch limit and the bridge's upstreams.
func TestDaemonOptions_FromConfig(t *testing.T) {
	path := writeConfig(t, `
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
	cfg, err := load(nil, path)
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
	if d := Default(); d.MQTT.CountsPrefix != "arina/counts" {
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
	path := writeConfig(t, broken+"      colour: blue\n")
	if _, err := load(nil, path); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("loadConfig = %v, want an error naming colour", err)
	}
	path = writeConfig(t, broken)
	_, err := load(nil, path)
	if !errors.Is(err, bridge.ErrInvalidUpstream) {
		t.Fatalf("loadConfig = %v, want ErrInvalidUpstream", err)
	}
	for _, want := range []string{"upstreams[0]", "client_id is required", "scheme", "{content}", "ca_file", `name "factory" is used twice`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
