package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
	"github.com/arina-dev/arina/store/storetest"
)

// TestStore_RedisDown stops redis-server under two nodes: Apply fails quickly and says
// the store is unavailable, Healthy turns false, queries fail; after a restart (same
// port, append-only file) both nodes resume by themselves, the data written before is
// there and the change feed flows again.
func TestStore_RedisDown(t *testing.T) {
	srv := redistest.Start(t)
	var logA changeLog
	opts := redis.Options{Addrs: []string{srv.Addr()}, KeyPrefix: NewPrefix(), Timeout: time.Second, HealthInterval: 20 * time.Millisecond}
	a, b := MustOpen(t, opts), MustOpen(t, opts)
	MustFollow(t, a, logA.add)
	storetest.MustApply(t, a, add("kept", "r", "u1", 0), add("kept", "r", "u2", 0))
	storetest.MustApply(t, b, add("kept", "r", "u3", 0))

	srv.Stop()
	start := time.Now()
	err := a.Apply(context.Background(), []store.Op{add("lost", "r", "u", 0)}, make([]store.Result, 1))
	if took := time.Since(start); err == nil || took > 3*time.Second {
		t.Fatalf("Apply with Redis down = %v after %v; want an error within 3s", err, took)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Apply error %v does not wrap store.ErrUnavailable", err)
	}
	if a.Healthy() {
		t.Error("Healthy() = true right after a failed Apply")
	}
	waitFor(t, 5*time.Second, func() error { // b only notices by its health checks
		if b.Healthy() {
			return errors.New("node b still healthy with Redis down")
		}
		return nil
	})
	if _, err := b.Counts(context.Background(), "kept"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Counts with Redis down error = %v, want a failure", err)
	}
	if _, err := b.PurgeTombstones(context.Background(), 1); err == nil {
		t.Error("PurgeTombstones with Redis down succeeded")
	}

	srv.Restart()
	waitFor(t, 10*time.Second, func() error {
		if !a.Healthy() || !b.Healthy() {
			return fmt.Errorf("healthy: a %v, b %v", a.Healthy(), b.Healthy())
		}
		return nil
	})
	if got := storetest.CountsMap(t, b, "kept"); got["r"] != 3 {
		t.Fatalf("after the restart Counts(kept) = %v, want r: 3", got)
	}
	if got := storetest.MustApply(t, a, add("kept", "r", "u4", 0)); got[0] != (store.Result{Changed: true, Count: 4}) {
		t.Fatalf("Apply after the restart = %+v", got[0])
	}
	// a's feed subscribes again by itself: changes b applies reach it again.
	waitFeed(t, b, &logA, "after")
	if st := a.Stats(); st.FeedResubscribes == 0 || st.ApplyErrors != 1 {
		t.Errorf("stats after the outage: %+v; want a resubscription and one failed Apply", st)
	}
}

// waitFeed applies a new membership of content on store from until the change feed
// that log records has delivered a change of content: a subscription may take a while.
func waitFeed(t *testing.T, from *redis.Store, log *changeLog, content string) {
	t.Helper()
	i := 0
	waitFor(t, 10*time.Second, func() error {
		i++
		storetest.MustApply(t, from, add(content, "r", "feed"+strconv.Itoa(i), 0))
		for _, c := range log.get() {
			if c.ContentID == content {
				return nil
			}
		}
		return fmt.Errorf("the feed received no change of %s", content)
	})
}

// TestStore_RedisHangs pauses redis-server (SIGSTOP): nothing answers, connections
// are not refused. Apply and queries give up within Options.Timeout; after the
// server continues, the store works again.
func TestStore_RedisHangs(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 500 * time.Millisecond
	s := MustOpen(t, redis.Options{Addrs: []string{srv.Addr()}, Timeout: timeout, HealthInterval: 20 * time.Millisecond})
	storetest.MustApply(t, s, add("c", "r", "u", 0))
	srv.Pause()
	for name, fn := range map[string]func() error{
		"Apply": func() error {
			return s.Apply(context.Background(), []store.Op{add("c", "r", "v", 0)}, make([]store.Result, 1))
		},
		"Counts": func() error { _, err := s.Counts(context.Background(), "c"); return err },
		"Members": func() error {
			_, err := s.Members(context.Background(), "c", "r", "", 0)
			return err
		},
	} {
		start := time.Now()
		err := fn()
		if took := time.Since(start); err == nil || took > timeout+time.Second {
			t.Errorf("%s with Redis hung = %v after %v; want an error within %v", name, err, took, timeout+time.Second)
		}
	}
	if s.Healthy() {
		t.Error("Healthy() = true with Redis hung")
	}
	srv.Resume()
	waitFor(t, 10*time.Second, func() error {
		if !s.Healthy() {
			return errors.New("not healthy after the server continued")
		}
		return nil
	})
	storetest.MustApply(t, s, add("c", "r", "w", 0))
	if ms, err := s.Members(context.Background(), "c", "r", "", 0); err != nil || len(ms) < 2 {
		t.Fatalf("Members after the pause = %v, %v", ms, err)
	}
}

