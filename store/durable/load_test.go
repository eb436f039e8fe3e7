package durable_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

// TestDurable_LoadManyBatches: a recovery that spans many of the loader's batches (256
// memberships each, read on one goroutine and put into the index on another) gives
// back every set with its members and expiries, as a memory store that applied the
// same ops holds them.
func TestDurable_LoadManyBatches(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, false)
	mem := store.NewMemory()
	var ops []store.Op
	for i := range 5000 {
		op := store.Op{ContentID: fmt.Sprintf("c%d", i%7), ReactionType: fmt.Sprintf("r%d", i%3),
			UserID: fmt.Sprintf("u%d", (i*7919)%1500), Action: store.Add}
		if i%5 == 0 {
			op.ExpiresAt = 1 << 50
		}
		if i%4 == 0 {
			op.TS = int64(1000 + i)
		}
		if i%11 == 0 {
			op.Action = store.Remove
		}
		ops = append(ops, op)
	}
	for b := range slices.Chunk(ops, 512) {
		storetest.MustApply(t, s, b...)
		storetest.MustApply(t, mem, b...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = MustOpenDurable(t, dir, false)
	defer s.Close()
	ctx := context.Background()
	for c := range 7 {
		for r := range 3 {
			cid, rt := fmt.Sprintf("c%d", c), fmt.Sprintf("r%d", r)
			got, err := s.Members(ctx, cid, rt, "", 10000)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := mem.Members(ctx, cid, rt, "", 10000)
			if !slices.Equal(got, want) {
				t.Fatalf("%s/%s after reopen: %d members, want %d as applied", cid, rt, len(got), len(want))
			}
		}
	}
}

// TestDurable_LoadMalformedMember: a malformed membership deep in the data (after
// several full batches) is refused as corrupt, and the loader's reader goroutine ends.
func TestDurable_LoadMalformedMember(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, true)
	if err := s.Close(); err != nil { // writes the format record
		t.Fatal(err)
	}
	db, err := pebble.Open(dir, &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for i := range 2000 {
		_ = b.Set([]byte(fmt.Sprintf("mc\x00r\x00u%05d", i)), nil, nil)
	}
	_ = b.Set([]byte("mc\x00r\x00u01000x"), []byte("bad"), nil) // a value of 3 bytes
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := runtime.NumGoroutine()
	_, err = durable.Open(durable.Options{Dir: dir, MinFreeBytes: 1})
	if !errors.Is(err, durable.ErrCorrupt) {
		t.Fatalf("open error = %v, want ErrCorrupt", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the refused open, %d before", n, before)
	}
}

// TestDurable_LoadPrefixIDs: sets whose content or reaction is a prefix of the next
// set's ("c1", "c10", "c1x"; "r", "rx", "r0") come back each with its own members, as
// a memory store that applied the same ops holds them: the loader takes a key that
// starts with the current set's part as that set's next user.
func TestDurable_LoadPrefixIDs(t *testing.T) {
	dir := t.TempDir()
	s := MustOpenDurable(t, dir, false)
	mem := store.NewMemory()
	contents, reactions := []string{"c", "c1", "c10", "c1x", "c2"}, []string{"r", "r0", "rx", "s"}
	var ops []store.Op
	for i := range 3000 {
		ops = append(ops, store.Op{ContentID: contents[i%len(contents)], ReactionType: reactions[(i/5)%len(reactions)],
			UserID: fmt.Sprintf("u%d", (i*7919)%400), Action: store.Add})
	}
	storetest.MustApply(t, s, ops...)
	storetest.MustApply(t, mem, ops...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = MustOpenDurable(t, dir, false)
	defer s.Close()
	ctx := context.Background()
	for _, c := range contents {
		for _, r := range reactions {
			got, err := s.Members(ctx, c, r, "", 10000)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := mem.Members(ctx, c, r, "", 10000)
			if !slices.Equal(got, want) {
				t.Fatalf("%s/%s after reopen: %d members, want %d as applied", c, r, len(got), len(want))
			}
		}
	}
}
