package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/arina-dev/arina/internal/config"
	"github.com/arina-dev/arina/sparkplug"
)

func TestSparkplugConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*config.SparkplugConfig)
	}{
		{"Defaults", "", func(*config.SparkplugConfig) {}},
		{"EdgeDevice", "", func(s *config.SparkplugConfig) { s.Content, s.HostID = "edge_device", "scada-1" }},
		{"DisabledIsNotChecked", "", func(s *config.SparkplugConfig) { s.Enabled, s.Content = false, "nope" }},
		{"Content", "sparkplug.content", func(s *config.SparkplugConfig) { s.Content = "group" }},
		{"HostID", "sparkplug.host_id", func(s *config.SparkplugConfig) { s.HostID = "a/b" }},
		{"RuleGlob", "sparkplug.rules[0].metric", func(s *config.SparkplugConfig) { s.Rules = []config.SparkplugRule{{Metric: "[", Reaction: "x"}} }},
		{"RuleUser", "sparkplug.rules[0].user", func(s *config.SparkplugConfig) { s.Rules = []config.SparkplugRule{{Metric: "x", User: "name"}} }},
		{"RuleReaction", "sparkplug.rules[0].reaction", func(s *config.SparkplugConfig) { s.Rules = []config.SparkplugRule{{Metric: "Inputs/*"}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config.Default()
			tc.mutate(&c.Sparkplug)
			wantValidate(t, c, tc.key, sparkplug.ErrInvalidOptions)
		})
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
	c := MustLoad(t, nil, "check-config", "--config", file)
	want := []sparkplug.Rule{{Metric: "Inputs/Badge/*", Reaction: "active", User: "value"}, {Metric: "debug*", Ignore: true}}
	if got := c.Sparkplug.Options().Rules; !reflect.DeepEqual(got, want) {
		t.Fatalf("rules %+v, want %+v", got, want)
	}
}

func TestSparkplugConfig_BridgeNeedsDecoder(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Bridge.Upstreams = []config.UpstreamConfig{{Name: "factory", URL: "tcp://127.0.0.1:1883", ClientID: "arina", Sparkplug: true}}
	wantValidate(t, c, "", nil)
	c.Sparkplug.Enabled = false
	wantValidate(t, c, "bridge.upstreams[0].sparkplug", config.ErrInvalidChoice)
}
