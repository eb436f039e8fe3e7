package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/sparkplug"
)

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*Config)
		want   error
	}{
		{"Defaults", "", func(*Config) {}, nil},
		{"Boundaries", "", func(c *Config) {
			c.MQTT.MaxEventPayload, c.HTTP.MaxBodyBytes = 16, 64<<20
			c.Ingest.QueueSize, c.Ingest.BatchSize = 1<<24, 1
			c.Log.Level, c.Log.Format = "ERROR", "json"
			c.MQTT.TopicPrefix = "plant1/kitchen"
			c.MQTT.Listen, c.HTTP.Listen = "[::1]:0", "localhost:4000"
			c.Store.SyncInterval = time.Minute
		}, nil},
		{"MemoryNeedsNoDataDir", "", func(c *Config) {
			c.Store.Durability, c.Store.DataDir, c.Store.SyncInterval = "none", "", time.Millisecond
		}, nil},
		{"MQTTListenNoPort", "mqtt.listen", func(c *Config) { c.MQTT.Listen = "127.0.0.1" }, ErrInvalidAddress},
		{"MQTTListenEmptyPort", "mqtt.listen", func(c *Config) { c.MQTT.Listen = "127.0.0.1:" }, ErrInvalidAddress},
		{"HTTPListenEmpty", "http.listen", func(c *Config) { c.HTTP.Listen = "" }, ErrInvalidAddress},
		{"HTTPListenSameAsMQTT", "http.listen", func(c *Config) { c.MQTT.Listen, c.HTTP.Listen = ":4000", "127.0.0.1:4000" }, ErrInvalidAddress},
		{"TopicPrefixEmpty", "mqtt.topic_prefix", func(c *Config) { c.MQTT.TopicPrefix = "" }, broker.ErrInvalidTopicPrefix},
		{"TopicPrefixDollar", "mqtt.topic_prefix", func(c *Config) { c.MQTT.TopicPrefix = "$SYS" }, broker.ErrInvalidTopicPrefix},
		{"TopicPrefixWildcard", "mqtt.topic_prefix", func(c *Config) { c.MQTT.TopicPrefix = "a/+" }, broker.ErrInvalidTopicPrefix},
		{"TopicPrefixEmptyLevel", "mqtt.topic_prefix", func(c *Config) { c.MQTT.TopicPrefix = "a//b" }, broker.ErrInvalidTopicPrefix},
		{"MaxEventPayloadLow", "mqtt.max_event_payload", func(c *Config) { c.MQTT.MaxEventPayload = 15 }, ErrOutOfRange},
		{"MaxEventPayloadHigh", "mqtt.max_event_payload", func(c *Config) { c.MQTT.MaxEventPayload = 1<<20 + 1 }, ErrOutOfRange},
		{"MaxBodyBytesLow", "http.max_body_bytes", func(c *Config) { c.HTTP.MaxBodyBytes = 1023 }, ErrOutOfRange},
		{"QueueSizeZero", "ingest.queue_size", func(c *Config) { c.Ingest.QueueSize = 0 }, ErrOutOfRange},
		{"QueueSizeHigh", "ingest.queue_size", func(c *Config) { c.Ingest.QueueSize = 1<<24 + 1 }, ErrOutOfRange},
		{"BatchSizeHigh", "ingest.batch_size", func(c *Config) { c.Ingest.BatchSize = 1<<16 + 1 }, ErrOutOfRange},
		{"EnqueueTimeoutZero", "ingest.enqueue_timeout", func(c *Config) { c.Ingest.EnqueueTimeout = 0 }, ErrOutOfRange},
		{"ShutdownTimeoutNegative", "ingest.shutdown_timeout", func(c *Config) { c.Ingest.ShutdownTimeout = -time.Second }, ErrOutOfRange},
		{"DurabilityUnknown", "store.durability", func(c *Config) { c.Store.Durability = "fsync" }, ErrInvalidChoice},
		{"DataDirRequired", "store.data_dir", func(c *Config) { c.Store.DataDir = "" }, ErrOutOfRange},
		{"DataDirRequiredAsync", "store.data_dir", func(c *Config) { c.Store.Durability, c.Store.DataDir = "async", "" }, ErrOutOfRange},
		{"SyncIntervalLow", "store.sync_interval", func(c *Config) { c.Store.SyncInterval = time.Millisecond - 1 }, ErrOutOfRange},
		{"SyncIntervalHigh", "store.sync_interval", func(c *Config) { c.Store.SyncInterval = time.Minute + 1 }, ErrOutOfRange},
		{"MemoryLimitUnit", "memory.limit", func(c *Config) { c.Memory.Limit = "2GB!" }, ErrInvalidChoice},
		{"MemoryLimitWord", "memory.limit", func(c *Config) { c.Memory.Limit = "lots" }, ErrInvalidChoice},
		{"MemoryLimitLow", "memory.limit", func(c *Config) { c.Memory.Limit = "1MiB" }, ErrOutOfRange},
		{"MemoryLimitSize", "", func(c *Config) { c.Memory.Limit = "512MiB" }, nil},
		{"MemoryLimitNone", "", func(c *Config) { c.Memory.Limit = "none" }, nil},
		{"LogLevel", "log.level", func(c *Config) { c.Log.Level = "verbose" }, ErrInvalidChoice},
		{"LogFormat", "log.format", func(c *Config) { c.Log.Format = "xml" }, ErrInvalidChoice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tc.mutate(&c)
			err := wantValidate(t, c, tc.key, tc.want)
			if err == nil {
				return
			}
			if !strings.HasPrefix(err.Error(), tc.key+" ") {
				t.Fatalf("Validate() = %q, want it to start with the key %s", err, tc.key)
			}
		})
	}
}

