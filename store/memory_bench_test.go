package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/arina-dev/arina/store"
)

// The spread of the benchmark data: a busy floor, not a toy.
const (
	benchContents = 10_000
	benchUsers    = 100_000
	benchBatch    = 1024    // the writer's default batch size
	benchOps      = 1 << 20 // distinct memberships in the op ring: 1024 batches
)

var benchReactions = []string{"fire", "like", "heart", "laugh", "wow"}

// benchOpRing returns benchOps adds of distinct (content, reaction, user) memberships
// drawn at random (fixed seed) from the spread above. Every id string is built here,
// once, before any timed loop; ops share them as the writer's events would.
func benchOpRing(tb testing.TB) []store.Op {
	tb.Helper()
	contents := make([]string, benchContents)
	for i := range contents {
		contents[i] = fmt.Sprintf("content-%05d", i)
	}
	users := make([]string, benchUsers)
	for i := range users {
		users[i] = fmt.Sprintf("user-%06d", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[uint64]struct{}, benchOps)
	ops := make([]store.Op, 0, benchOps)
	for len(ops) < benchOps {
		c, r, u := rng.IntN(benchContents), rng.IntN(len(benchReactions)), rng.IntN(benchUsers)
		key := (uint64(c)*uint64(len(benchReactions))+uint64(r))*benchUsers + uint64(u)
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		ops = append(ops, store.Op{ContentID: contents[c], ReactionType: benchReactions[r], UserID: users[u], Action: store.Add})
	}
	return ops
}

func mustApply(tb testing.TB, s store.Store, ops []store.Op, out []store.Result) {
	tb.Helper()
	if err := s.Apply(context.Background(), ops, out); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

// BenchmarkMemory_Apply applies batches of 1024 ops; one op of the benchmark is one
// batch, and events/s counts the ops.
func BenchmarkMemory_Apply(b *testing.B) {
	ring := benchOpRing(b)
	out := make([]store.Result, benchBatch)

	// Adds of new memberships only: the store grows to at most benchOps memberships,
	// then a new, empty store (untimed) takes the next lap of the ring.
	b.Run("Add", func(b *testing.B) {
		s := store.NewMemory()
		b.ReportAllocs()
		n, pos := 0, 0
		for b.Loop() {
			if pos == len(ring) {
				b.StopTimer()
				s = store.NewMemory()
				pos = 0
				b.StartTimer()
			}
			mustApply(b, s, ring[pos:pos+benchBatch], out)
			pos += benchBatch
			n += benchBatch
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	})

	// Half removes of present members, half adds of absent ones, on a store that holds
	// the whole ring: lap after lap, every op changes a set. In RemoveAddMixTS the ops
	// carry a TS, newer every lap: every op applies, and every set remembers a TS per
	// user (members and tombstones).
	for _, stamped := range []bool{false, true} {
		name := map[bool]string{false: "RemoveAddMix", true: "RemoveAddMixTS"}[stamped]
		b.Run(name, func(b *testing.B) {
			s := store.NewMemory()
			all := make([]store.Result, len(ring))
			mustApply(b, s, ring, all)
			mix := make([]store.Op, len(ring)) // a copy: the Add benchmark's ring stays adds
			copy(mix, ring)
			lap := 0
			setActions := func() {
				for i := range mix {
					if (i+lap)%2 == 0 {
						mix[i].Action = store.Remove
					} else {
						mix[i].Action = store.Add
					}
					if stamped {
						mix[i].TS = int64(lap + 1)
					}
				}
			}
			setActions()
			b.ReportAllocs()
			n, pos := 0, 0
			for b.Loop() {
				if pos == len(mix) {
					b.StopTimer()
					lap++
					setActions()
					pos = 0
					b.StartTimer()
				}
				mustApply(b, s, mix[pos:pos+benchBatch], out)
				pos += benchBatch
				n += benchBatch
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkMemory_Counts reads the counts of random contents from many goroutines, on a
// store holding a million memberships, alone and while a writer applies batches.
func BenchmarkMemory_Counts(b *testing.B) {
	ring := benchOpRing(b)
	contents := make([]string, 0, benchContents)
	for i := range benchContents {
		contents = append(contents, fmt.Sprintf("content-%05d", i))
	}
	s := store.NewMemory()
	mustApply(b, s, ring, make([]store.Result, len(ring)))

	read := func(b *testing.B) {
		var seed atomic.Uint64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seed.Add(1), 0))
			for pb.Next() {
				if _, err := s.Counts(context.Background(), contents[rng.IntN(len(contents))]); err != nil {
					b.Errorf("Counts: %v", err)
					return
				}
			}
		})
	}

	b.Run("Readers", read)

	// One writer flips memberships in batches of 1024, as the ingest writer would,
	// until the readers are done.
	b.Run("ReadersWithWriter", func(b *testing.B) {
		mix := make([]store.Op, len(ring))
		copy(mix, ring)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var batches atomic.Int64
		wg.Go(func() {
			out := make([]store.Result, benchBatch)
			for lap := 0; ; lap++ {
				for pos := 0; pos < len(mix); pos += benchBatch {
					select {
					case <-stop:
						return
					default:
					}
					batch := mix[pos : pos+benchBatch]
					for i := range batch {
						batch[i].Action = store.Remove
						if lap%2 == 1 {
							batch[i].Action = store.Add
						}
					}
					if err := s.Apply(context.Background(), batch, out); err != nil {
						b.Errorf("Apply: %v", err)
						return
					}
					batches.Add(1)
				}
			}
		})
		read(b)
		b.StopTimer()
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(batches.Load()*benchBatch)/b.Elapsed().Seconds(), "writes/s")
	})
}
