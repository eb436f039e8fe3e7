package main

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/config"
)

// exampleConfig is the example the lead maintains; a test keeps it loadable and valid.
const exampleConfig = "../../configs/arina.example.yaml"

// mapEnv returns a getenv backed by m, so tests never touch the process environment.
func mapEnv(m map[string]string) func(string) string {
	return func(key string) string { return m[key] }
}

// MustFlags builds the real command tree, finds the command args name (the root, for
// bare `arina`) and parses the rest of args with it, as cobra does before RunE. It
// returns the command's flag set, persistent flags included.
func MustFlags(tb testing.TB, getenv func(string) string, args ...string) *pflag.FlagSet {
	tb.Helper()
	root := newRootCmd(io.Discard, io.Discard, getenv)
	cmd, rest, err := root.Find(args)
	if err != nil {
		tb.Fatalf("finding command for %q: %v", args, err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		tb.Fatalf("parsing flags %q: %v", args, err)
	}
	return cmd.Flags()
}

// MustLoad parses args with the real commands and loads the configuration.
func MustLoad(tb testing.TB, env map[string]string, args ...string) config.Config {
	tb.Helper()
	cfg, err := config.Load(MustFlags(tb, mapEnv(env), args...), mapEnv(env))
	if err != nil {
		tb.Fatalf("config.Load(%q, env %v): %v", args, env, err)
	}
	return cfg
}

func TestLoadConfig_Defaults(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"serve"}, {"check-config"}, {"pub", "--content", "c", "--reaction", "r", "--user", "u"}, {"counts", "Stew"}} {
		t.Run(strings.Join(append([]string{"arina"}, args...), " "), func(t *testing.T) {
			t.Parallel()
			if got, want := MustLoad(t, nil, args...), config.Default(); !reflect.DeepEqual(got, want) {
				t.Fatalf("config = %+v, want defaults %+v", got, want)
			}
		})
	}
}

