package store

import (
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestMemberSet drives sets through each of their forms (packed, bitset, roaring
// bitmap) and the moves between them, with random adds (some with an expiry) and
// removes, and checks every answer against a map.
func TestMemberSet(t *testing.T) {
	const far = 1 << 24
	for _, tc := range []struct {
		name string
		uid  func(rng *rand.Rand, i int) uint32
		form func(*memberSet) bool
	}{
		// Thousands of members among 4096 ids: a bitset takes less room than a slice.
		{"dense", func(rng *rand.Rand, _ int) uint32 { return rng.Uint32N(4 * smallSetMax) },
			func(s *memberSet) bool { return s.dense && s.bigMap() == nil }},
		// Members spread over 16M ids: packed up to smallSetMax, then a bitmap.
		{"sparse", func(rng *rand.Rand, _ int) uint32 { return rng.Uint32N(far) },
			func(s *memberSet) bool { return s.bigMap() != nil && !s.dense && s.ids == nil && s.lo == nil }},
		// A dense set that later takes ids far beyond its bitset moves to a bitmap.
		{"dense then far", func(rng *rand.Rand, i int) uint32 {
			if i < 10_000 || rng.IntN(2) == 0 {
				return rng.Uint32N(4 * smallSetMax)
			}
			return rng.Uint32N(far)
		}, func(s *memberSet) bool { return s.bigMap() != nil && !s.dense && s.ids == nil && s.lo == nil }},
		// A few members among many ids stay packed, mostly one to a bucket: buckets
		// come and go.
		{"small", func(rng *rand.Rand, _ int) uint32 { return rng.Uint32N(far) | 1<<20 },
			func(s *memberSet) bool { return s.lo != nil && !s.dense && s.bigMap() == nil }},
		// Members come and go among 128 ids, 2 in each of 64 buckets far apart: packed,
		// with buckets emptied and made again.
		{"churn", func(rng *rand.Rand, _ int) uint32 { return rng.Uint32N(64)<<18 | rng.Uint32N(2)<<4 },
			func(s *memberSet) bool { return s.lo != nil && !s.dense && s.bigMap() == nil }},
		// Hundreds of members among a million ids (issue 4's spread) stay packed, many
		// to each of 16 buckets.
		{"spread", func(rng *rand.Rand, _ int) uint32 { return rng.Uint32N(1 << 20) },
			func(s *memberSet) bool { return s.lo != nil && len(s.ids) == 16 && !s.dense && s.bigMap() == nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s memberSet
			model := make(map[uint32]int64)
			rng := rand.New(rand.NewPCG(3, 4))
			ops := 20_000
			switch tc.name {
			case "small":
				ops = 200
			case "spread":
				ops = 1200
			case "churn":
				ops = 3000
			}
			for i := range ops {
				uid := tc.uid(rng, i)
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
				if i%997 == 0 || (ops < 2000 && i%50 == 0) {
					checkMemberSet(t, &s, model)
				}
			}
			if !tc.form(&s) {
				t.Fatalf("%d members in the wrong form: %d buckets or words, %d packed, bitset %v, bitmap %v",
					s.len(), len(s.ids), len(s.lo), s.dense, s.bigMap() != nil)
			}
			checkMemberSet(t, &s, model)
		})
	}
}

// checkMemberSet compares every way of reading s with model.
func checkMemberSet(t *testing.T, s *memberSet, model map[uint32]int64) {
	t.Helper()
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
	if !s.dense && s.bigMap() == nil {
		buckets := make(map[uint32]bool)
		for uid := range model {
			buckets[uid>>16] = true
		}
		if len(s.ids) != len(buckets) {
			t.Errorf("packed in %d buckets, want one for each of the %d high halves", len(s.ids), len(buckets))
		}
	}
	for _, uid := range []uint32{0, 63, 64, 4095, 4096, 1 << 20, 1<<32 - 1} {
		if _, in := model[uid]; s.has(uid) != in {
			t.Fatalf("has(%d) = %v, want %v", uid, !in, in)
		}
	}
}

// TestMemberSet_Shrink fills a set into each form, removes most of its members, and
// checks that it moved back to the packed form with slices to fit, answering as a map
// does throughout; then that it still grows again.
func TestMemberSet_Shrink(t *testing.T) {
	for _, tc := range []struct {
		name  string
		uid   func(rng *rand.Rand) uint32
		fill  int
		grown func(*memberSet) bool
	}{
		{"bitmap", func(rng *rand.Rand) uint32 { return rng.Uint32N(1 << 24) }, 5000,
			func(s *memberSet) bool { return s.bigMap() != nil }},
		{"bitset", func(rng *rand.Rand) uint32 { return rng.Uint32N(4 * smallSetMax) }, 3000,
			func(s *memberSet) bool { return s.dense }},
		{"packed", func(rng *rand.Rand) uint32 { return rng.Uint32N(1 << 20) }, smallSetMax,
			func(s *memberSet) bool { return s.lo != nil && cap(s.lo) >= smallSetMax }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s memberSet
			model := make(map[uint32]int64)
			rng := rand.New(rand.NewPCG(5, 6))
			for len(model) < tc.fill {
				uid := tc.uid(rng)
				s.put(uid, int64(uid%3))
				model[uid] = int64(uid % 3)
			}
			if !tc.grown(&s) {
				t.Fatalf("%d members did not reach the form under test: %d words or buckets, bitset %v, bitmap %v",
					s.len(), len(s.ids), s.dense, s.bigMap() != nil)
			}
			members := make([]uint32, 0, len(model))
			for uid := range model {
				members = append(members, uid)
			}
			rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
			for i, uid := range members[:len(members)-10] {
				if exp, was := s.del(uid); !was || exp != model[uid] {
					t.Fatalf("del(%d) = %d, %v; want %d, true", uid, exp, was, model[uid])
				}
				delete(model, uid)
				if i%97 == 0 {
					checkMemberSet(t, &s, model)
				}
			}
			checkMemberSet(t, &s, model)
			if s.bigMap() != nil || s.dense || cap(s.lo) > max(32, 4*len(s.lo)) || cap(s.ids) > max(16, 4*len(s.ids)) {
				t.Fatalf("10 members left: bitmap %v, bitset %v, packed in cap %d and %d buckets' cap %d; want packed, within 4 times the room",
					s.bigMap() != nil, s.dense, cap(s.lo), len(s.ids), cap(s.ids))
			}
			for len(model) < tc.fill {
				uid := tc.uid(rng)
				s.put(uid, 0)
				model[uid] = 0
			}
			checkMemberSet(t, &s, model)
		})
	}
}

// TestReactionSet_Size: a set's header stays within 96 bytes (an allocation size
// class), the parts few sets need behind one pointer (setMore): with 50k sets of 60
// members each, every 16 bytes of it are 0.27 bytes a membership (issue 16).
func TestReactionSet_Size(t *testing.T) {
	if size := unsafe.Sizeof(reactionSet{}); size > 96 {
		t.Fatalf("a reactionSet takes %d bytes, want at most 96", size)
	}
}
