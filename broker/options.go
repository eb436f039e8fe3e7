package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/arina-dev/arina/internal/optcheck"
)

// Valid ranges of the options, as Validate checks them.
const (
	MinMaxEventPayload = 16
	MaxMaxEventPayload = 1 << 20
	MinMaxBatchPayload = 1024
	MaxMaxBatchPayload = 16 << 20
	MinCountsInterval  = 10 * time.Millisecond
	MaxCountsInterval  = time.Minute
	MaxMaxConnections  = 1 << 24
	MaxMaxPacketSize   = 256 << 20
	MinMaxClientIDLen  = 23 // MQTT 3.1.1 servers must accept at least 23 bytes
	MaxMaxClientIDLen  = 65535
	MaxPublishRate     = 1e9
	MaxPublishBurst    = 1e9
	// packetOverhead is the room a packet needs beside its payload (topic, properties).
	packetOverhead = 1024
)

// Validate reports every option outside its range at once, each as an
// *optcheck.FieldError named by its configuration key (max_connections,
// ws.allowed_origins). It checks options as a configuration sets them, every limit
// explicit: a zero that New replaces by its default is out of range here. The
// listen addresses, users and TLS are the caller's (internal/config).
func (o Options) Validate() error {
	var errs optcheck.Errors
	l := o.Limits
	// A packet must hold the largest payload accepted (when that limit is itself valid).
	minPacket := float64(packetOverhead)
	if o.MaxEventPayload <= MaxMaxEventPayload && o.MaxBatchPayload <= MaxMaxBatchPayload {
		minPacket = float64(max(o.MaxEventPayload, o.MaxBatchPayload) + packetOverhead)
	}
	errs.Range("max_connections", float64(l.MaxConnections), 1, MaxMaxConnections)
	errs.Range("max_packet_size", float64(l.MaxPacketSize), minPacket, MaxMaxPacketSize)
	errs.Range("max_client_id_len", float64(l.MaxClientIDLen), MinMaxClientIDLen, MaxMaxClientIDLen)
	errs.Range("publish_rate", l.PublishRate, 0, MaxPublishRate)
	errs.Range("publish_burst", float64(l.PublishBurst), 0, MaxPublishBurst)
	if err := ValidatePrefix(o.TopicPrefix); err != nil {
		errs.Add("topic_prefix", o.TopicPrefix, err)
	}
	if o.CountsPrefix != "" {
		if err := ValidateCountsPrefix(o.CountsPrefix, o.TopicPrefix); err != nil {
			errs.Add("counts_prefix", o.CountsPrefix, err)
		}
	}
	errs.Duration("counts_interval", o.CountsInterval, MinCountsInterval, MaxCountsInterval, "10ms to 1m")
	if o.MaxEventPayload < MinMaxEventPayload || o.MaxEventPayload > MaxMaxEventPayload {
		errs.Add("max_event_payload", o.MaxEventPayload, fmt.Errorf("%w: want %d to %d bytes", optcheck.ErrOutOfRange, MinMaxEventPayload, MaxMaxEventPayload))
	}
	if o.MaxBatchPayload < MinMaxBatchPayload || o.MaxBatchPayload > MaxMaxBatchPayload {
		errs.Add("max_batch_payload", o.MaxBatchPayload, fmt.Errorf("%w: want %d to %d bytes", optcheck.ErrOutOfRange, MinMaxBatchPayload, MaxMaxBatchPayload))
	}
	if err := CheckOrigins(l.AllowedOrigins); err != nil {
		errs.Add("ws.allowed_origins", l.AllowedOrigins, fmt.Errorf("%w: %v", optcheck.ErrInvalidChoice, err))
	}
	if h := o.HomeAssistant; h != nil {
		if err := ValidatePrefix(h.DiscoveryPrefix); err != nil {
			errs.Add("homeassistant.discovery_prefix", h.DiscoveryPrefix, err)
		}
		if o.CountsPrefix == "" {
			errs.Add("homeassistant.enabled", true, errors.New("needs the count topics: mqtt.counts_prefix is empty"))
		} else if err := homeAssistantUnder(o.CountsPrefix, h); err != nil {
			errs.Add("counts_prefix", o.CountsPrefix, err)
		}
	}
	return errs.Err()
}
