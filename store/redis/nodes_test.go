package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
	"github.com/arina-dev/arina/store/storetest"
)

// changeLog collects what Follow hands over.
type changeLog struct {
	mu      sync.Mutex
	changes []store.Change
}

func (l *changeLog) add(cs []store.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, cs...)
}

func (l *changeLog) get() []store.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// TestStore_TwoNodes runs two stores (two nodes) on one Redis: ops spread over both
// give both the same answers, and each node's feed receives the other's changes, and
// only those.
func TestStore_TwoNodes(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, opts redis.Options) {
		opts.KeyPrefix = NewPrefix()
		var logA, logB changeLog
		a, b := MustOpen(t, opts), MustOpen(t, opts)
		MustFollow(t, a, logA.add)
		MustFollow(t, b, logB.add)
		if a.NodeID() == b.NodeID() {
			t.Fatalf("both nodes have id %s", a.NodeID())
		}

		var wantA, wantB []store.Change // what each node's feed must receive (the other's changes)
		for i := range 40 {
			node, other := a, &wantB
			if i%3 == 0 {
				node, other = b, &wantA
			}
			op := store.Op{ContentID: fmt.Sprint("c", i%4), ReactionType: fmt.Sprint("r", i%2), UserID: fmt.Sprint("u", i%5),
				Action: store.Add, ExpiresAt: int64(i % 2 * 1000)}
			if i%7 == 6 {
				op.Action, op.ExpiresAt = store.Remove, 0
			}
			res := storetest.MustApply(t, node, op)[0]
			if res.Changed {
				*other = append(*other, store.Change{ContentID: op.ContentID, ReactionType: op.ReactionType, UserID: op.UserID,
					Action: op.Action, Count: res.Count, ExpiresAt: res.Expiry})
			}
		}
		for i := range 4 {
			c := fmt.Sprint("c", i)
			if ca, cb := storetest.MustCounts(t, a, c), storetest.MustCounts(t, b, c); !slices.Equal(ca, cb) {
				t.Fatalf("Counts(%s): node a %v, node b %v", c, ca, cb)
			}
		}
		ms, err := a.UserMemberships(context.Background(), "u1")
		ms2, err2 := b.UserMemberships(context.Background(), "u1")
		if err != nil || err2 != nil || !slices.Equal(ms, ms2) || len(ms) == 0 {
			t.Fatalf("UserMemberships(u1): node a %v, %v; node b %v, %v", ms, err, ms2, err2)
		}

		check := func(name string, log *changeLog, want []store.Change) {
			t.Helper()
			waitFor(t, 10*time.Second, func() error {
				if got := log.get(); len(got) < len(want) {
					return fmt.Errorf("node %s received %d changes, want %d", name, len(got), len(want))
				}
				return nil
			})
			got := log.get()
			now := time.Now().UnixMilli()
			for i := range got {
				if got[i].At <= 0 || got[i].At > now {
					t.Errorf("node %s: change %d At = %d, not a recent time", name, i, got[i].At)
				}
				got[i].At = 0
			}
			// Per content, the changes arrive in the order applied (one message per
			// batch, and in cluster mode per content).
			if !slices.Equal(got, want) {
				t.Fatalf("node %s received\n%+v\nwant\n%+v", name, got, want)
			}
		}
		check("a", &logA, wantA)
		check("b", &logB, wantB)
	})
}

// TestStore_LWWAcrossNodes applies the same timestamped events through two nodes in
// opposite orders: both end in the same sets, those the newest events say.
func TestStore_LWWAcrossNodes(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, opts redis.Options) {
		opts.KeyPrefix = NewPrefix()
		a, b := MustOpen(t, opts), MustOpen(t, opts)
		events := []store.Op{
			add("c", "r", "sam", 100), remove("c", "r", "sam", 200), // removed
			add("c", "r", "ann", 300), remove("c", "r", "ann", 250), // stays
			add("c", "r", "kim", 50), remove("c", "r", "kim", 50), // tie: the remove wins
			remove("d", "r", "zed", 10), add("d", "r", "zed", 5), // zed never a member in the end
			add("c", "yum", "sam", 7),
		}
		for i := range events {
			storetest.MustApply(t, a, events[i])
			storetest.MustApply(t, b, events[len(events)-1-i])
		}
		for _, s := range []*redis.Store{a, b} {
			ms, err := s.Members(context.Background(), "c", "r", "", 0)
			if err != nil || !slices.Equal(ms, []store.Member{{UserID: "ann"}}) {
				t.Fatalf("Members(c, r) = %v, %v; want [ann]", ms, err)
			}
			// Whether d is listed (at 0) depends on the order: b applied the add first.
			if got := storetest.CountsMap(t, s, "d"); got != nil && got["r"] != 0 {
				t.Fatalf("Counts(d) = %v, want none or r: 0", got)
			}
			if got, want := storetest.CountsMap(t, s, "c"), map[string]int64{"r": 1, "yum": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("Counts(c) = %v, want %v", got, want)
			}
		}
	})
}

