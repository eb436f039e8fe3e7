package config

import (
	"errors"
	"os"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/daemon"
)

// HomeAssistantConfig is the mqtt.homeassistant section: Home Assistant MQTT discovery
// of the count topics (broker/homeassistant.go).
type HomeAssistantConfig struct {
	Enabled         bool   `mapstructure:"enabled"`
	DiscoveryPrefix string `mapstructure:"discovery_prefix"`
	NodeID          string `mapstructure:"node_id"` // "": the host name
}

func defaultHomeAssistant() HomeAssistantConfig {
	return HomeAssistantConfig{DiscoveryPrefix: broker.DefaultDiscoveryPrefix}
}

// validate reports the problems of the section through bad; counts is mqtt.counts_prefix.
func (h HomeAssistantConfig) validate(counts string, bad func(key string, v any, err error)) {
	if !h.Enabled {
		return
	}
	if err := broker.ValidatePrefix(h.DiscoveryPrefix); err != nil {
		bad("mqtt.homeassistant.discovery_prefix", h.DiscoveryPrefix, err)
	}
	if counts == "" {
		bad("mqtt.homeassistant.enabled", h.Enabled, errors.New("needs the count topics: mqtt.counts_prefix is empty"))
	}
}

// nodeID is the configured node id, or the host name, or "arina".
func (h HomeAssistantConfig) nodeID() string {
	if h.NodeID != "" {
		return h.NodeID
	}
	if host, err := os.Hostname(); err == nil && host != "" {
		return host
	}
	return "arina"
}

// apply sets the broker's Home Assistant options.
func (h HomeAssistantConfig) apply(o *daemon.Options) {
	if !h.Enabled {
		return
	}
	o.MQTT.HomeAssistant = &broker.HomeAssistant{DiscoveryPrefix: h.DiscoveryPrefix, NodeID: h.nodeID()}
}