// TestLoadConfig_Precedence checks flags > environment > file > defaults for every key,
// with the flag set parsed by the real commands.
func TestLoadConfig_Precedence(t *testing.T) {
	t.Parallel()
	const file = "testdata/precedence.yaml"
	d := config.Default()
	keys := []struct {
		key, env, flag string // flag is "" when the key has no flag
		get            func(config.Config) string
		def, file      string // the default and the value in precedence.yaml
		envVal, flagV  string
	}{
		{"mqtt.listen", "ARINA_MQTT_LISTEN", "mqtt-listen", func(c config.Config) string { return c.MQTT.Listen },
			d.MQTT.Listen, "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"},
		{"mqtt.topic_prefix", "ARINA_MQTT_TOPIC_PREFIX", "mqtt-topic-prefix", func(c config.Config) string { return c.MQTT.TopicPrefix },
			d.MQTT.TopicPrefix, "file/prefix", "env/prefix", "flag/prefix"},
		{"mqtt.max_event_payload", "ARINA_MQTT_MAX_EVENT_PAYLOAD", "", func(c config.Config) string { return fmt.Sprint(c.MQTT.MaxEventPayload) },
			fmt.Sprint(d.MQTT.MaxEventPayload), "1001", "1002", ""},
		{"http.listen", "ARINA_HTTP_LISTEN", "http-listen", func(c config.Config) string { return c.HTTP.Listen },
			d.HTTP.Listen, "127.0.0.1:2001", "127.0.0.1:2002", "127.0.0.1:2003"},
		{"http.max_body_bytes", "ARINA_HTTP_MAX_BODY_BYTES", "", func(c config.Config) string { return fmt.Sprint(c.HTTP.MaxBodyBytes) },
			fmt.Sprint(d.HTTP.MaxBodyBytes), "2001", "2002", ""},
		{"ingest.queue_size", "ARINA_INGEST_QUEUE_SIZE", "", func(c config.Config) string { return fmt.Sprint(c.Ingest.QueueSize) },
			fmt.Sprint(d.Ingest.QueueSize), "3001", "3002", ""},
		{"ingest.batch_size", "ARINA_INGEST_BATCH_SIZE", "", func(c config.Config) string { return fmt.Sprint(c.Ingest.BatchSize) },
			fmt.Sprint(d.Ingest.BatchSize), "31", "32", ""},
		{"ingest.enqueue_timeout", "ARINA_INGEST_ENQUEUE_TIMEOUT", "", func(c config.Config) string { return c.Ingest.EnqueueTimeout.String() },
			d.Ingest.EnqueueTimeout.String(), "4.001s", "4.002s", ""},
		{"ingest.linger", "ARINA_INGEST_LINGER", "", func(c config.Config) string { return c.Ingest.Linger.String() },
			d.Ingest.Linger.String(), "11ms", "12ms", ""},
		{"ingest.shutdown_timeout", "ARINA_INGEST_SHUTDOWN_TIMEOUT", "", func(c config.Config) string { return c.Ingest.ShutdownTimeout.String() },
			d.Ingest.ShutdownTimeout.String(), "5.001s", "5.002s", ""},
		{"store.data_dir", "ARINA_STORE_DATA_DIR", "data-dir", func(c config.Config) string { return c.Store.DataDir },
			d.Store.DataDir, "file/data", "env/data", "flag/data"},
		// Three modes for four layers: flag and file share one; the env layer differs from both.
		{"store.durability", "ARINA_STORE_DURABILITY", "durability", func(c config.Config) string { return c.Store.Durability },
			d.Store.Durability, "none", "async", "none"},
		{"store.sync_interval", "ARINA_STORE_SYNC_INTERVAL", "", func(c config.Config) string { return c.Store.SyncInterval.String() },
			d.Store.SyncInterval.String(), "6.001s", "6.002s", ""},
		{"store.min_free_bytes", "ARINA_STORE_MIN_FREE_BYTES", "", func(c config.Config) string { return fmt.Sprint(c.Store.MinFreeBytes) },
			fmt.Sprint(d.Store.MinFreeBytes), "7001", "7002", ""},
		{"log.level", "ARINA_LOG_LEVEL", "log-level", func(c config.Config) string { return c.Log.Level },
			d.Log.Level, "warn", "error", "debug"},
		// Only two formats: the layers alternate so each one shows.
		{"log.format", "ARINA_LOG_FORMAT", "log-format", func(c config.Config) string { return c.Log.Format },
			d.Log.Format, "json", "text", "json"},
	}
	for _, k := range keys {
		t.Run(k.key, func(t *testing.T) {
			t.Parallel()
			type layer struct {
				name string
				args []string
				env  map[string]string
				want string
			}
			withFile := []string{"serve", "--config", file}
			envMap := map[string]string{k.env: k.envVal}
			layers := []layer{
				{"Default", []string{"serve"}, nil, k.def},
				{"File", withFile, nil, k.file},
				{"EnvOverDefault", []string{"serve"}, envMap, k.envVal},
				{"EnvOverFile", withFile, envMap, k.envVal},
				{"EmptyEnvIsUnset", withFile, map[string]string{k.env: ""}, k.file},
			}
			if k.flag != "" {
				flag := "--" + k.flag + "=" + k.flagV
				layers = append(layers,
					layer{"FlagOverDefault", []string{"serve", flag}, nil, k.flagV},
					layer{"FlagOverFile", append(slices.Clone(withFile), flag), nil, k.flagV},
					layer{"FlagOverEnvOverFile", append(slices.Clone(withFile), flag), envMap, k.flagV},
					layer{"BareArinaFlag", []string{"--config", file, flag}, envMap, k.flagV},
					layer{"CheckConfigFlag", []string{"check-config", "--config", file, flag}, envMap, k.flagV},
				)
			}
			for _, l := range layers {
				t.Run(l.name, func(t *testing.T) {
					t.Parallel()
					if got := k.get(MustLoad(t, l.env, l.args...)); got != l.want {
						t.Fatalf("%s = %q with args %q, env %v; want %q", k.key, got, l.args, l.env, l.want)
					}
				})
			}
		})
	}
}

// TestLoadConfig_OnlyGetenv checks that the process environment is not read behind
// getenv's back (viper's AutomaticEnv would): the getenv passed in decides.
func TestLoadConfig_OnlyGetenv(t *testing.T) {
	t.Setenv("ARINA_LOG_LEVEL", "not-a-level")
	t.Setenv("ARINA_MQTT_LISTEN", "127.0.0.1:9")
	if got, want := MustLoad(t, nil, "serve"), config.Default(); !reflect.DeepEqual(got, want) {
		t.Fatalf("config = %+v, want defaults %+v: the process environment leaked in", got, want)
	}
}

func TestLoadConfig_UnknownKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, key string
	}{
		{"TypoInSection", "testdata/unknown_key.yaml", "mqtt.listn"},
		{"UnknownSection", "testdata/unknown_section.yaml", "stroe.backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := MustFlags(t, mapEnv(nil), "serve", "--config", tc.file)
			_, err := config.Load(fs, mapEnv(nil))
			if !errors.Is(err, config.ErrUnknownKey) {
				t.Fatalf("err = %v, want one wrapping ErrUnknownKey", err)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %q, want it to name the key %q", err, tc.key)
			}
		})
	}
}

