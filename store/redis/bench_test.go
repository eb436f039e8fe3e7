package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
)

// BenchmarkStore_Apply applies batches of adds, then removes of the same users (so
// that every op changes a set and the data stays small), over 64 contents, on one
// server and on a 3-master cluster on loopback. It reports ops/s and round trips per
// batch (Stats.RoundTrips per Apply).
func BenchmarkStore_Apply(b *testing.B) {
	for _, mode := range []string{"single", "cluster"} {
		for _, size := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", mode, size), func(b *testing.B) {
				opts := redis.Options{Addrs: []string{}, KeyPrefix: NewPrefix(), Timeout: 30 * time.Second}
				if mode == "cluster" {
					opts.Mode, opts.Addrs = redis.ModeCluster, redistest.StartCluster(b, 3).Addrs()
				} else {
					opts.Addrs = []string{redistest.Start(b).Addr()}
				}
				s := MustOpen(b, opts)
				adds, removes := make([]store.Op, size), make([]store.Op, size)
				for i := range adds {
					adds[i] = store.Op{ContentID: fmt.Sprint("content-", i%64), ReactionType: "fire", UserID: fmt.Sprint("user-", i), Action: store.Add}
					removes[i] = adds[i]
					removes[i].Action = store.Remove
				}
				out := make([]store.Result, size)
				ctx := context.Background()
				before := s.Stats()
				b.ReportAllocs()
				b.ResetTimer()
				n := 0
				for b.Loop() {
					ops := adds
					if n%2 == 1 {
						ops = removes
					}
					n++
					if err := s.Apply(ctx, ops, out); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				after := s.Stats()
				b.ReportMetric(float64(n*size)/b.Elapsed().Seconds(), "ops/s")
				b.ReportMetric(float64(after.RoundTrips-before.RoundTrips)/float64(after.Applies-before.Applies), "roundtrips/batch")
			})
		}
	}
}
