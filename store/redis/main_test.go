package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
)

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; the fault tests make many on purpose.
	redis.SetLibraryLogger(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

// prefixes makes every store's key prefix unique, so that stores on one server start
// empty and do not see each other's change feed.
var prefixes atomic.Int64

// NewPrefix returns a key prefix no other store in this test binary uses.
func NewPrefix() string { return fmt.Sprintf("t%d:", prefixes.Add(1)) }

// MustOpen opens a store, failing the test on error; the store is closed by cleanup.
func MustOpen(tb testing.TB, opts redis.Options) *redis.Store {
	tb.Helper()
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = NewPrefix()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := redis.Open(ctx, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// MustFollow makes s hand the changes other nodes apply to onChange.
func MustFollow(tb testing.TB, s *redis.Store, onChange func([]store.Change)) {
	tb.Helper()
	if err := s.Follow(context.Background(), onChange); err != nil {
		tb.Fatalf("Follow: %v", err)
	}
}

// deployment is a Redis deployment the tests run against.
type deployment struct {
	name  string
	start func(tb testing.TB) redis.Options // starts servers; returns options without a prefix
}

var deployments = []deployment{
	{"Single", func(tb testing.TB) redis.Options {
		return redis.Options{Addrs: []string{redistest.Start(tb).Addr()}}
	}},
	{"Cluster", func(tb testing.TB) redis.Options {
		return redis.Options{Mode: redis.ModeCluster, Addrs: redistest.StartCluster(tb, 3).Addrs()}
	}},
}

// forEachDeployment runs fn as a subtest per deployment.
func forEachDeployment(t *testing.T, fn func(t *testing.T, opts redis.Options)) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) { fn(t, d.start(t)) })
	}
}

// waitFor calls fn until it returns nil, failing the test with its last error after
// timeout.
func waitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %v", timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 50*time.Millisecond)
	}
}

func add(c, r, u string, ts int64) store.Op {
	return store.Op{ContentID: c, ReactionType: r, UserID: u, Action: store.Add, TS: ts}
}

func remove(c, r, u string, ts int64) store.Op {
	return store.Op{ContentID: c, ReactionType: r, UserID: u, Action: store.Remove, TS: ts}
}
