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
	"math"
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
	"github.com/arina-dev/arina/internal/optcheck"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
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
	Linger          time.Duration `mapstructure:"linger"`
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

// Sentinel errors wrapped by configuration errors. The first three are the kinds the
// parts' Options.Validate report (package optcheck).
var (
	ErrInvalidAddress = optcheck.ErrInvalidAddress
	ErrOutOfRange     = optcheck.ErrOutOfRange
	ErrInvalidChoice  = optcheck.ErrInvalidChoice
	ErrUnknownKey     = errors.New("unknown configuration key")
)

// ConfigError is a problem with one configuration key: its Field is the key in full
// (mqtt.max_connections), as the parts' own FieldErrors are once keyed.
type ConfigError = optcheck.FieldError

// keyed turns the problems a part's Validate reports (err: one error or a join) into
// ConfigErrors: each *optcheck.FieldError's field becomes the key key returns for it.
// Other errors are kept as they are.
func keyed(err error, key func(field string) string) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		if fe, ok := e.(*optcheck.FieldError); ok {
			e = &ConfigError{Field: key(fe.Field), Value: fe.Value, Err: fe.Err}
		}
		out = append(out, e)
	}
	return out
}

// in returns a key function that puts section in front of each field.
func in(section string) func(string) string {
	return func(field string) string { return section + "." + field }
}

// Validate reports every problem in c at once. The ranges of each part's settings
// are that part's (its Options.Validate); Validate maps c onto the options, asks
// them, and adds what only the configuration knows: the listen addresses and their
// policy, the files and certificates it names, the store backend, reactions, how
// sections depend on each other, memory and log.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, v any, err error) { errs = append(errs, &ConfigError{Field: key, Value: v, Err: err}) }
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
	o := c.partOptions()
	for _, e := range keyed(o.MQTT.Validate(), in("mqtt")) {
		if ce, ok := e.(*ConfigError); ok && ce.Field == "mqtt.max_packet_size" {
			ce.Value = float64(c.MQTT.MaxPacketSize) // as given, before the conversion to uint32
		}
		errs = append(errs, e)
	}
	errs = append(errs, keyed(o.HTTP.Validate(), in("http"))...)
	errs = append(errs, keyed(o.Ingest.Validate(), func(field string) string {
		if field == "tombstone_ttl" {
			return "store." + field
		}
		return "ingest." + field
	})...)
	errs = append(errs, keyed(o.Validate(), func(field string) string {
		if field == "shutdown_timeout" {
			return "ingest." + field
		}
		return "store." + field
	})...)
	switch c.Store.Backend {
	case BackendEmbedded:
	case BackendRedis:
		if _, err := c.redisOptions(); err != nil {
			errs = append(errs, err)
		}
	default:
		bad("store.backend", c.Store.Backend, fmt.Errorf("%w: embedded, redis", ErrInvalidChoice))
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
		if u.Sparkplug && !c.Sparkplug.Enabled {
			bad(fmt.Sprintf("bridge.upstreams[%d].sparkplug", i), u.Sparkplug, fmt.Errorf("%w: needs sparkplug.enabled", ErrInvalidChoice))
		}
	}
	if _, err := c.Bridge.upstreams(); err != nil {
		errs = append(errs, keyed(err, func(key string) string { return key })...)
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
	errs = append(errs, keyed(o.History.Validate(), in("history"))...)
	c.Sparkplug.validate(bad)
	return errors.Join(errs...)
}

// ParseLevel returns the slog level log.level names.
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
	o := c.partOptions()
	o.Upstreams = ups
	o.MQTT.Listen, o.MQTT.TLSListen = binds["mqtt.listen"], binds["mqtt.tls.listen"]
	o.MQTT.WSListen, o.MQTT.WSSListen = binds["mqtt.ws.listen"], binds["mqtt.ws.tls_listen"]
	o.MQTT.Users, o.MQTT.TLS = sec.users, tlsConfig(sec.mqttTLS)
	o.HTTP.Listen = binds["http.listen"]
	o.HTTP.Tokens, o.HTTP.TLS = sec.tokens, tlsConfig(sec.httpTLS)
	o.Reloaders = sec.reloaders()
	o.Redis = ro
	o.MemoryLimit = c.memoryLimit(log)
	return o, nil
}

// partOptions maps the settings onto the parts' options, as far as that needs no file,
// certificate or listen policy: what Validate asks the parts to check, and what
// DaemonOptions completes.
func (c *Config) partOptions() daemon.Options {
	m := c.MQTT
	o := daemon.Options{
		MQTT: broker.Options{TopicPrefix: m.TopicPrefix, MaxEventPayload: m.MaxEventPayload,
			MaxBatchPayload: m.MaxBatchPayload, CountsPrefix: m.CountsPrefix, CountsInterval: m.CountsInterval,
			NoReactionCountTopics: !m.CountsPerReaction,
			Limits: broker.Limits{MaxConnections: m.MaxConnections, MaxPacketSize: uint32(min(max(int64(m.MaxPacketSize), 0), math.MaxUint32)),
				MaxClientIDLen: m.MaxClientIDLen, PublishRate: m.PublishRate, PublishBurst: m.PublishBurst,
				AllowedOrigins: m.WS.AllowedOrigins}},
		HTTP: api.Options{MaxBodyBytes: c.HTTP.MaxBodyBytes, Pprof: c.HTTP.Pprof, MaxHeaderBytes: c.HTTP.MaxHeaderBytes,
			ReadHeaderTimeout: c.HTTP.ReadHeaderTimeout, ReadTimeout: c.HTTP.ReadTimeout,
			WriteTimeout: c.HTTP.WriteTimeout, IdleTimeout: c.HTTP.IdleTimeout},
		Ingest: ingest.Options{QueueSize: c.Ingest.QueueSize, BatchSize: c.Ingest.BatchSize, EnqueueTimeout: c.Ingest.EnqueueTimeout,
			Linger: c.Ingest.Linger, TTL: ttlFunc(c.Reactions), TombstoneTTL: c.Store.TombstoneTTL},
		ShutdownTimeout: c.Ingest.ShutdownTimeout,
		Durability:      c.Store.Durability,
		Durable:         durable.Options{Dir: c.Store.DataDir, SyncInterval: c.Store.SyncInterval, MinFreeBytes: c.Store.MinFreeBytes},
	}
	c.History.apply(&o)
	c.Sparkplug.apply(&o)
	c.MQTT.HomeAssistant.apply(&o)
	return o
}
