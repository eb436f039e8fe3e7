package durable_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
)

// BenchmarkDurable_Recover measures start-up: opening a data directory holding N
// memberships (10k contents x 5 reactions, users spread over 1M ids) and rebuilding the
// memory index. The directory is written once, before timing.
//
// In "users=random" each membership's user is drawn at random among the 1M, as when
// the directory was filled over MQTT by devices, instead of the near-sequential order
// of the others, whose users the index finds in the cache: start-to-ready of the real
// process took 3x the benchmark until recovery interned users in batches. In "-ts"
// every membership was added with a TS (live unix ms), which the index remembers.
func BenchmarkDurable_Recover(b *testing.B) {
	for _, bc := range []struct {
		n       int
		random  bool
		stamped bool
	}{{1_000_000, false, false}, {10_000_000, false, false}, {10_000_000, false, true},
		{1_000_000, true, false}, {10_000_000, true, false}} {
		n := bc.n
		name := fmt.Sprintf("memberships=%dM", n/1_000_000)
		if bc.stamped {
			name += "-ts"
		}
		if bc.random {
			name += "/users=random"
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			dir := b.TempDir()
			s, err := durable.Open(durable.Options{Dir: dir, Sync: false, MinFreeBytes: 1})
			if err != nil {
				b.Fatal(err)
			}
			const batch = 4096
			ops := make([]store.Op, batch)
			out := make([]store.Result, batch)
			for i := 0; i < n; i += batch {
				for j := range ops {
					k := i + j
					u := (k/50_000*7919 + k) % 1_000_000
					if bc.random {
						u = rng.IntN(1_000_000)
					}
					ops[j] = store.Op{
						ContentID:    fmt.Sprintf("content-%05d", k%10_000),
						ReactionType: fmt.Sprintf("r%d", (k/10_000)%5),
						UserID:       fmt.Sprintf("user-%07d", u),
						Action:       store.Add,
					}
					if bc.stamped {
						ops[j].TS = 1_780_000_000_000 + int64(k)
					}
				}
				if err := s.Apply(context.Background(), ops, out); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				s, err := durable.Open(durable.Options{Dir: dir, MinFreeBytes: 1})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/recovery")
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDurable_Apply measures one writer batch of 1024 adds, committed with fsync
// (sync) or without (async). In async-ts the ops carry a TS, newer every lap, so every
// membership is written with its TS and every remove writes a tombstone.
func BenchmarkDurable_Apply(b *testing.B) {
	for _, mode := range []string{"sync", "async", "async-ts"} {
		sync, stamped := mode == "sync", mode == "async-ts"
		b.Run(mode, func(b *testing.B) {
			s, err := durable.Open(durable.Options{Dir: b.TempDir(), Sync: sync, MinFreeBytes: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const batch = 1024
			ops := make([][]store.Op, 64)
			for i := range ops {
				ops[i] = make([]store.Op, batch)
				for j := range ops[i] {
					ops[i][j] = store.Op{ContentID: fmt.Sprintf("c%d", j%100), ReactionType: "r", UserID: fmt.Sprintf("u%d-%d", i, j), Action: store.Add}
				}
			}
			out := make([]store.Result, batch)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				batchOps := ops[n%len(ops)]
				if n >= len(ops) { // flip adds and removes so every batch changes the sets
					act := store.Remove
					if (n/len(ops))%2 == 0 {
						act = store.Add
					}
					for j := range batchOps {
						batchOps[j].Action = act
					}
				}
				if stamped {
					for j := range batchOps {
						batchOps[j].TS = int64(n/len(ops) + 1)
					}
				}
				if err := s.Apply(context.Background(), batchOps, out); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
