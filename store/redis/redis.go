package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/arina-dev/arina/store"
)

// Store is a store.Store kept in Redis, shared by every Arina node that opens it with
// the same addresses and key prefix.
//
// Store is safe for concurrent use: queries may run from many goroutines while one
// goroutine calls Apply (and, never at the same time as Apply, Expiring and
// PurgeTombstones). go-redis's connection pool is the only shared state.
type Store struct {
	opts  Options
	c     goredis.UniversalClient
	k     keys
	split bool   // cluster: each content's ops in their own script, indexes written after
	node  string // this node's id on the change feed
	log   *slog.Logger

	applyMu sync.Mutex // the single writer's buffers; never contended when used as documented
	buf     applyBuf

	healthy atomic.Bool
	reached atomic.Bool // Redis answered once since Open (at Open, or later with StartUnreachable)
	closed  atomic.Bool
	once    sync.Once
	bg      context.Context    // the background goroutines' (Follow starts one); ends at Close
	cancel  context.CancelFunc // ends bg
	wg      sync.WaitGroup

	feedMu sync.Mutex      // guards ps against Close
	ps     *goredis.PubSub // nil until Follow

	reachMu  sync.Mutex // guards onReach and reachDue
	onReach  func()     // what OnReachable was given
	reachDue bool       // Redis answered after an unreachable start before OnReachable was called
	stats    counters
}

var _ store.Store = (*Store)(nil)

// Open connects to Redis as opts say, checks that it answers and loads the scripts
// (Follow subscribes to the change feed, OnReachable takes what to do once Redis
// answers after an unreachable start). It fails when Redis
// cannot be reached, naming the addresses tried, unless opts.StartUnreachable: then
// the store starts as after an outage. Once open, the store outlives Redis outages:
// operations fail (quickly, see Options.Timeout) and Healthy reports false until Redis
// answers again, then it resumes by itself.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.Addrs = append([]string(nil), opts.Addrs...)
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	node, err := newNodeID()
	if err != nil {
		return nil, fmt.Errorf("redis: making a node id: %w", err)
	}
	s := &Store{
		opts:  opts,
		k:     keys{prefix: opts.KeyPrefix},
		split: opts.Mode == ModeCluster,
		node:  node,
		log:   opts.Logger,
	}
	uo := &goredis.UniversalOptions{
		Addrs:      opts.Addrs,
		ClientName: "arina-" + node,
		DB:         opts.DB,
		Username:   opts.Username,
		Password:   opts.Password,
		TLSConfig:  opts.TLS,
		MasterName: opts.MasterName,
		// Nothing is resent behind Apply's back: a resent script would find its ops
		// applied already and report them unchanged (see "Failed batches" in docs/SCALE-OUT.md).
		MaxRetries:            -1,
		DialTimeout:           opts.DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           opts.IOTimeout,
		WriteTimeout:          opts.IOTimeout,
		ContextTimeoutEnabled: true,
		PoolSize:              opts.PoolSize,
		PoolTimeout:           opts.Timeout,
	}
	switch opts.Mode {
	case ModeSingle:
		s.c = goredis.NewClient(uo.Simple())
	case ModeSentinel:
		s.c = goredis.NewFailoverClient(uo.Failover())
	case ModeCluster:
		s.c = goredis.NewClusterClient(uo.Cluster())
	}
	where := fmt.Sprintf("%s %s", opts.Mode, strings.Join(opts.Addrs, ","))
	fail := func(err error) (*Store, error) {
		return nil, errors.Join(fmt.Errorf("redis: opening %s: %w", where, err), s.c.Close())
	}

	octx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	down := s.ping(octx)
	if down != nil && (!opts.StartUnreachable || !unavailable(down)) {
		return fail(fmt.Errorf("ping: %w", down))
	}
	if down == nil {
		if err := s.loadScripts(octx); err != nil {
			return fail(err)
		}
	}
	s.bg, s.cancel = context.WithCancel(context.Background())
	s.healthy.Store(down == nil)
	s.reached.Store(down == nil)
	s.wg.Go(func() { s.watch(s.bg, down != nil) })
	if down != nil {
		s.log.Warn("redis unreachable at start; trying again every health interval, not ready until it answers",
			"mode", opts.Mode, "addrs", opts.Addrs, "every", opts.HealthInterval, "err", down)
		return s, nil
	}
	s.log.Info("redis store open", "mode", opts.Mode, "addrs", opts.Addrs, "key_prefix", opts.KeyPrefix, "node", node)
	return s, nil
}

func newNodeID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// NodeID returns the id this store's changes carry on the change feed; it is random,
// made at Open.
func (s *Store) NodeID() string { return s.node }

// ping checks that Redis answers: in cluster mode, that every master answers and
// sees the cluster ok (every slot served).
func (s *Store) ping(ctx context.Context) error {
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster state not ok", c.Options().Addr)
			}
			return nil
		})
	}
	return s.c.Ping(ctx).Err()
}

