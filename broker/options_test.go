package broker_test

import (
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/optcheck"
)

// validOptions are the broker's options as the default configuration sets them.
func validOptions() broker.Options {
	return broker.Options{TopicPrefix: "kitchen", MaxEventPayload: broker.DefaultMaxEventPayload,
		MaxBatchPayload: broker.DefaultMaxBatchPayload, CountsPrefix: broker.DefaultCountsPrefix,
		CountsInterval: broker.DefaultCountsInterval,
		Limits: broker.Limits{MaxConnections: broker.DefaultMaxConnections, MaxPacketSize: broker.DefaultMaxPacketSize,
			MaxClientIDLen: broker.DefaultMaxClientIDLen}}
}

// TestOptions_Validate: every option outside its range is reported at once, named
// by its configuration key, with the kind of problem.
func TestOptions_Validate(t *testing.T) {
	t.Parallel()
	if err := validOptions().Validate(); err != nil {
		t.Fatalf("default options: %v", err)
	}
	for _, tc := range []struct {
		field string
		set   func(o *broker.Options)
		is    error
	}{
		{"max_connections", func(o *broker.Options) { o.Limits.MaxConnections = 0 }, optcheck.ErrOutOfRange},
		{"max_packet_size", func(o *broker.Options) { o.Limits.MaxPacketSize = broker.DefaultMaxBatchPayload }, optcheck.ErrOutOfRange},
		{"max_client_id_len", func(o *broker.Options) { o.Limits.MaxClientIDLen = 22 }, optcheck.ErrOutOfRange},
		{"publish_rate", func(o *broker.Options) { o.Limits.PublishRate = -1 }, optcheck.ErrOutOfRange},
		{"publish_burst", func(o *broker.Options) { o.Limits.PublishBurst = 2e9 }, optcheck.ErrOutOfRange},
		{"topic_prefix", func(o *broker.Options) { o.TopicPrefix = "$SYS" }, broker.ErrInvalidTopicPrefix},
		{"counts_prefix", func(o *broker.Options) { o.CountsPrefix = "kitchen/counts" }, broker.ErrInvalidTopicPrefix},
		{"counts_interval", func(o *broker.Options) { o.CountsInterval = 0 }, optcheck.ErrOutOfRange},
		{"max_event_payload", func(o *broker.Options) { o.MaxEventPayload = 15 }, optcheck.ErrOutOfRange},
		{"max_batch_payload", func(o *broker.Options) { o.MaxBatchPayload = 16<<20 + 1 }, optcheck.ErrOutOfRange},
		{"ws.allowed_origins", func(o *broker.Options) { o.Limits.AllowedOrigins = []string{"nope"} }, optcheck.ErrInvalidChoice},
		{"homeassistant.discovery_prefix", func(o *broker.Options) { o.HomeAssistant = &broker.HomeAssistant{NodeID: "n"} }, broker.ErrInvalidTopicPrefix},
	} {
		t.Run(tc.field, func(t *testing.T) {
			t.Parallel()
			o := validOptions()
			tc.set(&o)
			err := o.Validate()
			if got := optcheck.Fields(err); !slices.Equal(got, []string{tc.field}) || !errors.Is(err, tc.is) {
				t.Fatalf("Validate() = %v (fields %q), want only %s, wrapping %v", err, got, tc.field, tc.is)
			}
		})
	}
	t.Run("HomeAssistantNeedsCounts", func(t *testing.T) {
		o := validOptions()
		o.CountsPrefix, o.HomeAssistant = "", &broker.HomeAssistant{DiscoveryPrefix: broker.DefaultDiscoveryPrefix}
		if got := optcheck.Fields(o.Validate()); !slices.Equal(got, []string{"homeassistant.enabled"}) {
			t.Fatalf("fields %q, want homeassistant.enabled", got)
		}
	})
	t.Run("HomeAssistantUnderCounts", func(t *testing.T) { // caught by check-config too, not only at start
		o := validOptions()
		o.CountsPrefix, o.HomeAssistant = "arina", &broker.HomeAssistant{DiscoveryPrefix: broker.DefaultDiscoveryPrefix}
		err := o.Validate()
		if got := optcheck.Fields(err); !slices.Equal(got, []string{"counts_prefix"}) || !errors.Is(err, broker.ErrInvalidTopicPrefix) {
			t.Fatalf("Validate() = %v (fields %q), want only counts_prefix, wrapping ErrInvalidTopicPrefix", err, got)
		}
	})
	t.Run("ZeroReportsEveryLimit", func(t *testing.T) {
		got := optcheck.Fields(broker.Options{}.Validate())
		want := []string{"max_connections", "max_packet_size", "max_client_id_len", "topic_prefix", "counts_interval", "max_event_payload", "max_batch_payload"}
		if !slices.Equal(got, want) {
			t.Fatalf("zero options: fields %q, want %q", got, want)
		}
	})
}

// TestNew_HomeAssistantUnderCountsPrefix: nothing is retained under the count topics'
// prefix (they are served from the store), so Home Assistant's retained availability
// and discovery topics may not lie under it.
func TestNew_HomeAssistantUnderCountsPrefix(t *testing.T) {
	for _, tc := range []struct {
		counts, discovery string
		ok                bool
	}{
		{"arina/counts", "", true},
		{"arina", "", false},          // arina/status
		{"ha", "ha/discovery", false}, // ha/discovery/sensor/...
		{"homeassistant/x", "", true}, // homeassistant/sensor is not under it
		{"homeassistant", "homeassistant", false},
	} {
		_, err := broker.New(broker.Options{Listen: "127.0.0.1:0", TopicPrefix: "kitchen", CountsPrefix: tc.counts,
			HomeAssistant: &broker.HomeAssistant{DiscoveryPrefix: tc.discovery}}, nil, slog.New(slog.DiscardHandler), nil)
		if (err == nil) != tc.ok {
			t.Errorf("counts prefix %q, discovery prefix %q: err %v, want ok %v", tc.counts, tc.discovery, err, tc.ok)
		}
	}
}