func TestLoadConfig_FileErrors(t *testing.T) {
	t.Parallel()
	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", "testdata/nope.yaml"), mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), "testdata/nope.yaml") {
			t.Fatalf("err = %v, want an error naming the file", err)
		}
	})
	t.Run("InvalidValuesAllReported", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", "testdata/invalid.yaml"), mapEnv(nil))
		for _, want := range []string{"mqtt.listen", "mqtt.topic_prefix", "ingest.queue_size", "log.level"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to name %s", err, want)
			}
		}
		for _, want := range []error{config.ErrInvalidAddress, broker.ErrInvalidTopicPrefix, config.ErrOutOfRange, config.ErrInvalidChoice} {
			if !errors.Is(err, want) {
				t.Errorf("err = %v, want it to wrap %v", err, want)
			}
		}
	})
	t.Run("EnvValueValidated", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"ARINA_INGEST_BATCH_SIZE": "0"}
		_, err := config.Load(MustFlags(t, mapEnv(env), "serve"), mapEnv(env))
		if !errors.Is(err, config.ErrOutOfRange) || !strings.Contains(err.Error(), "ingest.batch_size") {
			t.Fatalf("err = %v, want config.ErrOutOfRange naming ingest.batch_size", err)
		}
	})
	t.Run("WrongType", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config", "testdata/wrong_type.yaml"), mapEnv(nil))
		if err == nil || !strings.Contains(err.Error(), "queue_size") {
			t.Fatalf("err = %v, want an error naming queue_size", err)
		}
		if errors.Is(err, config.ErrUnknownKey) {
			t.Fatalf("err = %v wraps config.ErrUnknownKey, but the key is known", err)
		}
	})
}

// TestLoadConfig_Example keeps configs/arina.example.yaml honest: it loads without an
// unknown key, validates, and (as its header says) shows the defaults;
// internal/config's TestExample_ShowsEveryKey checks that it shows every key.
func TestLoadConfig_Example(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(MustFlags(t, mapEnv(nil), "check-config", "--config", exampleConfig), mapEnv(nil))
	if err != nil {
		t.Fatalf("loading %s: %v", exampleConfig, err)
	}
	if want := config.Default(); !reflect.DeepEqual(cfg, want) {
		t.Errorf("%s = %+v, want the defaults %+v (its header says every key shows its default)", exampleConfig, cfg, want)
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ listen, want string }{
		{":1883", "127.0.0.1:1883"},
		{"0.0.0.0:1883", "127.0.0.1:1883"},
		{"[::]:1883", "127.0.0.1:1883"},
		{"192.0.2.7:1883", "192.0.2.7:1883"},
		{"[::1]:4000", "[::1]:4000"},
		{"nohost", "nohost"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			t.Parallel()
			if got := clientAddr(tc.listen); got != tc.want {
				t.Fatalf("clientAddr(%q) = %q, want %q", tc.listen, got, tc.want)
			}
		})
	}
}

// TestLoadConfig_EmptySection: a section with every key commented out is known and
// leaves its keys at their defaults.
func TestLoadConfig_EmptySection(t *testing.T) {
	t.Parallel()
	cfg := MustLoad(t, nil, "check-config", "--config", "testdata/empty_section.yaml")
	if want := config.Default().Store; !reflect.DeepEqual(cfg.Store, want) {
		t.Fatalf("store = %+v, want the defaults %+v", cfg.Store, want)
	}
}

