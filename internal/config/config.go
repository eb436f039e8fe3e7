// Package config reads Arina's configuration: the YAML file, ARINA_* environment
// variables and the serve flags, with viper (the only package that imports it). It
// checks what only the configuration knows (keys, types, listen policy, files to open)
// and leaves each part's ranges to that part's Options.Validate; DaemonOptions maps the
// result onto internal/daemon.Options.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/store"
)

// Config is the schema of the configuration file; every key can also be set with an
// ARINA_<SECTION>_<KEY> environment variable and the main ones with flags.
type Config struct {
	MQTT      MQTTConfig      `mapstructure:"mqtt"`
	HTTP      HTTPConfig      `mapstructure:"http"`
	Ingest    IngestConfig    `mapstructure:"ingest"`
	Store     StoreConfig     `mapstructure:"store"`
	Reactions []ReactionRule  `mapstructure:"reactions"`
	Bridge    BridgeConfig    `mapstructure:"bridge"`
	Memory    MemoryConfig    `mapstructure:"memory"`
	Log       LogConfig       `mapstructure:"log"`
	History   HistoryConfig   `mapstructure:"history"`   // historyconfig.go
	Sparkplug SparkplugConfig `mapstructure:"sparkplug"` // sparkplugconfig.go
}

// MQTTConfig is the mqtt section.
type MQTTConfig struct {
	Listen          string        `mapstructure:"listen"`
	TopicPrefix     string        `mapstructure:"topic_prefix"`
	MaxEventPayload int           `mapstructure:"max_event_payload"`
	MaxBatchPayload int           `mapstructure:"max_batch_payload"`
	CountsPrefix    string        `mapstructure:"counts_prefix"`
	CountsInterval  time.Duration `mapstructure:"counts_interval"`
	// CountsPerReaction: also <counts_prefix>/<content_id>/<reaction_type>, a bare count.
	CountsPerReaction bool `mapstructure:"counts_per_reaction"`
	// HomeAssistant: discovery configs for the count topics (haconfig.go).
	HomeAssistant HomeAssistantConfig `mapstructure:"homeassistant"`

	AllowAnonymous bool     `mapstructure:"allow_anonymous"`
	Auth           MQTTAuth `mapstructure:"auth"`
	TLS            MQTTTLS  `mapstructure:"tls"`
	WS             MQTTWS   `mapstructure:"ws"`

	MaxConnections int     `mapstructure:"max_connections"`
	MaxPacketSize  int     `mapstructure:"max_packet_size"`
	MaxClientIDLen int     `mapstructure:"max_client_id_len"`
	PublishRate    float64 `mapstructure:"publish_rate"`
	PublishBurst   int     `mapstructure:"publish_burst"`
}

// HTTPConfig is the http section.
type HTTPConfig struct {
	Listen       string `mapstructure:"listen"`
	MaxBodyBytes int64  `mapstructure:"max_body_bytes"`
	Pprof        bool   `mapstructure:"pprof"`

	AllowAnonymous bool     `mapstructure:"allow_anonymous"`
	Auth           HTTPAuth `mapstructure:"auth"`
	TLS            HTTPTLS  `mapstructure:"tls"`

	MaxHeaderBytes    int           `mapstructure:"max_header_bytes"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	WriteTimeout      time.Duration `mapstructure:"write_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
}

// IngestConfig is the ingest section.
type IngestConfig struct {
	QueueSize       int           `mapstructure:"queue_size"`
	BatchSize       int           `mapstructure:"batch_size"`
	EnqueueTimeout  time.Duration `mapstructure:"enqueue_timeout"`
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
}

// StoreConfig is the store section.
type StoreConfig struct {
	Backend      string        `mapstructure:"backend"` // embedded or redis
	Redis        RedisConfig   `mapstructure:"redis"`
	DataDir      string        `mapstructure:"data_dir"`
	Durability   string        `mapstructure:"durability"`
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	MinFreeBytes uint64        `mapstructure:"min_free_bytes"`
	TombstoneTTL time.Duration `mapstructure:"tombstone_ttl"`
}

// ReactionRule is one entry of the reactions list: the policy of the reaction types
// matching Type (an exact name or a path.Match glob such as "gas_*"). The first
// matching rule applies.
type ReactionRule struct {
	Type string        `mapstructure:"type"`
	TTL  time.Duration `mapstructure:"ttl"` // 0: memberships last until removed
}

