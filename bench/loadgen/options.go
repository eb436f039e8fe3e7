package loadgen

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Protocol is an MQTT protocol version as it appears in CONNECT.
type Protocol byte

// The protocol versions the generator speaks.
const (
	MQTT311 Protocol = 4 // MQTT 3.1.1 (paho client: github.com/eclipse/paho.mqtt.golang)
	MQTT5   Protocol = 5 // MQTT 5 (paho client: github.com/eclipse/paho.golang)
)

// String returns "3.1.1" or "5".
func (p Protocol) String() string {
	switch p {
	case MQTT311:
		return "3.1.1"
	case MQTT5:
		return "5"
	}
	return fmt.Sprintf("protocol(%d)", byte(p))
}

// Payload formats of generated events.
const (
	PayloadText = "text" // "add u17", "remove u17"
	PayloadJSON = "json" // {"user_id":"u17","action":"add"}
)

// Defaults for zero Options fields.
const (
	DefaultBroker           = "127.0.0.1:1883"
	DefaultPublishers       = 16
	DefaultInFlight         = 100
	DefaultDuration         = 10 * time.Second // when neither Events nor Duration is set
	DefaultContents         = 1000
	DefaultReactions        = 8
	DefaultUsers            = 10000
	DefaultTopicPrefix      = "kitchen"
	DefaultSampleEvery      = 100
	DefaultPollInterval     = time.Millisecond
	DefaultAckTimeout       = 10 * time.Second
	DefaultProgressInterval = time.Second
)

// ErrInvalidOptions is wrapped by every error Run returns for bad Options.
var ErrInvalidOptions = errors.New("invalid options")

