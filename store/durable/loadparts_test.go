package durable_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

// Identifiers for the parallel load tests: some are prefixes of others ("c1", "c1x",
// "c10"; "r", "rx"), so that a cut between two contents must fall between every key
// of one and every key of the next.
var (
	loadContents  = []string{"a", "c1", "c10", "c1x", "c2", "c3", "d", "e", "e0", "f"}
	loadReactions = []string{"r", "rx", "s"}
)

// indexDump is what a store's index answers, with the remembered TS probed (probe).
type indexDump struct {
	Contents    []string
	Counts      map[string][]store.ReactionCount
	Members     map[string][]store.Member
	Memberships map[string][]store.Membership
	Tombstones  []tombstone
	Probes      []store.Result
}

type tombstone struct {
	ContentID, ReactionType, UserID string
	TS                              int64
}

// dumpIndex reads everything s's index answers about users, then probes the
// remembered TS of every (content, reaction, user) with a timestamped op drawn from
// seed (the same ops for the same seed), which changes s.
func dumpIndex(t *testing.T, s *durable.Store, users []string, seed uint64) indexDump {
	t.Helper()
	ctx := context.Background()
	d := indexDump{Counts: map[string][]store.ReactionCount{}, Members: map[string][]store.Member{}, Memberships: map[string][]store.Membership{}}
	var err error
	if d.Contents, err = s.Contents(ctx, "", "", 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Contents {
		counts := storetest.MustCounts(t, s, c)
		d.Counts[c] = counts
		for _, rc := range counts {
			m, err := s.Members(ctx, c, rc.ReactionType, "", 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			d.Members[c+"/"+rc.ReactionType] = m
		}
	}
	for _, u := range users {
		ms, err := s.UserMemberships(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(ms, func(a, b store.Membership) int {
			return cmp.Or(cmp.Compare(a.ContentID, b.ContentID), cmp.Compare(a.ReactionType, b.ReactionType))
		})
		d.Memberships[u] = ms
	}
	tombs, err := s.Tombstones()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tombs { // without the user's number, which a load may give otherwise
		d.Tombstones = append(d.Tombstones, tombstone{tb.ContentID, tb.ReactionType, tb.UserID, tb.TS})
	}
	slices.SortFunc(d.Tombstones, func(a, b tombstone) int {
		return cmp.Or(cmp.Compare(a.ContentID, b.ContentID), cmp.Compare(a.ReactionType, b.ReactionType), cmp.Compare(a.UserID, b.UserID))
	})
	rng := rand.New(rand.NewPCG(seed, 7))
	var probes []store.Op
	for _, c := range loadContents {
		for _, r := range loadReactions {
			for _, u := range users {
				act := store.Add
				if rng.IntN(2) == 0 {
					act = store.Remove
				}
				probes = append(probes, store.Op{ContentID: c, ReactionType: r, UserID: u, Action: act, TS: 1000 + rng.Int64N(1000)})
			}
		}
	}
	d.Probes = storetest.MustApply(t, s, probes...)
	return d
}

// writeRandom fills a durable store in dir with random timestamped and untimestamped
// adds and removes, some with an expiry, and closes it.
func writeRandom(t *testing.T, dir string, rng *rand.Rand, users []string) {
	t.Helper()
	s := MustOpenDurable(t, dir, false)
	for range 20 {
		ops := make([]store.Op, 300)
		for i := range ops {
			op := store.Op{ContentID: loadContents[rng.IntN(len(loadContents))], ReactionType: loadReactions[rng.IntN(len(loadReactions))],
				UserID: users[rng.IntN(len(users))], Action: store.Add}
			if rng.IntN(3) == 0 {
				op.Action = store.Remove
			}
			if rng.IntN(4) != 0 {
				op.TS = 1000 + rng.Int64N(1000)
			}
			if op.Action == store.Add && rng.IntN(5) == 0 {
				op.ExpiresAt = 1<<50 + rng.Int64N(1000)
			}
			ops[i] = op
		}
		storetest.MustApply(t, s, ops...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDurable_LoadPartsAsSerial: a store loaded in parts (its memberships cut by
// content, the parts filling the index at once) holds exactly what the same store
// loaded on one pair of goroutines holds: the same contents, counts, members with
// their expiries, memberships of each user, tombstones, and remembered TS (probed
// with timestamped ops, which must have the same results), on random data with and
// without TS, removes before adds and expiries; wherever the cuts fall, between
// contents that are prefixes of one another too.
func TestDurable_LoadPartsAsSerial(t *testing.T) {
	users := make([]string, 120)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i*37%1000)
	}
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			dir := t.TempDir()
			writeRandom(t, dir, rng, users)

			// The probes change the store: each dump works on a copy of the same data.
			dump := func(parts int, splits [][]byte) indexDump {
				copyDir := t.TempDir()
				if err := copyStore(dir, copyDir); err != nil {
					t.Fatal(err)
				}
				s, err := durable.OpenLoad(durable.Options{Dir: copyDir, MinFreeBytes: 1}, parts, splits)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				return dumpIndex(t, s, users, seed)
			}
			serial := dump(1, nil)
			if len(serial.Contents) == 0 || len(serial.Tombstones) == 0 {
				t.Fatalf("random data gave %d contents, %d tombstones: the test needs both", len(serial.Contents), len(serial.Tombstones))
			}
			// Cuts: random contents, present or not, and ones between prefixes.
			var cuts [][]byte
			for _, c := range []string{"c1", "c10", "c1x", "e", "e0", "b", string(rune('a' + rng.IntN(6)))} {
				cuts = append(cuts, append(append([]byte{'m'}, c...), 1))
			}
			slices.SortFunc(cuts, func(a, b []byte) int { return slices.Compare(a, b) })
			cuts = slices.CompactFunc(cuts, func(a, b []byte) bool { return slices.Equal(a, b) })
			for k := 1; k <= len(cuts); k++ {
				picked := pick(rng, cuts, k)
				if got := dump(0, picked); !reflect.DeepEqual(got, serial) {
					t.Fatalf("loaded in %d parts cut at %q: the index differs from the serial load:\n got %+v\nwant %+v", k+1, picked, got, serial)
				}
			}
		})
	}
}

// copyStore copies the files of a closed store's directory.
func copyStore(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// pick returns k of cuts, in order.
func pick(rng *rand.Rand, cuts [][]byte, k int) [][]byte {
	idx := rng.Perm(len(cuts))[:k]
	slices.Sort(idx)
	out := make([][]byte, k)
	for i, j := range idx {
		out[i] = cuts[j]
	}
	return out
}

// TestDurable_LoadSplits: the cuts a store makes from its tables fall between
// contents, in order, at most parts-1 of them, cutting the data into parts of about
// equal size; a load in those parts gives every membership back.
func TestDurable_LoadSplits(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, true)
	if err := s.Close(); err != nil { // writes the format record
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{DisableAutomaticCompactions: true, L0CompactionThreshold: 100, L0StopWritesThreshold: 200})
	if err != nil {
		t.Fatal(err)
	}
	// 8 contents of 500 memberships each, a table each.
	for c := range 8 {
		b := db.NewBatch()
		for u := range 500 {
			_ = b.Set(fmt.Appendf(nil, "mc%d\x00r\x00u%04d", c, u), nil, nil)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, parts := range []int{1, 2, 3, 4, 8} {
		s, err := durable.OpenLoad(durable.Options{Dir: dir, MinFreeBytes: 1}, parts, nil)
		if err != nil {
			t.Fatal(err)
		}
		splits := s.LoadSplits(parts)
		if parts > 1 && len(splits) == 0 || len(splits) > parts-1 {
			t.Errorf("parts=%d: %d cuts %q", parts, len(splits), splits)
		}
		for i, k := range splits {
			if len(k) != 4 || k[0] != 'm' || k[3] != 1 || i > 0 && string(k) <= string(splits[i-1]) {
				t.Errorf("parts=%d: cuts %q: want increasing \"m\" content 0x01 keys", parts, splits)
			}
		}
		if parts == 2 && len(splits) == 1 && string(splits[0]) != "mc3\x01" {
			t.Errorf("parts=2: cut at %q, want half of the data on each side (\"mc3\\x01\")", splits[0])
		}
		total := int64(0)
		for c := range 8 {
			if n := storetest.CountsMap(t, s, fmt.Sprintf("c%d", c))["r"]; n != 500 {
				t.Errorf("parts=%d: c%d has %d members, want 500", parts, c, n)
			}
			total += storetest.CountsMap(t, s, fmt.Sprintf("c%d", c))["r"]
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if total != 4000 {
			t.Errorf("parts=%d: %d memberships, want 4000", parts, total)
		}
	}
}