// TestLoadConfig_DurationNeedsUnit checks that every duration key, from the file or the
// environment, refuses a bare number (mapstructure would take it as nanoseconds) with
// the key, the value and an example, and still takes 0 and values with a unit.
func TestLoadConfig_DurationNeedsUnit(t *testing.T) {
	t.Parallel()
	// Every time.Duration key of Config, found by reflection, so a new one is covered.
	var keys []string
	var walk func(prefix string, rt reflect.Type)
	walk = func(prefix string, rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			key := prefix + f.Tag.Get("mapstructure")
			switch {
			case f.Type == reflect.TypeFor[time.Duration]():
				keys = append(keys, key)
			case f.Type.Kind() == reflect.Struct:
				walk(key+".", f.Type)
			}
		}
	}
	walk("", reflect.TypeFor[config.Config]())
	if len(keys) < 9 {
		t.Fatalf("found %d duration keys (%v), want at least 9", len(keys), keys)
	}
	for _, key := range keys {
		section, name, _ := strings.Cut(key, ".")
		env := "ARINA_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
		for _, tc := range []struct {
			name string
			env  map[string]string
			file string
		}{
			{"File", nil, fmt.Sprintf("%s:\n  %s: 5\n", section, name)},
			{"FileQuoted", nil, fmt.Sprintf("%s:\n  %s: \"5\"\n", section, name)},
			{"FileFloat", nil, fmt.Sprintf("%s:\n  %s: 5.0\n", section, name)},
			{"Env", map[string]string{env: "5"}, ""},
		} {
			t.Run(key+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				args := []string{"check-config"}
				if tc.file != "" {
					args = append(args, "--config", MustWriteConfig(t, tc.file))
				}
				stdout, _, err := MustRun(t, tc.env, args...)
				if !errors.Is(err, config.ErrDurationUnit) {
					t.Fatalf("check-config = %v, stdout %q; want an error wrapping ErrDurationUnit", err, stdout)
				}
				msg := err.Error()
				for _, want := range []string{key + ` "5`, "5s"} {
					if !strings.Contains(msg, want) {
						t.Errorf("error = %q, want it to contain %q", msg, want)
					}
				}
				if strings.Contains(msg, "decoding failed") || strings.Count(msg, "\n") != 1 {
					t.Errorf("error = %q, want one line after the heading, without mapstructure's paragraph", msg)
				}
			})
		}
	}
	t.Run("ZeroAndUnitsAccepted", func(t *testing.T) {
		t.Parallel()
		cfg := MustLoad(t, map[string]string{"ARINA_INGEST_SHUTDOWN_TIMEOUT": "45s", "ARINA_INGEST_ENQUEUE_TIMEOUT": "250ms"},
			"serve", "--config", MustWriteConfig(t, "reactions:\n  - type: gas_*\n    ttl: 0\nstore:\n  tombstone_ttl: 1h30m\n"))
		if cfg.Ingest.ShutdownTimeout != 45*time.Second || cfg.Ingest.EnqueueTimeout != 250*time.Millisecond ||
			cfg.Store.TombstoneTTL != 90*time.Minute || cfg.Reactions[0].TTL != 0 {
			t.Fatalf("config = %+v %+v %+v, want 45s, 250ms, 1h30m, 0", cfg.Ingest, cfg.Store, cfg.Reactions)
		}
	})
	t.Run("InList", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load(MustFlags(t, mapEnv(nil), "serve", "--config",
			MustWriteConfig(t, "reactions:\n  - type: x\n    ttl: 3600\n")), mapEnv(nil))
		if !errors.Is(err, config.ErrDurationUnit) || !strings.Contains(err.Error(), `reactions[0].ttl "3600"`) {
			t.Fatalf("err = %v, want config.ErrDurationUnit naming reactions[0].ttl and 3600", err)
		}
	})
	t.Run("NotADuration", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"ARINA_INGEST_SHUTDOWN_TIMEOUT": "soon"}
		_, err := config.Load(MustFlags(t, mapEnv(env), "serve"), mapEnv(env))
		if !errors.Is(err, config.ErrDurationFormat) || !strings.Contains(err.Error(), `ingest.shutdown_timeout "soon"`) {
			t.Fatalf("err = %v, want config.ErrDurationFormat naming ingest.shutdown_timeout and soon", err)
		}
	})
}

// TestLoadConfig_WrongTypeOneLine checks that a value of the wrong type is reported in
// one line per key with the key, the value and what is expected, every one at once.
func TestLoadConfig_WrongTypeOneLine(t *testing.T) {
	t.Parallel()
	file := MustWriteConfig(t, "mqtt:\n  max_connections: lots\n  allow_anonymous: maybe\n  publish_rate: fast\n")
	env := map[string]string{"ARINA_STORE_MIN_FREE_BYTES": "-1"}
	_, err := config.Load(MustFlags(t, mapEnv(env), "serve", "--config", file), mapEnv(env))
	if !errors.Is(err, config.ErrWrongType) {
		t.Fatalf("err = %v, want one wrapping ErrWrongType", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`mqtt.max_connections "lots": wrong type: want a whole number`,
		`mqtt.allow_anonymous "maybe": wrong type: want true or false`,
		`mqtt.publish_rate "fast": wrong type: want a number`,
		`store.min_free_bytes "-1": wrong type: want a whole number, 0 or more`,
	} {
		if !strings.Contains(msg, want+"") {
			t.Errorf("error = %q, want a line %q", msg, want)
		}
	}
	if strings.Contains(msg, "decoding failed") || strings.Contains(msg, "cannot parse") || strings.Count(msg, "\n") != 3 {
		t.Errorf("error = %q, want four lines, without mapstructure's wording", msg)
	}
}