// TestStore_LWWExtremeTS checks that timestamps are compared exactly over the whole
// int64 range (Lua numbers are doubles: 2^53+1 and 2^53 are equal as doubles).
func TestStore_LWWExtremeTS(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, opts redis.Options) {
		s := MustOpen(t, opts)
		big := int64(1) << 53
		got := storetest.MustApply(t, s,
			add("c", "r", "u", big+1),
			remove("c", "r", "u", big), // older by 1: stale
			add("c", "r", "v", math.MaxInt64),
			remove("c", "r", "v", math.MaxInt64-1), // stale
			add("c", "r", "w", 9),
			remove("c", "r", "w", 10), // 10 > 9 as numbers, not as text
		)
		want := []store.Result{
			{Changed: true, Count: 1}, {Count: 1, Stale: true},
			{Changed: true, Count: 2}, {Count: 2, Stale: true},
			{Changed: true, Count: 3}, {Changed: true, Count: 2},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("results\n got %+v\nwant %+v", got, want)
		}
		// Expiries are exact too.
		exp := int64(math.MaxInt64 - 1)
		r := storetest.MustApply(t, s, store.Op{ContentID: "c", ReactionType: "r", UserID: "x", Action: store.Add, ExpiresAt: exp},
			store.Op{ContentID: "c", ReactionType: "r", UserID: "x", Action: store.Expire, ExpiresAt: exp - 1})
		if r[0].Expiry != exp || r[1].Changed || r[1].Expiry != exp {
			t.Fatalf("expiry near MaxInt64: %+v", r)
		}
	})
}

// TestStore_ClusterIndexConverges has two nodes of a cluster add and remove the same
// memberships concurrently: the user indexes (written after the sets, in a second
// pipeline) end in agreement with the sets.
func TestStore_ClusterIndexConverges(t *testing.T) {
	opts := deployments[1].start(t)
	opts.KeyPrefix = NewPrefix()
	a, b := MustOpen(t, opts), MustOpen(t, opts)
	users := []string{"u0", "u1", "u2"}
	var wg sync.WaitGroup
	for n, s := range []*redis.Store{a, b} {
		wg.Go(func() {
			for i := range 200 {
				var ops []store.Op
				for j, u := range users {
					act := store.Add
					if (i+j+n)%2 == 1 {
						act = store.Remove
					}
					ops = append(ops, store.Op{ContentID: fmt.Sprint("c", (i+j)%5), ReactionType: "r", UserID: u, Action: act})
				}
				if err := s.Apply(context.Background(), ops, make([]store.Result, len(ops))); err != nil {
					t.Errorf("Apply: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	ctx := context.Background()
	for _, u := range users {
		var want []store.Membership
		for c := range 5 {
			ms, err := a.Members(ctx, fmt.Sprint("c", c), "r", "", 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.UserID == u {
					want = append(want, store.Membership{ContentID: fmt.Sprint("c", c), ReactionType: "r"})
				}
			}
		}
		got, err := b.UserMemberships(ctx, u)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("UserMemberships(%s) = %v, %v; the sets say %v", u, got, err, want)
		}
	}
}

// TestStore_FollowOnce: Follow subscribes once; a second call and a call after Close
// are errors, and start nothing Close would not stop.
func TestStore_FollowOnce(t *testing.T) {
	opts := redis.Options{Addrs: []string{redistest.Start(t).Addr()}, KeyPrefix: NewPrefix()}
	s := MustOpen(t, opts)
	MustFollow(t, s, func([]store.Change) {})
	if err := s.Follow(context.Background(), func([]store.Change) {}); err == nil {
		t.Error("a second Follow succeeded")
	}
	closed, err := redis.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if err := closed.Follow(context.Background(), func([]store.Change) {}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Follow after Close = %v, want store.ErrClosed", err)
	}
}
