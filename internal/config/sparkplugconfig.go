package config

import (
	"errors"
	"fmt"

	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/sparkplug"
)

// SparkplugConfig is the sparkplug section: Sparkplug B edge nodes publishing on the
// embedded broker's spBv1.0/# topics (package sparkplug says what each message does).
type SparkplugConfig struct {
	Enabled bool            `mapstructure:"enabled"`
	Content string          `mapstructure:"content"` // edge or edge_device
	Rules   []SparkplugRule `mapstructure:"rules"`   // file only
	HostID  string          `mapstructure:"host_id"` // primary host id; "": none
}

// SparkplugRule is one entry of sparkplug.rules.
type SparkplugRule struct {
	Metric   string `mapstructure:"metric"`   // glob of metric names
	Reaction string `mapstructure:"reaction"` // "": the metric's name
	User     string `mapstructure:"user"`     // device (default) or value
	Ignore   bool   `mapstructure:"ignore"`
}

func defaultSparkplug() SparkplugConfig {
	return SparkplugConfig{Enabled: true, Content: sparkplug.ContentEdge}
}

// Options maps the section onto the decoder's options; nil when it is disabled.
func (s SparkplugConfig) Options() *sparkplug.Options {
	if !s.Enabled {
		return nil
	}
	o := &sparkplug.Options{Content: s.Content, HostID: s.HostID}
	for _, r := range s.Rules {
		o.Rules = append(o.Rules, sparkplug.Rule{Metric: r.Metric, Reaction: r.Reaction, User: r.User, Ignore: r.Ignore})
	}
	return o
}

// validate reports the problems of the section through bad, one per key, each
// wrapping sparkplug.ErrInvalidOptions.
func (s SparkplugConfig) validate(bad func(key string, v any, err error)) {
	o := s.Options()
	if o == nil {
		return
	}
	err := o.Validate()
	if err == nil {
		return
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *sparkplug.FieldError
		if errors.As(e, &fe) {
			bad("sparkplug."+fe.Field, fe.Value, fmt.Errorf("%s: %w", fe.Msg, sparkplug.ErrInvalidOptions))
		} else {
			bad("sparkplug", "", e)
		}
	}
}

// apply sets the broker's Sparkplug options.
func (s SparkplugConfig) apply(o *daemon.Options) { o.MQTT.Sparkplug = s.Options() }
