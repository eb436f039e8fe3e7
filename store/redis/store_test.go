package redis_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
	"github.com/arina-dev/arina/store/storetest"
)

func TestStore_Conformance(t *testing.T) {
	forEachDeployment(t, func(t *testing.T, opts redis.Options) {
		storetest.Run(t, func(tb testing.TB) store.Store { return MustOpen(tb, opts) })
	})
}

func TestStore_Sentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "arina")
	s := MustOpen(t, redis.Options{Mode: redis.ModeSentinel, Addrs: []string{sentinel.Addr()}, MasterName: "arina"})
	storetest.MustApply(t, s, add("c", "r", "u", 0), add("c", "r", "v", 0))
	if got, want := storetest.MustCounts(t, s, "c"), []store.ReactionCount{{ReactionType: "r", Count: 2}}; !slices.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
}

// TestStore_AwkwardIDs uses identifiers with the characters that matter to Redis key
// names, hash tags and SCAN patterns, in every deployment (a '{' in a content id
// would split its keys over cluster slots if the hash tag were not robust).
func TestStore_AwkwardIDs(t *testing.T) {
	ids := []string{"{", "}", "{x}", "}{", "a{b}c", "*", "?", "[a]", `\`, ":", "x:m:y", "日本語", "a b", "\u00ff\u00ff"}
	forEachDeployment(t, func(t *testing.T, opts redis.Options) {
		opts.KeyPrefix = "we*ird?[p]\\:" // glob characters in the prefix too
		s := MustOpen(t, opts)
		var ops []store.Op
		for _, c := range ids {
			for _, r := range ids {
				ops = append(ops, store.Op{ContentID: c, ReactionType: r, UserID: c + r, Action: store.Add, ExpiresAt: 1000})
			}
		}
		storetest.MustApply(t, s, ops...)
		ctx := context.Background()
		for _, c := range ids {
			counts := storetest.MustCounts(t, s, c)
			if len(counts) != len(ids) {
				t.Fatalf("Counts(%q) = %v, want %d reactions", c, counts, len(ids))
			}
			for _, r := range ids {
				ms, err := s.Members(ctx, c, r, "", 0)
				if err != nil || len(ms) != 1 || ms[0] != (store.Member{UserID: c + r, ExpiresAt: 1000}) {
					t.Fatalf("Members(%q, %q) = %v, %v", c, r, ms, err)
				}
			}
			um, err := s.UserMemberships(ctx, c+ids[0])
			if err != nil || len(um) == 0 {
				t.Fatalf("UserMemberships(%q) = %v, %v", c+ids[0], um, err)
			}
		}
		all, err := s.Contents(ctx, "", "", 0)
		want := slices.Sorted(slices.Values(ids))
		if err != nil || !slices.Equal(all, want) {
			t.Fatalf("Contents = %q, %v; want %q", all, err, want)
		}
		for _, p := range []string{"{", "}", "a", "\u00ff", "*"} {
			got, err := s.Contents(ctx, p, "", 0)
			var want []string
			for _, id := range all {
				if len(id) >= len(p) && id[:len(p)] == p {
					want = append(want, id)
				}
			}
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("Contents(prefix %q) = %q, %v; want %q", p, got, err, want)
			}
		}
		n := 0
		s.Expiring(func(c, r, u string, at int64) {
			if u != c+r || at != 1000 {
				t.Errorf("Expiring gave %q %q %q %d", c, r, u, at)
			}
			n++
		})
		if n != len(ops) {
			t.Fatalf("Expiring saw %d memberships, want %d", n, len(ops))
		}
	})
}

func TestStore_InvalidOps(t *testing.T) {
	s := MustOpen(t, redis.Options{Addrs: []string{redistest.Start(t).Addr()}})
	for name, op := range map[string]store.Op{
		"NoAction":     {ContentID: "c", ReactionType: "r", UserID: "u"},
		"BadAction":    {ContentID: "c", ReactionType: "r", UserID: "u", Action: 9},
		"EmptyContent": {ReactionType: "r", UserID: "u", Action: store.Add},
		"EmptyUser":    {ContentID: "c", ReactionType: "r", Action: store.Add},
		"NUL":          {ContentID: "c\x00d", ReactionType: "r", UserID: "u", Action: store.Add},
	} {
		t.Run(name, func(t *testing.T) {
			ops := []store.Op{{ContentID: "ok", ReactionType: "r", UserID: "u", Action: store.Add}, op}
			if err := s.Apply(context.Background(), ops, make([]store.Result, 2)); err == nil {
				t.Fatal("Apply accepted an invalid op")
			}
			if _, err := s.Counts(context.Background(), "ok"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused batch applied something: Counts error = %v", err)
			}
		})
	}
	if err := s.Apply(context.Background(), []store.Op{add("c", "r", "u", 0)}, nil); err == nil {
		t.Fatal("Apply accepted fewer results than ops")
	}
}

func TestStore_ScriptCacheFlushed(t *testing.T) {
	srv := redistest.Start(t)
	s := MustOpen(t, redis.Options{Addrs: []string{srv.Addr()}})
	storetest.MustApply(t, s, add("c", "r", "u", 0))
	if _, err := redistest.Do(srv.Addr(), "SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	storetest.MustApply(t, s, add("c", "r", "v", 0))
	if ms, err := s.Members(context.Background(), "c", "r", "", 0); err != nil || len(ms) != 2 {
		t.Fatalf("Members = %v, %v", ms, err)
	}
	if st := s.Stats(); st.ScriptLoads != 1 {
		t.Fatalf("ScriptLoads = %d, want 1", st.ScriptLoads)
	}
}

func TestStore_Metrics(t *testing.T) {
	s := MustOpen(t, redis.Options{Addrs: []string{redistest.Start(t).Addr()}})
	storetest.MustApply(t, s, add("c", "r", "u", 0), add("c", "r", "v", 0))
	storetest.MustApply(t, s, remove("c", "r", "u", 0))
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"arina_redis_up":                      1,
		"arina_redis_applies_total":           2,
		"arina_redis_apply_ops_total":         3,
		"arina_redis_apply_round_trips_total": 2,
		"arina_redis_feed_resubscribes_total": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present: %v), want %v", name, v, ok, want)
		}
	}
}
