package config

import (
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