// forEachMaster calls fn for each server holding data: the one server, or, in
// cluster mode, each master, concurrently.
func (s *Store) forEachMaster(ctx context.Context, fn func(context.Context, goredis.Cmdable) error) error {
	if cc, ok := s.c.(*goredis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return fn(ctx, c) })
	}
	return fn(ctx, s.c)
}

// watch checks every HealthInterval that Redis answers, until ctx ends. If Open could
// not reach Redis (unreached), the first time it answers watch runs what OnReachable
// was given.
func (s *Store) watch(ctx context.Context, unreached bool) {
	t := time.NewTicker(s.opts.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err := s.ping(pctx)
		if err == nil && !s.healthy.Load() {
			// Back after an outage, or reached for the first time: a restarted server
			// has lost its script cache.
			err = s.loadScripts(pctx)
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil && unreached {
			unreached = false
			s.reached.Store(true)
			s.healthy.Store(true)
			s.log.Info("redis store open", "mode", s.opts.Mode, "addrs", s.opts.Addrs, "key_prefix", s.opts.KeyPrefix, "node", s.node)
			s.reachMu.Lock()
			if s.onReach != nil {
				s.wg.Go(s.onReach)
			} else {
				s.reachDue = true
			}
			s.reachMu.Unlock()
			continue
		}
		s.setHealthy(err)
	}
}

// OnReachable takes fn to run once Redis first answers after an Open that could not
// reach it (Options.StartUnreachable): what the caller would have read at Open (the
// daemon's writer reads the memberships with an expiry) it can read then. fn runs
// once, on its own goroutine; if Redis answered already, before OnReachable returns.
// It never runs if Open reached Redis. Call OnReachable at most once.
func (s *Store) OnReachable(fn func()) {
	s.reachMu.Lock()
	due := s.reachDue
	s.onReach, s.reachDue = fn, false
	s.reachMu.Unlock()
	if due {
		fn()
	}
}

// waitsForReach reports whether Open could not reach Redis, it has not answered since,
// and OnReachable was given what to do when it does.
func (s *Store) waitsForReach() bool {
	s.reachMu.Lock()
	defer s.reachMu.Unlock()
	return !s.reached.Load() && s.onReach != nil
}

// setHealthy records whether the last exchange with Redis worked, logging changes.
func (s *Store) setHealthy(err error) {
	ok := err == nil
	if s.healthy.Swap(ok) == ok {
		return
	}
	if ok {
		s.log.Info("redis reachable again")
	} else {
		s.log.Warn("redis unreachable", "err", err)
	}
}

// observe marks the store unhealthy after an error that says Redis could not serve.
func (s *Store) observe(err error) {
	if unavailable(err) && !s.closed.Load() {
		s.setHealthy(err)
	}
}

// unavailable reports whether err means that Redis could not be reached or cannot
// serve now (loading its data, no master, cluster down, out of memory), as opposed to
// an answer about the request itself.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if !isReply(err) {
		return true
	}
	return goredis.IsLoadingError(err) || goredis.IsClusterDownError(err) || goredis.IsMasterDownError(err) ||
		goredis.IsReadOnlyError(err) || goredis.IsTryAgainError(err) || goredis.IsOOMError(err)
}

// Healthy reports whether Redis answered the last health check and the last Apply
// did not fail to reach it. The daemon reports it on /readyz.
func (s *Store) Healthy() bool { return !s.closed.Load() && s.healthy.Load() }

// wrap adds context to an error from Redis, marks the store unhealthy if Redis could
// not serve (then the error also wraps store.ErrUnavailable) and maps a closed client
// to store.ErrClosed.
func (s *Store) wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() || errors.Is(err, goredis.ErrClosed) {
		return store.ErrClosed
	}
	s.observe(err)
	what := fmt.Sprintf(format, args...)
	if !unavailable(err) {
		return fmt.Errorf("redis: %s: %w", what, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", what, store.ErrUnavailable, err)
}

// Close stops the change feed and the health checks and closes the connections.
// It is safe to call more than once; later calls return nil. After Close every
// method returns store.ErrClosed.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.feedMu.Lock()
		s.closed.Store(true) // under feedMu: Follow starts no goroutine after this
		ps := s.ps
		s.feedMu.Unlock()
		s.cancel()
		if ps != nil {
			if e := ps.Close(); e != nil && !errors.Is(e, goredis.ErrClosed) {
				err = errors.Join(err, fmt.Errorf("redis: closing the change feed: %w", e))
			}
		}
		s.wg.Wait()
		if e := s.c.Close(); e != nil {
			err = errors.Join(err, fmt.Errorf("redis: closing the client: %w", e))
		}
		s.log.Info("redis store closed", "node", s.node)
	})
	return err
}
