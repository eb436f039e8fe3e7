package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/arina-dev/arina/sparkplug"
)

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
