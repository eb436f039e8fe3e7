package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestMemberSet drives a set across smallSetMax, where it moves from a sorted slice to
// a roaring bitmap, with random adds (some with an expiry) and removes, and checks every
// answer against a map.
func TestMemberSet(t *testing.T) {
	var s memberSet
	model := make(map[uint32]int64)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 20_000 {
		uid := rng.Uint32N(4 * smallSetMax)
		if rng.IntN(4) == 0 {
			exp, was := s.del(uid)
			mexp, mwas := model[uid]
			if was != mwas || exp != mexp {
				t.Fatalf("op %d: del(%d) = %d, %v; want %d, %v", i, uid, exp, was, mexp, mwas)
			}
			delete(model, uid)
		} else {
			exp := int64(0)
			if rng.IntN(3) == 0 {
				exp = int64(rng.IntN(1000) + 1)
			}
			prev, was := s.put(uid, exp)
			mprev, mwas := model[uid]
			if was != mwas || prev != mprev {
				t.Fatalf("op %d: put(%d) = %d, %v; want %d, %v", i, uid, prev, was, mprev, mwas)
			}
			model[uid] = exp
		}
		if s.len() != len(model) {
			t.Fatalf("op %d: len %d, want %d", i, s.len(), len(model))
		}
	}
	if s.big == nil {
		t.Fatalf("%d members and still a slice: the bitmap was never used", s.len())
	}
	var got []uint32
	s.each(func(uid uint32, exp int64) {
		if want, ok := model[uid]; !ok || exp != want {
			t.Errorf("each: %d with expiry %d; model has %d, %v", uid, exp, want, ok)
		}
		got = append(got, uid)
	})
	if !slices.IsSorted(got) || len(got) != len(model) {
		t.Errorf("each gave %d members (sorted %v), want %d in id order", len(got), slices.IsSorted(got), len(model))
	}
	expiring := 0
	s.expiring(func(uid uint32, exp int64) {
		expiring++
		if model[uid] != exp || exp == 0 {
			t.Errorf("expiring: %d with %d, model %d", uid, exp, model[uid])
		}
	})
	for uid, exp := range model {
		if e, ok := s.get(uid); !ok || e != exp {
			t.Fatalf("get(%d) = %d, %v; want %d", uid, e, ok, exp)
		}
		if exp != 0 {
			expiring--
		}
	}
	if expiring != 0 {
		t.Errorf("expiring listed %d members too many", expiring)
	}
}
