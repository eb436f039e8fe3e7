package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Deployment modes for Options.Mode.
const (
	ModeSingle   = "single"   // one server (or a proxy in front of several)
	ModeSentinel = "sentinel" // a master found through Redis Sentinel
	ModeCluster  = "cluster"  // Redis Cluster
)

// Defaults for Options.
const (
	DefaultKeyPrefix      = "arina:"
	DefaultDialTimeout    = 2 * time.Second
	DefaultIOTimeout      = 3 * time.Second
	DefaultTimeout        = 5 * time.Second
	DefaultHealthInterval = time.Second
)

// ErrInvalidOptions is wrapped by every error Open returns for bad Options.
var ErrInvalidOptions = errors.New("invalid options")

// Options configure a Redis store. The zero value of every field but Addrs has a
// working default.
type Options struct {
	// Addrs: host:port of the server (single), of the sentinels (sentinel) or of some
	// cluster nodes (cluster).
	Addrs      []string
	Mode       string // ModeSingle (default), ModeSentinel or ModeCluster
	MasterName string // sentinel: the name of the master the sentinels watch
	Username   string // ACL user; empty: the default user
	Password   string
	TLS        *tls.Config // nil: plain TCP
	DB         int         // database number; single and sentinel only (a cluster has only 0)

	// KeyPrefix starts every key and the change feed's channel name; default
	// "arina:". Several Arina deployments may share a Redis with different prefixes,
	// none starting with another ("a:" and "a:u:" would mix their keys). It may not
	// hold '{' or '}' (the keys' hash tags must be the store's own).
	KeyPrefix string

	Logger *slog.Logger // nil: discard

	DialTimeout time.Duration // connecting to a server; default 2s
	IOTimeout   time.Duration // reading or writing one reply or request; default 3s
	// Timeout bounds one Apply, one query and one health check from start to end,
	// connecting included; default 5s. (Expiring and PurgeTombstones walk the whole
	// keyspace: only their single commands are bounded, by IOTimeout.)
	Timeout time.Duration
	// HealthInterval is how often a background PING checks that Redis is reachable
	// (Healthy); default 1s.
	HealthInterval time.Duration
	PoolSize       int // connections per server; 0: go-redis's default (10 per CPU)

	// StartUnreachable makes Open return a store even when Redis cannot be reached
	// yet (refused, timed out, not resolved; an error reply such as a wrong password
	// still fails Open). The store starts unhealthy, and every HealthInterval it tries
	// again; once Redis answers it loads the scripts, the change feed subscribes (if
	// Follow was called), and the function given to OnReachable runs. Without it Open
	// fails.
	StartUnreachable bool
}

func (o *Options) setDefaults() {
	if o.Mode == "" {
		o.Mode = ModeSingle
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = DefaultIOTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultHealthInterval
	}
}

// Validate reports every problem of the options (with their defaults) at once, as
// Open would, without connecting.
func (o Options) Validate() error {
	o.setDefaults()
	return o.validate()
}

// validate reports every problem of options with defaults set, at once.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("redis: "+format+": %w", append(args, ErrInvalidOptions)...))
	}
	switch o.Mode {
	case ModeSingle, ModeSentinel, ModeCluster:
	default:
		bad("mode %q: must be %s, %s or %s", o.Mode, ModeSingle, ModeSentinel, ModeCluster)
	}
	if len(o.Addrs) == 0 {
		bad("addrs: at least one address required")
	}
	for _, a := range o.Addrs {
		if strings.TrimSpace(a) == "" {
			bad("addrs: empty address")
		}
	}
	if o.Mode == ModeSingle && len(o.Addrs) > 1 {
		bad("addrs %q: mode single takes one address", o.Addrs)
	}
	if o.Mode == ModeSentinel && o.MasterName == "" {
		bad("master_name: required in mode sentinel")
	}
	if o.Mode == ModeCluster && o.DB != 0 {
		bad("db %d: a cluster has only database 0", o.DB)
	}
	if o.DB < 0 {
		bad("db %d: must not be negative", o.DB)
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		bad("key_prefix %q: must not contain '{' or '}'", o.KeyPrefix)
	}
	if o.PoolSize < 0 {
		bad("pool_size %d: must not be negative", o.PoolSize)
	}
	return errors.Join(errs...)
}