func TestConfig_Validate_ReportsAll(t *testing.T) {
	t.Parallel()
	c := Default()
	c.MQTT.Listen = "nohost"
	c.MQTT.TopicPrefix = "#"
	c.Ingest.QueueSize = -1
	c.Log.Format = "xml"
	err := c.Validate()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("Validate() = %#v, want errors joined with errors.Join", err)
	}
	if n := len(joined.Unwrap()); n != 4 {
		t.Errorf("Validate() has %d errors, want 4: %v", n, err)
	}
	for _, want := range []struct {
		key, value string
		err        error
	}{
		{"mqtt.listen", "nohost", ErrInvalidAddress},
		{"mqtt.topic_prefix", "#", broker.ErrInvalidTopicPrefix},
		{"ingest.queue_size", "-1", ErrOutOfRange},
		{"log.format", "xml", ErrInvalidChoice},
	} {
		if !errors.Is(err, want.err) {
			t.Errorf("Validate() = %v, want it to wrap %v", err, want.err)
		}
		if s := fmt.Sprintf("%s %q", want.key, want.value); !strings.Contains(err.Error(), s) {
			t.Errorf("Validate() = %q, want it to contain %s", err, s)
		}
	}
}

// TestConfig_Validate_Deterministic: check-config prints the same report every time.
func TestConfig_Validate_Deterministic(t *testing.T) {
	t.Parallel()
	c := Default()
	c.MQTT.Listen, c.HTTP.Listen = "a", "b"
	first := c.Validate().Error()
	for range 20 {
		if got := c.Validate().Error(); got != first {
			t.Fatalf("Validate() = %q, then %q", first, got)
		}
	}
	if strings.Index(first, "mqtt.listen") > strings.Index(first, "http.listen") {
		t.Fatalf("Validate() = %q, want keys in file order (mqtt before http)", first)
	}
}

func TestConfig_Validate_DurationRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key string
		mod func(*Config)
	}{
		{"ingest.enqueue_timeout", func(c *Config) { c.Ingest.EnqueueTimeout = time.Nanosecond }},
		{"ingest.enqueue_timeout", func(c *Config) { c.Ingest.EnqueueTimeout = time.Hour }},
		{"ingest.linger", func(c *Config) { c.Ingest.Linger = -time.Millisecond }},
		{"ingest.linger", func(c *Config) { c.Ingest.Linger = time.Second }},
		{"ingest.shutdown_timeout", func(c *Config) { c.Ingest.ShutdownTimeout = 30 * time.Nanosecond }},
		{"ingest.shutdown_timeout", func(c *Config) { c.Ingest.ShutdownTimeout = 2 * time.Hour }},
		{"bridge.upstreams[0].max_reconnect_interval", func(c *Config) {
			c.Bridge.Upstreams = []UpstreamConfig{{Name: "a", URL: "tcp://127.0.0.1:1883", ClientID: "x", Topics: []string{"kitchen/#"},
				MaxReconnectInterval: -time.Second}}
		}},
	} {
		c := Default()
		tc.mod(&c)
		err := c.Validate()
		if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), tc.key+" ") {
			t.Errorf("Validate() = %v, want ErrOutOfRange naming %s", err, tc.key)
		}
	}
}

