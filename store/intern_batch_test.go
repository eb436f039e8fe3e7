package store

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestInterner_Batch checks that internBatch numbers ids exactly as internBytes one
// after the other would, repeats within a batch and ids seen in earlier batches
// included, across table growth and chunk boundaries.
func TestInterner_Batch(t *testing.T) {
	var one, batch interner
	rng := rand.New(rand.NewPCG(1, 2))
	var ids [][]byte
	uids := make([]uint32, internBatchMax)
	for round := range 400 {
		ids = ids[:0]
		n := 1 + rng.IntN(internBatchMax)
		for range n {
			k := rng.IntN(40_000)
			ids = append(ids, fmt.Appendf(nil, "u%d-%s", k, strings.Repeat("x", k%300)))
		}
		batch.internBatch(ids, uids[:n])
		for i, id := range ids {
			if want := one.internBytes(id); uids[i] != want {
				t.Fatalf("round %d: internBatch numbered %q %d, internBytes %d", round, id, uids[i], want)
			}
		}
	}
	if one.used != batch.used {
		t.Fatalf("%d ids interned one by one, %d in batches", one.used, batch.used)
	}
	for uid := range uint32(batch.used) {
		if a, b := one.name(uid), batch.name(uid); a != b {
			t.Fatalf("number %d: %q one by one, %q in batches", uid, a, b)
		}
		if got, ok := batch.lookup(batch.name(uid)); !ok || got != uid {
			t.Fatalf("lookup(%q) = %d, %v; want %d", batch.name(uid), got, ok, uid)
		}
	}
	batch.internBatch(nil, nil) // an empty batch changes nothing
	if one.used != batch.used {
		t.Fatal("an empty batch interned something")
	}
}