func TestOpen_Unreachable(t *testing.T) {
	port, err := redistest.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	start := time.Now()
	s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}, Timeout: time.Second})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with nothing listening")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Open took %v to fail", took)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Open error %q does not name the address %s", err, addr)
	}
}

// TestOpen_StartUnreachable opens a store, with StartUnreachable, before its
// redis-server starts: Open returns a store that is not healthy and refuses writes;
// once the server listens, the store turns healthy by itself, runs what OnReachable
// was given once (at once if given after Redis answered), applies, and its change
// feed receives other nodes' changes (a first subscription, not counted as a
// resubscription). An error reply still fails Open.
func TestOpen_StartUnreachable(t *testing.T) {
	redistest.NeedServer(t)
	port, err := redistest.FreePort() // nothing listens there yet
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var log changeLog
	var reached atomic.Int32
	opts := redis.Options{Addrs: []string{addr}, KeyPrefix: NewPrefix(), Timeout: time.Second,
		HealthInterval: 20 * time.Millisecond, StartUnreachable: true}
	a := MustOpen(t, opts)
	MustFollow(t, a, log.add)
	a.OnReachable(func() { reached.Add(1) })
	late := MustOpen(t, opts) // given what to do when reached only once it was
	if a.Healthy() {
		t.Fatal("Healthy() = true with nothing listening")
	}
	err = a.Apply(context.Background(), []store.Op{add("c", "r", "early", 0)}, make([]store.Result, 1))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Apply before Redis started = %v, want store.ErrUnavailable", err)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("OnReachable ran %d times before Redis started", n)
	}

	redistest.StartAt(t, port)
	waitFor(t, 10*time.Second, func() error {
		if !a.Healthy() || reached.Load() != 1 {
			return fmt.Errorf("healthy %v, OnReachable ran %d times", a.Healthy(), reached.Load())
		}
		return nil
	})
	if got := storetest.MustApply(t, a, add("c", "r", "u1", 0)); got[0] != (store.Result{Changed: true, Count: 1}) {
		t.Fatalf("Apply once Redis answers = %+v", got[0])
	}
	waitFor(t, 10*time.Second, func() error {
		if !late.Healthy() {
			return errors.New("second store not healthy")
		}
		return nil
	})
	var lateReached atomic.Int32
	late.OnReachable(func() { lateReached.Add(1) })
	if n := lateReached.Load(); n != 1 {
		t.Errorf("OnReachable given after Redis answered ran %d times before returning, want once", n)
	}
	waitFeed(t, MustOpen(t, opts), &log, "c") // the feed may subscribe after the health check
	if st := a.Stats(); st.FeedResubscribes != 0 {
		t.Errorf("stats: %+v; the first subscription counted as a resubscription", st)
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("OnReachable ran %d times, want once", n)
	}

	// Reached but refused (cluster mode against a server without cluster support): a
	// mistake, not an outage, so Open fails.
	s, err := redis.Open(context.Background(), redis.Options{Addrs: []string{addr}, Mode: redis.ModeCluster,
		Timeout: time.Second, StartUnreachable: true})
	if err == nil {
		s.Close()
		t.Fatal("Open in cluster mode against a server without cluster support succeeded")
	}
}

func TestOpen_InvalidOptions(t *testing.T) {
	for name, tc := range map[string]struct {
		opts redis.Options
		want string
	}{
		"NoAddrs":          {redis.Options{}, "addrs"},
		"UnknownMode":      {redis.Options{Addrs: []string{"x:1"}, Mode: "ring"}, `mode "ring"`},
		"TwoAddrsSingle":   {redis.Options{Addrs: []string{"x:1", "y:1"}}, "mode single takes one address"},
		"SentinelNoName":   {redis.Options{Addrs: []string{"x:1"}, Mode: redis.ModeSentinel}, "master_name"},
		"ClusterDB":        {redis.Options{Addrs: []string{"x:1"}, Mode: redis.ModeCluster, DB: 2}, "db 2"},
		"BraceInPrefix":    {redis.Options{Addrs: []string{"x:1"}, KeyPrefix: "a{b}:"}, "key_prefix"},
		"NegativeDB":       {redis.Options{Addrs: []string{"x:1"}, DB: -1}, "db -1"},
		"EmptyAddr":        {redis.Options{Addrs: []string{" "}}, "empty address"},
		"NegativePoolSize": {redis.Options{Addrs: []string{"x:1"}, PoolSize: -1}, "pool_size"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := redis.Open(context.Background(), tc.opts)
			if !errors.Is(err, redis.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v; want ErrInvalidOptions mentioning %q", err, tc.want)
			}
		})
	}
	// Every problem at once.
	_, err := redis.Open(context.Background(), redis.Options{Mode: "x", KeyPrefix: "{"})
	if msg := fmt.Sprint(err); !strings.Contains(msg, "mode") || !strings.Contains(msg, "addrs") || !strings.Contains(msg, "key_prefix") {
		t.Fatalf("Open error = %v; want all three problems", err)
	}
}
