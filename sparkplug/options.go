package sparkplug

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/arina-dev/arina/ingest"
)

// Content modes for Options.Content.
const (
	ContentEdge       = "edge"        // content = the edge node id
	ContentEdgeDevice = "edge_device" // content = <edge node>:<device> for device metrics
)

// User sources for Rule.User.
const (
	UserDevice = "device" // user = the device id (the edge node id for node metrics); Boolean metrics
	UserValue  = "value"  // user = the metric's value (a string or an integer)
)

// DeviceSeparator joins edge node and device ids into one content id in
// ContentEdgeDevice mode. Not '/': identifiers may not hold it (every event must be
// expressible as an MQTT topic <prefix>/<content>/<reaction>).
const DeviceSeparator = ":"

// Defaults for Options.
const (
	DefaultMaxPayload = 256 << 10
	DefaultMaxNodes   = 100_000
	DefaultMaxDevices = 10_000
)

// ErrInvalidOptions is wrapped by every error Validate and New return for bad Options.
var ErrInvalidOptions = errors.New("invalid sparkplug options")

// FieldError is a problem with one field of Options; it wraps ErrInvalidOptions.
type FieldError struct {
	Field string // config key below sparkplug: "content", "rules[0].metric"
	Value any
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("sparkplug: %s %q: %s", e.Field, fmt.Sprint(e.Value), e.Msg)
}

// Unwrap returns ErrInvalidOptions.
func (e *FieldError) Unwrap() error { return ErrInvalidOptions }

// Rule maps the metrics whose name matches a glob onto memberships.
type Rule struct {
	// Metric is a path.Match pattern of metric names: '*' matches within one '/'
	// level, so "Inputs/Badge/*" matches "Inputs/Badge/1".
	Metric string
	// Reaction of the membership; "" means the metric's name, which must then be a
	// valid reaction type (no '/').
	Reaction string
	// User is UserDevice (default: a Boolean metric, true = add, false = remove) or
	// UserValue (the metric's value is the user; a new value replaces the previous
	// one, an empty or null value removes it).
	User string
	// Ignore: matching metrics are not memberships.
	Ignore bool
}

// Options configure a Decoder. The zero value decodes with the defaults of issue
// #18: content = edge node, reaction = metric name, user = device id, Boolean metrics.
type Options struct {
	Content    string // ContentEdge (default) or ContentEdgeDevice
	Rules      []Rule // first match wins; metrics no rule matches get the default mapping
	HostID     string // primary host id: spBv1.0/STATE/<HostID> is published (see Host)
	MaxPayload int    // largest payload decoded, bytes; default 256 KiB
	MaxNodes   int    // edge nodes remembered at once; default 100000
	MaxDevices int    // devices remembered per edge node; default 10000
}

func (o *Options) setDefaults() {
	if o.Content == "" {
		o.Content = ContentEdge
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.MaxNodes <= 0 {
		o.MaxNodes = DefaultMaxNodes
	}
	if o.MaxDevices <= 0 {
		o.MaxDevices = DefaultMaxDevices
	}
	for i := range o.Rules {
		if o.Rules[i].User == "" {
			o.Rules[i].User = UserDevice
		}
	}
}

// Validate reports every problem of the options (with their defaults) at once.
func (o Options) Validate() error {
	o.Rules = append([]Rule(nil), o.Rules...)
	o.setDefaults()
	return o.validate()
}

func (o *Options) validate() error {
	var errs []error
	bad := func(field string, v any, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: v, Msg: fmt.Sprintf(format, args...)})
	}
	switch o.Content {
	case ContentEdge, ContentEdgeDevice:
	default:
		bad("content", o.Content, "must be %s or %s", ContentEdge, ContentEdgeDevice)
	}
	if o.HostID != "" {
		if err := ingest.CheckID("host_id", o.HostID, ingest.MaxIDLen); err != nil {
			bad("host_id", o.HostID, "%v", err)
		}
	}
	for i, r := range o.Rules {
		key := fmt.Sprintf("rules[%d].", i)
		if r.Metric == "" {
			bad(key+"metric", r.Metric, "a glob is required")
		} else if _, err := path.Match(r.Metric, ""); err != nil {
			bad(key+"metric", r.Metric, "%v", err)
		}
		if r.Ignore {
			continue
		}
		switch r.User {
		case UserDevice, UserValue:
		default:
			bad(key+"user", r.User, "must be %s or %s", UserDevice, UserValue)
		}
		if r.Reaction == "" {
			if strings.Contains(r.Metric, "/") {
				bad(key+"reaction", r.Reaction, "required, as the names %q matches hold '/', which a reaction type cannot", r.Metric)
			}
		} else if err := ingest.CheckID("reaction", r.Reaction, ingest.MaxReactionLen); err != nil {
			bad(key+"reaction", r.Reaction, "%v", err)
		}
	}
	return errors.Join(errs...)
}

// rule returns the rule of a metric name: the first that matches, or the default.
func (o *Options) rule(name string) Rule {
	for _, r := range o.Rules {
		if ok, _ := path.Match(r.Metric, name); ok {
			return r
		}
	}
	return Rule{User: UserDevice}
}