// Options configure one run. Zero fields take the defaults above, except QoS and
// RemoveRatio, whose zero values are meaningful.
type Options struct {
	Broker   string   // MQTT broker host:port, or a URL mqtt://, mqtts://, ws://, wss://
	Protocol Protocol // MQTT311 or MQTT5 (default)
	Client   string   // ClientWire (default) or ClientPaho
	// NoPipeline makes the wire client run a goroutine per in-flight QoS 1 publish, as
	// the paho client does, instead of letting each connection's reader send the next
	// publish of a slot as its PUBACK arrives (see pipeline).
	NoPipeline bool
	// WriteEach makes the wire client write every packet with a write of its own, as
	// paho and a device's MQTT stack do, instead of gathering what its workers queued
	// into one write.
	WriteEach  bool
	QoS        byte // 0 or 1
	Publishers int  // connections publishing in parallel
	InFlight   int  // publishes outstanding per connection (QoS 1: awaiting PUBACK; QoS 0: being written)

	Events   int64         // events to send in the measured phase, over all publishers; 0: no limit
	Duration time.Duration // length of the measured phase; 0: no limit (DefaultDuration if Events is 0 too)
	Warmup   time.Duration // publish this long first, and leave it out of the report
	Rate     float64       // events/s over all publishers (warm-up included); 0: as fast as acknowledgements allow

	Contents int // size of the content id space: <ContentPrefix>c0 .. <ContentPrefix>c<Contents-1>
	// ContentPrefix starts every content id the run writes (events and probes), so that
	// its data can be told apart from real contents; no / + # or control characters.
	ContentPrefix string
	Reactions     int     // size of the reaction type space: r0 ..
	Users         int     // size of the user id space: u0 ..
	Zipf          float64 // 0: contents and reactions uniform; > 1: Zipf-distributed with this exponent s (users stay uniform)
	RemoveRatio   float64 // share of events that are removes, 0..1
	TopicPrefix   string  // events go to <TopicPrefix>/<content>/<reaction>
	Payload       string  // PayloadText (default) or PayloadJSON
	TS            bool    // give every event a "ts", the generator's clock in unix ms (PayloadJSON only)
	Seed          uint64  // seed of the id generators; runs with equal seeds draw equal sequences per worker

	// BrokerPID, when set, is the broker's process id on this machine: its CPU time
	// (user and system, from /proc/<pid>/stat) over the measured phase is reported, and
	// divided by the events it acknowledged (QoS 1) or confirmed reading (QoS 0).
	BrokerPID int

	// HTTPURL, when set, is an Arina HTTP API (http://host:port). One publisher then
	// replaces every SampleEvery-th event of its own, when no probe is outstanding, with
	// an add on a fresh content and polls GET /api/v1/contents/{id} every PollInterval
	// until that content is visible: the visibility latency.
	HTTPURL      string
	SampleEvery  int
	PollInterval time.Duration
	// HTTPToken is the bearer token of the probes' requests, for an API with a tokens
	// file (read scope); HTTPTLS configures https:// (nil: the system's CAs).
	HTTPToken string
	HTTPTLS   *tls.Config

	// Subscribe adds one connection subscribed to <TopicPrefix>/# with QoS, counting what
	// the broker relays.
	Subscribe bool

	// AckTimeout bounds the wait for each PUBACK (and for each probe to become visible);
	// a publish not acknowledged by then counts as an "ack_timeout" error.
	AckTimeout time.Duration

	// Login is the credentials and TLS of a secured broker.
	Login Login
	// ClientIDPrefix starts every client id: publisher i is <prefix><i>, the subscriber
	// <prefix>sub. Default: arina-bench-<run id>-.
	ClientIDPrefix string

	// Progress, if set, is called every ProgressInterval from the goroutine running Run.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Broker == "" {
		o.Broker = DefaultBroker
	}
	if o.Protocol == 0 {
		o.Protocol = MQTT5
	}
	if o.Client == "" {
		o.Client = ClientWire
	}
	if o.Publishers == 0 {
		o.Publishers = DefaultPublishers
	}
	if o.InFlight == 0 {
		o.InFlight = DefaultInFlight
	}
	if o.Events == 0 && o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Contents == 0 {
		o.Contents = DefaultContents
	}
	if o.Reactions == 0 {
		o.Reactions = DefaultReactions
	}
	if o.Users == 0 {
		o.Users = DefaultUsers
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if o.Payload == "" {
		o.Payload = PayloadText
		if o.TS {
			o.Payload = PayloadJSON
		}
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = DefaultSampleEvery
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.ProgressInterval == 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	o.HTTPURL = strings.TrimRight(o.HTTPURL, "/")
}

// validate reports every bad field at once.
func (o *Options) validate() error {
	var v invalid
	bad := v.add
	v.protocol(o.Protocol)
	v.broker(o.Broker)
	if o.Client != ClientWire && o.Client != ClientPaho {
		bad("client", fmt.Sprintf("%q", o.Client), "want wire or paho")
	}
	if o.QoS > 1 {
		bad("qos", o.QoS, "want 0 or 1")
	}
	if o.Rate < 0 {
		bad("rate", o.Rate, "want 0 (unpaced) or more")
	}
	if o.Publishers < 1 {
		bad("publishers", o.Publishers, "want at least 1")
	}
	if o.InFlight < 1 || o.InFlight > 65535 {
		bad("inflight", o.InFlight, "want 1..65535")
	}
	if o.Events < 0 {
		bad("events", o.Events, "want 0 or more")
	}
	if o.Duration < 0 {
		bad("duration", o.Duration, "want 0 or more")
	}
	if o.Warmup < 0 {
		bad("warmup", o.Warmup, "want 0 or more")
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"contents", o.Contents}, {"reactions", o.Reactions}, {"users", o.Users}} {
		if f.n < 1 {
			bad(f.name, f.n, "want at least 1")
		}
	}
	if o.Zipf != 0 && !(o.Zipf > 1) {
		bad("zipf", o.Zipf, "want 0 (uniform) or an exponent above 1")
	}
	if !(o.RemoveRatio >= 0 && o.RemoveRatio <= 1) {
		bad("remove_ratio", o.RemoveRatio, "want 0..1")
	}
	if strings.ContainsAny(o.ContentPrefix, "/+#") || strings.ContainsFunc(o.ContentPrefix, unicode.IsControl) {
		bad("content_prefix", fmt.Sprintf("%q", o.ContentPrefix), "want no / + # or control characters")
	}
	if o.TopicPrefix == "" || strings.ContainsAny(o.TopicPrefix, "+#") ||
		strings.HasPrefix(o.TopicPrefix, "/") || strings.HasSuffix(o.TopicPrefix, "/") {
		bad("topic_prefix", fmt.Sprintf("%q", o.TopicPrefix), "want topic levels without wildcards or outer slashes")
	}
	if o.Payload != PayloadText && o.Payload != PayloadJSON {
		bad("payload", fmt.Sprintf("%q", o.Payload), "want text or json")
	}
	if o.TS && o.Payload != PayloadJSON {
		bad("ts", o.TS, "needs the json payload")
	}
	if o.HTTPURL != "" && !strings.HasPrefix(o.HTTPURL, "http://") && !strings.HasPrefix(o.HTTPURL, "https://") {
		bad("http_url", fmt.Sprintf("%q", o.HTTPURL), "want http://host:port")
	}
	if o.BrokerPID < 0 {
		bad("broker_pid", o.BrokerPID, "want a process id or 0")
	}
	if o.SampleEvery < 1 {
		bad("sample_every", o.SampleEvery, "want at least 1")
	}
	if o.PollInterval < 0 {
		bad("poll_interval", o.PollInterval, "want more than 0")
	}
	if o.AckTimeout < 0 {
		bad("ack_timeout", o.AckTimeout, "want more than 0")
	}
	if o.ProgressInterval < 0 {
		bad("progress_interval", o.ProgressInterval, "want more than 0")
	}
	return v.err()
}

// invalid gathers the bad fields of an options struct, so that validate reports them
// all at once.
type invalid []error

func (v *invalid) add(field string, value any, want string) {
	*v = append(*v, fmt.Errorf("%w: %s %v: %s", ErrInvalidOptions, field, value, want))
}

func (v *invalid) protocol(p Protocol) {
	if p != MQTT311 && p != MQTT5 {
		v.add("protocol", byte(p), "want 4 (3.1.1) or 5")
	}
}

func (v *invalid) broker(addr string) {
	if _, err := parseBroker(addr); err != nil {
		v.add("broker", fmt.Sprintf("%q", addr), "want host:port or a URL mqtt://, mqtts://, ws://, wss://")
	}
}

func (v invalid) err() error { return errors.Join(v...) }