// ttlFunc returns the TTL lookup for the ingest writer, or nil when no rule sets one.
func ttlFunc(rules []ReactionRule) func(string) time.Duration {
	any := false
	for _, r := range rules {
		any = any || r.TTL > 0
	}
	if !any {
		return nil
	}
	return func(reactionType string) time.Duration {
		for _, r := range rules {
			if ok, _ := path.Match(r.Type, reactionType); ok {
				return r.TTL
			}
		}
		return 0
	}
}

// LogConfig is the log section.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		MQTT: MQTTConfig{Listen: ":1883", TopicPrefix: "kitchen", MaxEventPayload: broker.DefaultMaxEventPayload,
			MaxBatchPayload: broker.DefaultMaxBatchPayload,
			CountsPrefix:    broker.DefaultCountsPrefix, CountsInterval: broker.DefaultCountsInterval, CountsPerReaction: true,
			HomeAssistant:  defaultHomeAssistant(),
			TLS:            MQTTTLS{Listen: ":8883"},
			WS:             MQTTWS{AllowedOrigins: []string{}},
			MaxConnections: broker.DefaultMaxConnections, MaxPacketSize: broker.DefaultMaxPacketSize,
			MaxClientIDLen: broker.DefaultMaxClientIDLen},
		HTTP: HTTPConfig{Listen: ":4000", MaxBodyBytes: api.DefaultMaxBodyBytes, MaxHeaderBytes: 64 << 10,
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute},
		Ingest: IngestConfig{
			QueueSize: ingest.DefaultQueueSize, BatchSize: ingest.DefaultBatchSize,
			EnqueueTimeout: ingest.DefaultEnqueueTimeout, ShutdownTimeout: 30 * time.Second,
		},
		Store: StoreConfig{Backend: BackendEmbedded, Redis: RedisConfig{Addrs: []string{}, Mode: "single", KeyPrefix: "arina:"},
			DataDir: "./data", Durability: store.DurabilitySync, SyncInterval: 100 * time.Millisecond, MinFreeBytes: 64 << 20,
			TombstoneTTL: 24 * time.Hour},
		Memory:    MemoryConfig{Limit: MemoryLimitAuto},
		Log:       LogConfig{Level: "info", Format: "text"},
		History:   defaultHistory(),
		Sparkplug: defaultSparkplug(),
	}
}

// Sentinel errors wrapped by configuration errors.
var (
	ErrInvalidAddress = errors.New("invalid address")
	ErrOutOfRange     = errors.New("out of range")
	ErrInvalidChoice  = errors.New("not one of the allowed values")
	ErrUnknownKey     = errors.New("unknown configuration key")
)

