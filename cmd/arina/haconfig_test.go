package main

import (
	"os"
	"testing"

	"github.com/arina-dev/arina/internal/config"
)

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
	if p := config.Default().MQTT.HomeAssistant.DiscoveryPrefix; p != "homeassistant" {
		t.Fatalf("default discovery prefix %q, want homeassistant", p)
	}
}
