package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestHomeAssistantConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*Config)
	}{
		{"Defaults", "", func(*Config) {}},
		{"Enabled", "", func(c *Config) { c.MQTT.HomeAssistant.Enabled = true }},
		{"OffIgnoresPrefix", "", func(c *Config) { c.MQTT.HomeAssistant.DiscoveryPrefix = "#" }},
		{"BadPrefix", "mqtt.homeassistant.discovery_prefix", func(c *Config) {
			c.MQTT.HomeAssistant.Enabled, c.MQTT.HomeAssistant.DiscoveryPrefix = true, "home/+"
		}},
		{"NoCountTopics", "mqtt.homeassistant.enabled", func(c *Config) {
			c.MQTT.HomeAssistant.Enabled, c.MQTT.CountsPrefix = true, ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			err := c.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != tc.key {
				t.Fatalf("Validate() = %v, want a %s error", err, tc.key)
			}
		})
	}
}

func TestHomeAssistantConfig_Env(t *testing.T) {
	t.Parallel()
	env := mapEnv(map[string]string{"ARINA_MQTT_HOMEASSISTANT_ENABLED": "true",
		"ARINA_MQTT_HOMEASSISTANT_DISCOVERY_PREFIX": "ha", "ARINA_STORE_DURABILITY": "none"})
	cfg, err := loadConfig(MustFlags(t, env, "check-config"), env)
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.daemonOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	ha := o.MQTT.HomeAssistant
	if ha == nil || ha.DiscoveryPrefix != "ha" || ha.NodeID == "" || (host != "" && ha.NodeID != host) {
		t.Fatalf("home assistant options %+v, want prefix ha and node id the host name %q", ha, host)
	}
	env = mapEnv(map[string]string{"ARINA_STORE_DURABILITY": "none"})
	if cfg, err = loadConfig(MustFlags(t, env, "check-config"), env); err != nil {
		t.Fatal(err)
	}
	if o, err = cfg.daemonOptions(slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil || o.MQTT.HomeAssistant != nil {
		t.Fatalf("by default: %+v, %v; want discovery off", o.MQTT.HomeAssistant, err)
	}
	if !strings.Contains(cfg.MQTT.HomeAssistant.DiscoveryPrefix, "homeassistant") {
		t.Fatalf("default discovery prefix %q", cfg.MQTT.HomeAssistant.DiscoveryPrefix)
	}
}