// ConfigError is a problem with one configuration key.
type ConfigError struct {
	Key   string
	Value any
	Err   error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s %q: %v", e.Key, fmt.Sprint(e.Value), e.Err)
}
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports every problem in c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, err error) { errs = append(errs, &ConfigError{key, v, err}) }
	if binds, err := c.listeners(nil); err != nil {
		errs = append(errs, err)
	} else {
		seen := make(map[string]string)
		for _, key := range []string{"mqtt.listen", "http.listen", "mqtt.tls.listen", "mqtt.ws.listen", "mqtt.ws.tls_listen"} {
			addr, ok := binds[key]
			if _, port, _ := net.SplitHostPort(addr); !ok || port == "0" {
				continue
			}
			if other, dup := seen[addr]; dup {
				bad(key, addr, fmt.Errorf("%w: the same address as %s", ErrInvalidAddress, other))
			}
			seen[addr] = key
		}
	}
	if _, err := c.openSecurity(); err != nil {
		errs = append(errs, err)
	}
	// A packet must hold the largest payload accepted (when that limit is itself valid).
	minPacket := float64(1024)
	if c.MQTT.MaxEventPayload <= 1<<20 && c.MQTT.MaxBatchPayload <= 16<<20 {
		minPacket = float64(max(c.MQTT.MaxEventPayload, c.MQTT.MaxBatchPayload) + 1024)
	}
	limits := []struct {
		key      string
		v        float64
		min, max float64
	}{
		{"mqtt.max_connections", float64(c.MQTT.MaxConnections), 1, 1 << 24},
		{"mqtt.max_packet_size", float64(c.MQTT.MaxPacketSize), minPacket, 256 << 20},
		{"mqtt.max_client_id_len", float64(c.MQTT.MaxClientIDLen), 23, 65535},
		{"mqtt.publish_rate", c.MQTT.PublishRate, 0, 1e9},
		{"mqtt.publish_burst", float64(c.MQTT.PublishBurst), 0, 1e9},
		{"http.max_header_bytes", float64(c.HTTP.MaxHeaderBytes), 4096, 1 << 20},
	}
	for _, l := range limits {
		if l.v < l.min || l.v > l.max {
			bad(l.key, l.v, fmt.Errorf("%w: want %v to %v", ErrOutOfRange, l.min, l.max))
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout}} {
		if d.v < 100*time.Millisecond || d.v > time.Hour {
			bad(d.key, d.v, fmt.Errorf("%w: want 100ms to 1h", ErrOutOfRange))
		}
	}
	if err := broker.ValidatePrefix(c.MQTT.TopicPrefix); err != nil {
		bad("mqtt.topic_prefix", c.MQTT.TopicPrefix, err)
	}
	if c.MQTT.CountsPrefix != "" {
		if err := broker.ValidateCountsPrefix(c.MQTT.CountsPrefix, c.MQTT.TopicPrefix); err != nil {
			bad("mqtt.counts_prefix", c.MQTT.CountsPrefix, err)
		}
	}
	if c.MQTT.CountsInterval < 10*time.Millisecond || c.MQTT.CountsInterval > time.Minute {
		bad("mqtt.counts_interval", c.MQTT.CountsInterval, fmt.Errorf("%w: want 10ms to 1m", ErrOutOfRange))
	}
	if c.MQTT.MaxEventPayload < 16 || c.MQTT.MaxEventPayload > 1<<20 {
		bad("mqtt.max_event_payload", c.MQTT.MaxEventPayload, fmt.Errorf("%w: want 16 to 1048576 bytes", ErrOutOfRange))
	}
	if c.MQTT.MaxBatchPayload < 1024 || c.MQTT.MaxBatchPayload > 16<<20 {
		bad("mqtt.max_batch_payload", c.MQTT.MaxBatchPayload, fmt.Errorf("%w: want 1024 to 16777216 bytes", ErrOutOfRange))
	}
	if c.HTTP.MaxBodyBytes < 1024 || c.HTTP.MaxBodyBytes > 64<<20 {
		bad("http.max_body_bytes", c.HTTP.MaxBodyBytes, fmt.Errorf("%w: want 1024 to 67108864 bytes", ErrOutOfRange))
	}
	if c.Ingest.QueueSize < 1 || c.Ingest.QueueSize > 1<<24 {
		bad("ingest.queue_size", c.Ingest.QueueSize, fmt.Errorf("%w: want 1 to 16777216", ErrOutOfRange))
	}
	if c.Ingest.BatchSize < 1 || c.Ingest.BatchSize > 1<<16 {
		bad("ingest.batch_size", c.Ingest.BatchSize, fmt.Errorf("%w: want 1 to 65536", ErrOutOfRange))
	}
	if c.Ingest.EnqueueTimeout < time.Millisecond || c.Ingest.EnqueueTimeout > time.Minute {
		bad("ingest.enqueue_timeout", c.Ingest.EnqueueTimeout, fmt.Errorf("%w: want 1ms to 1m", ErrOutOfRange))
	}
	if c.Ingest.ShutdownTimeout < time.Second || c.Ingest.ShutdownTimeout > time.Hour {
		bad("ingest.shutdown_timeout", c.Ingest.ShutdownTimeout, fmt.Errorf("%w: want 1s to 1h", ErrOutOfRange))
	}
	switch c.Store.Durability {
	case store.DurabilitySync, store.DurabilityAsync:
		if c.Store.DataDir == "" {
			bad("store.data_dir", c.Store.DataDir, fmt.Errorf("%w: a directory is required unless store.durability is none", ErrOutOfRange))
		}
	case store.DurabilityNone:
	default:
		bad("store.durability", c.Store.Durability, fmt.Errorf("%w: sync, async, none", ErrInvalidChoice))
	}
	switch c.Store.Backend {
	case BackendEmbedded:
	case BackendRedis:
		if _, err := c.redisOptions(); err != nil {
			errs = append(errs, err)
		}
	default:
		bad("store.backend", c.Store.Backend, fmt.Errorf("%w: embedded, redis", ErrInvalidChoice))
	}
	if c.Store.TombstoneTTL < time.Minute || c.Store.TombstoneTTL > 365*24*time.Hour {
		bad("store.tombstone_ttl", c.Store.TombstoneTTL, fmt.Errorf("%w: want 1m to 8760h", ErrOutOfRange))
	}
	if c.Store.SyncInterval < time.Millisecond || c.Store.SyncInterval > time.Minute {
		bad("store.sync_interval", c.Store.SyncInterval, fmt.Errorf("%w: want 1ms to 1m", ErrOutOfRange))
	}
	for i, r := range c.Reactions {
		key := fmt.Sprintf("reactions[%d]", i)
		if r.Type == "" {
			bad(key+".type", r.Type, fmt.Errorf("%w: a reaction type or glob is required", ErrOutOfRange))
		} else if _, err := path.Match(r.Type, ""); err != nil {
			bad(key+".type", r.Type, fmt.Errorf("%w: %v", ErrInvalidChoice, err))
		}
		if r.TTL < 0 || (r.TTL > 0 && r.TTL < time.Second) {
			bad(key+".ttl", r.TTL, fmt.Errorf("%w: want 0 (no expiry) or at least 1s", ErrOutOfRange))
		}
	}
	for i, u := range c.Bridge.Upstreams {
		if d := u.MaxReconnectInterval; d < 0 || (d > 0 && d < 100*time.Millisecond) || d > time.Hour {
			bad(fmt.Sprintf("bridge.upstreams[%d].max_reconnect_interval", i), d,
				fmt.Errorf("%w: want 0 (the default, 30s) or 100ms to 1h", ErrOutOfRange))
		}
	}
	for i, u := range c.Bridge.Upstreams {
		if u.Sparkplug && !c.Sparkplug.Enabled {
			bad(fmt.Sprintf("bridge.upstreams[%d].sparkplug", i), u.Sparkplug, fmt.Errorf("%w: needs sparkplug.enabled", ErrInvalidChoice))
		}
	}
	if _, err := c.Bridge.upstreams(); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseMemoryLimit(c.Memory.Limit); err != nil {
		bad("memory.limit", c.Memory.Limit, err)
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		bad("log.level", c.Log.Level, err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", c.Log.Format, fmt.Errorf("%w: text, json", ErrInvalidChoice))
	}
	c.History.validate(bad)
	c.Sparkplug.validate(bad)
	c.MQTT.HomeAssistant.validate(c.MQTT.CountsPrefix, bad)
	return errors.Join(errs...)
}

