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

// TestDurable_LoadPipelineAsSerial: a store whose users are interned on one
// goroutine while another fills the sets (the pipeline of loadMembers) holds exactly
// what the same store loaded through Loader.Members on one goroutine holds: the same
// contents, counts, members with their expiries, memberships of each user,
// tombstones, and remembered TS (probed with timestamped ops, which must have the
// same results), on random data with and without TS, removes before adds, expiries,
// and identifiers that are prefixes of one another.
func TestDurable_LoadPipelineAsSerial(t *testing.T) {
	users := make([]string, 600)
	for i := range users {
		users[i] = fmt.Sprintf("u%d", i*37%1000)
	}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			dir := t.TempDir()
			writeRandom(t, dir, rng, users)
			// The probes change the store: each dump works on a copy of the same data.
			dump := func(open func(durable.Options) (*durable.Store, error)) indexDump {
				copyDir := t.TempDir()
				if err := copyStore(dir, copyDir); err != nil {
					t.Fatal(err)
				}
				s, err := open(durable.Options{Dir: copyDir, MinFreeBytes: 1})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				return dumpIndex(t, s, users, seed)
			}
			serial := dump(durable.OpenSerialLoad)
			if len(serial.Contents) == 0 || len(serial.Tombstones) == 0 {
				t.Fatalf("random data gave %d contents, %d tombstones: the test needs both", len(serial.Contents), len(serial.Tombstones))
			}
			if got := dump(durable.Open); !reflect.DeepEqual(got, serial) {
				t.Fatalf("the pipelined load's index differs from the serial load's:\n got %+v\nwant %+v", got, serial)
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