// wantValidate checks c.Validate(): nil when key is "", else a *ConfigError of key
// that wraps is (when is is not nil). It returns Validate's error.
func wantValidate(t *testing.T, c Config, key string, is error) error {
	t.Helper()
	err := c.Validate()
	if key == "" {
		if err != nil {
			t.Fatalf("Validate() = %v, want nil", err)
		}
		return nil
	}
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != key || (is != nil && !errors.Is(err, is)) {
		t.Fatalf("Validate() = %v, want a *ConfigError for key %s wrapping %v", err, key, is)
	}
	return err
}

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
			c := Default()
			tc.mutate(&c)
			wantValidate(t, c, tc.key, nil)
		})
	}
}

func TestHistoryConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*HistoryConfig)
	}{
		{"Defaults", "", func(*HistoryConfig) {}},
		{"Boundaries", "", func(h *HistoryConfig) {
			h.Resolution, h.Window, h.MaxSets = 100*time.Millisecond, 4096*100*time.Millisecond, 1
		}},
		{"Disabled", "", func(h *HistoryConfig) { h.Enabled = false }},
		{"ResolutionLow", "history.resolution", func(h *HistoryConfig) { h.Resolution = 99 * time.Millisecond }},
		{"ResolutionHigh", "history.resolution", func(h *HistoryConfig) { h.Resolution = time.Hour + 1 }},
		{"WindowBelowResolution", "history.window", func(h *HistoryConfig) { h.Window = 5 * time.Second }},
		{"WindowTooManySteps", "history.window", func(h *HistoryConfig) { h.Resolution, h.Window = time.Second, 4097*time.Second }},
		{"MaxSetsZero", "history.max_sets", func(h *HistoryConfig) { h.MaxSets = 0 }},
		{"MaxSetsHigh", "history.max_sets", func(h *HistoryConfig) { h.MaxSets = 10_000_001 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c.History)
			wantValidate(t, c, tc.key, ErrOutOfRange)
		})
	}
}

func TestSparkplugConfig_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		key    string // "" for a valid config
		mutate func(*SparkplugConfig)
	}{
		{"Defaults", "", func(*SparkplugConfig) {}},
		{"EdgeDevice", "", func(s *SparkplugConfig) { s.Content, s.HostID = "edge_device", "scada-1" }},
		{"DisabledIsNotChecked", "", func(s *SparkplugConfig) { s.Enabled, s.Content = false, "nope" }},
		{"Content", "sparkplug.content", func(s *SparkplugConfig) { s.Content = "group" }},
		{"HostID", "sparkplug.host_id", func(s *SparkplugConfig) { s.HostID = "a/b" }},
		{"RuleGlob", "sparkplug.rules[0].metric", func(s *SparkplugConfig) { s.Rules = []SparkplugRule{{Metric: "[", Reaction: "x"}} }},
		{"RuleUser", "sparkplug.rules[0].user", func(s *SparkplugConfig) { s.Rules = []SparkplugRule{{Metric: "x", User: "name"}} }},
		{"RuleReaction", "sparkplug.rules[0].reaction", func(s *SparkplugConfig) { s.Rules = []SparkplugRule{{Metric: "Inputs/*"}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c.Sparkplug)
			wantValidate(t, c, tc.key, sparkplug.ErrInvalidOptions)
		})
	}
}

func TestSparkplugConfig_BridgeNeedsDecoder(t *testing.T) {
	t.Parallel()
	c := Default()
	c.Bridge.Upstreams = []UpstreamConfig{{Name: "factory", URL: "tcp://127.0.0.1:1883", ClientID: "arina", Sparkplug: true}}
	wantValidate(t, c, "", nil)
	c.Sparkplug.Enabled = false
	wantValidate(t, c, "bridge.upstreams[0].sparkplug", ErrInvalidChoice)
}