func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w: debug, info, warn, error", ErrInvalidChoice)
}

// flagKeys maps command-line flags to the configuration keys they set.
var flagKeys = map[string]string{
	"mqtt-listen":       "mqtt.listen",
	"mqtt-topic-prefix": "mqtt.topic_prefix",
	"http-listen":       "http.listen",
	"log-level":         "log.level",
	"data-dir":          "store.data_dir",
	"durability":        "store.durability",
	"log-format":        "log.format",
}

// Load reads the configuration: flags > ARINA_* environment > file > defaults.
// An unknown key in the file is an error naming the key.
func Load(fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	v := viper.New()
	d := Default()
	setDefaults(v, d)
	known := make(map[string]struct{})
	for _, key := range v.AllKeys() {
		known[key] = struct{}{}
	}
	v.SetEnvPrefix("ARINA")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// Viper reads os.Getenv; bind each known key explicitly so getenv (tests) decides.
	for _, key := range v.AllKeys() {
		env := "ARINA_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		if val := getenv(env); val != "" {
			v.Set(key, val)
		}
	}
	if fs != nil {
		if f := fs.Lookup("config"); f != nil && f.Value.String() != "" {
			// Read the file on its own: AllSettings drops null values, so a section whose
			// keys are all commented out ("store:") keeps its defaults.
			file := viper.New()
			file.SetConfigFile(f.Value.String())
			file.SetConfigType("yaml")
			if err := file.ReadInConfig(); err != nil {
				return Config{}, fmt.Errorf("reading config file %s: %w", f.Value.String(), err)
			}
			if err := v.MergeConfigMap(file.AllSettings()); err != nil {
				return Config{}, fmt.Errorf("reading config file %s: %w", f.Value.String(), err)
			}
		}
		for flag, key := range flagKeys {
			if f := fs.Lookup(flag); f != nil && f.Changed {
				v.Set(key, f.Value.String())
			}
		}
	}
	var unknown []error
	for _, key := range v.AllKeys() {
		if _, ok := known[key]; !ok {
			unknown = append(unknown, fmt.Errorf("%w %s", ErrUnknownKey, key))
		}
	}
	if len(unknown) > 0 {
		return Config{}, errors.Join(unknown...)
	}
	var c Config
	if err := v.UnmarshalExact(&c, decodeHook); err != nil {
		if kerr := decodeErrors(err); kerr != nil {
			return Config{}, kerr
		}
		return Config{}, fmt.Errorf("decoding configuration: %w", err)
	}
	if len(c.Reactions) == 0 {
		c.Reactions = nil
	}
	if len(c.Bridge.Upstreams) == 0 {
		c.Bridge.Upstreams = nil
	}
	if len(c.Sparkplug.Rules) == 0 {
		c.Sparkplug.Rules = nil
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Keys returns every configuration key, sorted: the file's keys, as dotted paths.
func Keys() []string {
	v := viper.New()
	setDefaults(v, Default())
	keys := v.AllKeys()
	slices.Sort(keys)
	return keys
}

// setDefaults makes every key of Config known to v, with its value in d: the keys are
// the mapstructure tags, so a new field is a new key without more code. Lists of
// objects (reactions, bridge.upstreams) are file only and default to empty.
func setDefaults(v *viper.Viper, d Config) {
	var walk func(prefix string, rv reflect.Value)
	walk = func(prefix string, rv reflect.Value) {
		rt := rv.Type()
		for i := range rt.NumField() {
			key := rt.Field(i).Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			f := rv.Field(i)
			switch {
			case f.Kind() == reflect.Struct:
				walk(key, f)
			case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
				v.SetDefault(key, []any{})
			default:
				v.SetDefault(key, f.Interface())
			}
		}
	}
	walk("", reflect.ValueOf(d))
}

// DaemonOptions maps the configuration onto the parts' options: it opens the users and
// tokens files and certificates, applies the safe listen default and logs what it
// decided.
func (c *Config) DaemonOptions(log *slog.Logger) (daemon.Options, error) {
	sec, err := c.openSecurity()
	if err != nil {
		return daemon.Options{}, err
	}
	binds, err := c.listeners(log)
	if err != nil {
		return daemon.Options{}, err
	}
	c.logAuth(log, sec)
	ups, _ := c.Bridge.upstreams() // checked by Validate
	ro, err := c.redisOptions()
	if err != nil {
		return daemon.Options{}, err
	}
	m := c.MQTT
	o := daemon.Options{
		Upstreams: ups,
		MQTT: broker.Options{Listen: binds["mqtt.listen"], TopicPrefix: m.TopicPrefix, MaxEventPayload: m.MaxEventPayload,
			MaxBatchPayload: m.MaxBatchPayload, CountsPrefix: m.CountsPrefix, CountsInterval: m.CountsInterval,
			NoReactionCountTopics: !m.CountsPerReaction,
			Users:                 sec.users, TLS: tlsConfig(sec.mqttTLS), TLSListen: binds["mqtt.tls.listen"],
			WSListen: binds["mqtt.ws.listen"], WSSListen: binds["mqtt.ws.tls_listen"],
			Limits: broker.Limits{MaxConnections: m.MaxConnections, MaxPacketSize: uint32(m.MaxPacketSize),
				MaxClientIDLen: m.MaxClientIDLen, PublishRate: m.PublishRate, PublishBurst: m.PublishBurst,
				AllowedOrigins: m.WS.AllowedOrigins}},
		HTTP: api.Options{Listen: binds["http.listen"], MaxBodyBytes: c.HTTP.MaxBodyBytes, Pprof: c.HTTP.Pprof,
			Tokens: sec.tokens, TLS: tlsConfig(sec.httpTLS), MaxHeaderBytes: c.HTTP.MaxHeaderBytes,
			ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout, ReadTimeout: c.HTTP.ReadTimeout,
			WriteTimeout: c.HTTP.WriteTimeout, IdleTimeout: c.HTTP.IdleTimeout},
		Ingest: ingest.Options{QueueSize: c.Ingest.QueueSize, BatchSize: c.Ingest.BatchSize, EnqueueTimeout: c.Ingest.EnqueueTimeout,
			TTL: ttlFunc(c.Reactions), TombstoneTTL: c.Store.TombstoneTTL},
		ShutdownTimeout: c.Ingest.ShutdownTimeout,
		Durability:      c.Store.Durability,
		Durable:         store.DurableOptions{Dir: c.Store.DataDir, SyncInterval: c.Store.SyncInterval, MinFreeBytes: c.Store.MinFreeBytes},
		Reloaders:       sec.reloaders(),
		Redis:           ro,
		MemoryLimit:     c.memoryLimit(log),
	}
	c.History.apply(&o)
	c.Sparkplug.apply(&o)
	c.MQTT.HomeAssistant.apply(&o)
	return o, nil
}
