package durable

import (
	"bytes"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestSortFoldOps: the radix quicksort orders writes as a stable sort by key does,
// on keys with long shared prefixes, prefixes of one another and repeats.
func TestSortFoldOps(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		keyGen := rapid.Custom(func(t *rapid.T) []byte {
			k := []byte(rapid.SampledFrom([]string{"m", "mcontent-000", "mcontent-0001\x00r", "r", "t", ""}).Draw(t, "prefix"))
			return append(k, rapid.SliceOfN(rapid.ByteRange(0, 3), 0, 4).Draw(t, "tail")...)
		})
		keys := rapid.SliceOfN(keyGen, 0, 200).Draw(rt, "keys")
		ops := make([]foldOp, len(keys))
		for i, k := range keys {
			ops[i] = foldOp{key: k, seq: i}
		}
		want := slices.Clone(ops)
		slices.SortStableFunc(want, func(x, y foldOp) int { return bytes.Compare(x.key, y.key) })
		sortFoldOps(ops, 0)
		for i := range ops {
			if !bytes.Equal(ops[i].key, want[i].key) || ops[i].seq != want[i].seq {
				rt.Fatalf("at %d: %q/%d, want %q/%d", i, ops[i].key, ops[i].seq, want[i].key, want[i].seq)
			}
		}
	})
}
