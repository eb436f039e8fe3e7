//go:build linux

package durable_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

// TestDurable_DiskFull: with the disk (nearly) full the store refuses batches without
// applying anything and reports unhealthy; once space is freed it accepts them again by
// itself.
func TestDurable_DiskFull(t *testing.T) {
	dir := testutil.MustTmpfs(t, "64m")
	s, err := durable.Open(durable.Options{Dir: filepath.Join(dir, "data"), Sync: true, MinFreeBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.MustApply(t, s, store.Op{ContentID: "c", ReactionType: "r", UserID: "before", Action: store.Add})

	ballast := testutil.FillDisk(t, dir, 8<<20) // below MinFreeBytes

	op := []store.Op{{ContentID: "c", ReactionType: "r", UserID: "during", Action: store.Add}}
	waitFor(t, 5*time.Second, func() bool { return !s.Healthy() })
	if err := s.Apply(context.Background(), op, make([]store.Result, 1)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Apply on a full disk error = %v, want ErrUnavailable", err)
	}
	if got := storetest.MustCounts(t, s, "c"); got[0].Count != 1 {
		t.Fatalf("count = %d after a refused batch, want 1: a refused event was applied", got[0].Count)
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, s.Healthy)
	res := storetest.MustApply(t, s, op...)
	if !res[0].Changed || res[0].Count != 2 {
		t.Fatalf("after the disk was freed Apply = %+v, want the add applied", res[0])
	}
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
