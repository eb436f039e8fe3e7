package ingest_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// at returns e with ts set.
func at(e ingest.Event, ts time.Time) ingest.Event {
	e.TS = ts.UnixMilli()
	return e
}

// changeLog is an OnChanges that keeps copies of the changes.
type changeLog struct {
	mu      sync.Mutex
	changes []store.Change
}

func (l *changeLog) add(cs []store.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(l.changes, cs...)
}

func (l *changeLog) users() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var us []string
	for _, c := range l.changes {
		us = append(us, c.Action.String()+" "+c.UserID)
	}
	return us
}

// TestWriter_StaleEvents: an event older (by ts) than what the store remembers is
// acknowledged without error, changes nothing, emits no Change, and is counted stale.
func TestWriter_StaleEvents(t *testing.T) {
	st := store.NewMemory()
	var log changeLog
	w, reg := MustStartWriter(t, st, ingest.Options{OnChanges: log.add})
	now := time.Now()
	for _, step := range []struct {
		name string
		ev   ingest.Event
		want store.Result
	}{
		{"Add", at(add("Sam"), now.Add(-time.Minute)), store.Result{Changed: true, Count: 1}},
		{"OlderAdd", at(add("Sam"), now.Add(-2*time.Minute)), store.Result{Count: 1, Stale: true}},
		{"OlderRemove", at(remove("Sam"), now.Add(-2*time.Minute)), store.Result{Count: 1, Stale: true}},
		{"OtherUser", at(add("Ann"), now.Add(-time.Hour)), store.Result{Changed: true, Count: 2}},
		{"NewerRemove", at(remove("Sam"), now), store.Result{Changed: true, Count: 1}},
		{"ReorderedAdd", at(add("Sam"), now.Add(-time.Second)), store.Result{Count: 1, Stale: true}},
	} {
		t.Run(step.name, func(t *testing.T) {
			if got := mustSubmit(t, w, step.ev); got != step.want {
				t.Fatalf("Submit(%s %s) = %+v, want %+v", step.ev.Action, step.ev.UserID, got, step.want)
			}
		})
	}
	mustCount(t, st, "Stew", "fire", 1)
	mustMetric(t, reg, 3, "arina_events_stale_total", "source", "mqtt")
	mustMetric(t, reg, 6, "arina_events_applied_total", "source", "mqtt")
	mustMetric(t, reg, 2, "arina_memberships_changed_total", "action", "add")
	mustMetric(t, reg, 1, "arina_memberships_changed_total", "action", "remove")
	if got, want := log.users(), []string{"add Sam", "add Ann", "remove Sam"}; !slices.Equal(got, want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
}

// TestWriter_TooOld: an event whose ts is older than now-TombstoneTTL never reaches the
// store (a tombstone that would hold it back may be purged); it is acknowledged stale,
// with Count 0, and the events of its batch are applied as usual.
func TestWriter_TooOld(t *testing.T) {
	t.Run("Boundary", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := newGateStore(false, nil)
			w, reg := MustStartWriter(t, st, ingest.Options{TombstoneTTL: time.Hour})
			oldest := time.Now().Add(-time.Hour)
			if got := mustSubmit(t, w, at(remove("Sam"), oldest.Add(-time.Millisecond))); got != (store.Result{Stale: true}) {
				t.Fatalf("remove 1ms older than the TTL = %+v, want stale", got)
			}
			if got := mustSubmit(t, w, at(add("Sam"), oldest.Add(-time.Millisecond))); got != (store.Result{Stale: true}) {
				t.Fatalf("add 1ms older than the TTL = %+v, want stale", got)
			}
			if got := st.Batches(); len(got) != 0 {
				t.Fatalf("store batches = %v, want none: a too-old event reached the store", got)
			}
			if got := mustSubmit(t, w, at(add("Sam"), oldest)); got != (store.Result{Changed: true, Count: 1}) {
				t.Fatalf("add exactly TTL old = %+v, want applied", got)
			}
			mustMetric(t, reg, 2, "arina_events_stale_total", "source", "mqtt")
			mustMetric(t, reg, 3, "arina_events_applied_total", "source", "mqtt")
		})
	})
	t.Run("MixedBatch", func(t *testing.T) {
		st := newGateStore(true, nil)
		var log changeLog
		w, reg := MustStartWriter(t, st, ingest.Options{TombstoneTTL: time.Hour, OnChanges: log.add})
		acks := make(ackChan, 6)
		old := time.Now().Add(-2 * time.Hour)
		mustEnqueue(t, w, add("a"), acks) // holds the writer in Apply while the next batch queues
		waitFor(t, applyCalls(st, 1))
		for _, e := range []ingest.Event{
			at(add("b"), old), add("c"), at(remove("a"), old), at(add("d"), time.Now()),
			ev("Stew", "fire", "e", store.Add, ingest.SourceHTTP),
		} {
			mustEnqueue(t, w, e, acks)
		}
		waitFor(t, queued(w, 5))
		st.Release()
		var got []store.Result
		for _, a := range recvAcks(t, acks, 6) {
			if a.err != nil {
				t.Fatalf("ack error: %v", a.err)
			}
			got = append(got, a.res)
		}
		want := []store.Result{
			{Changed: true, Count: 1},
			{Stale: true}, {Changed: true, Count: 2}, {Stale: true}, {Changed: true, Count: 3}, {Changed: true, Count: 4},
		}
		if !slices.Equal(got, want) {
			t.Fatalf("results:\n got %+v\nwant %+v", got, want)
		}
		if got, want := st.Batches(), []int{1, 3}; !slices.Equal(got, want) {
			t.Fatalf("store batches = %v, want %v: only the events young enough reach the store", got, want)
		}
		mustCount(t, st, "Stew", "fire", 4)
		if got, want := log.users(), []string{"add a", "add c", "add d", "add e"}; !slices.Equal(got, want) {
			t.Fatalf("changes = %v, want %v", got, want)
		}
		mustMetric(t, reg, 2, "arina_events_stale_total", "source", "mqtt")
		mustMetric(t, reg, 0, "arina_events_stale_total", "source", "http")
	})
	t.Run("StoreError", func(t *testing.T) {
		// A too-old event does not depend on the store: it is stale even when the
		// store fails the rest of its batch.
		boom := errors.New("disk on fire")
		st := newGateStore(true, boom)
		w, _ := MustStartWriter(t, st, ingest.Options{})
		acks := make(ackChan, 3)
		mustEnqueue(t, w, add("a"), acks)
		waitFor(t, applyCalls(st, 1))
		mustEnqueue(t, w, at(add("b"), time.Now().Add(-48*time.Hour)), acks)
		mustEnqueue(t, w, add("c"), acks)
		waitFor(t, queued(w, 2))
		st.Release()
		got := recvAcks(t, acks, 3)
		if !errors.Is(got[0].err, boom) || got[1].err != nil || !got[1].res.Stale || !errors.Is(got[2].err, boom) {
			t.Fatalf("acks = %+v, want the store's error, stale, the store's error", got)
		}
	})
}

// purgeStore is a memory store that records the writer's PurgeTombstones calls and
// checks that none runs during an Apply.
type purgeStore struct {
	*store.Memory
	applying atomic.Bool
	fail     atomic.Bool // PurgeTombstones fails while set

	mu    sync.Mutex
	calls []purgeCall // guarded by mu
}

type purgeCall struct {
	at     time.Time
	before int64
	n      int
	err    error
}

func (s *purgeStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	s.applying.Store(true)
	defer s.applying.Store(false)
	return s.Memory.Apply(ctx, ops, out)
}

func (s *purgeStore) PurgeTombstones(ctx context.Context, before int64) (int, error) {
	c := purgeCall{at: time.Now(), before: before}
	switch {
	case s.applying.Load():
		c.err = errors.New("PurgeTombstones during Apply")
	case s.fail.Load():
		c.err = errors.New("purge failed")
	default:
		c.n, c.err = s.Memory.PurgeTombstones(ctx, before)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	return c.n, c.err
}

func (s *purgeStore) Calls() []purgeCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// TestWriter_PurgeTombstones runs in a synctest bubble: the writer purges nothing until
// an event with a ts was applied, then every TombstoneTTL/24 (here 1h) it purges the
// tombstones older than the TTL, on its own goroutine, never during an Apply.
func TestWriter_PurgeTombstones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &purgeStore{Memory: store.NewMemory()}
		w, _ := MustStartWriter(t, st, ingest.Options{TombstoneTTL: 24 * time.Hour})
		mustSubmit(t, w, add("Sam"))
		mustSubmit(t, w, remove("Sam"))
		time.Sleep(5 * time.Hour)
		synctest.Wait()
		if calls := st.Calls(); len(calls) != 0 {
			t.Fatalf("%d purges without any event with a ts, want none", len(calls))
		}

		t0 := time.Now()
		mustSubmit(t, w, at(remove("Ann"), t0)) // a tombstone at t0
		time.Sleep(time.Hour - time.Millisecond)
		synctest.Wait()
		if calls := st.Calls(); len(calls) != 0 {
			t.Fatalf("%d purges before the first interval, want none", len(calls))
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		calls := st.Calls()
		if len(calls) != 1 || !calls[0].at.Equal(t0.Add(time.Hour)) || calls[0].before != t0.Add(-23*time.Hour).UnixMilli() || calls[0].n != 0 {
			t.Fatalf("purges after 1h = %+v, want one at t0+1h before t0-23h forgetting nothing", calls)
		}

		st.fail.Store(true) // a failed purge is retried at the next interval
		time.Sleep(time.Hour)
		synctest.Wait()
		st.fail.Store(false)
		time.Sleep(23 * time.Hour) // t0+25h
		synctest.Wait()
		calls = st.Calls()
		if len(calls) != 25 {
			t.Fatalf("%d purges in 25h, want 25", len(calls))
		}
		for i, c := range calls {
			wantErr := i == 1
			if (c.err != nil) != wantErr {
				t.Fatalf("purge %d error = %v", i, c.err)
			}
			want := 0
			if i == 24 { // the first with before > t0
				want = 1
			}
			if c.n != want {
				t.Fatalf("purge %d at t0+%v (before t0%+v) forgot %d, want %d", i, c.at.Sub(t0),
					time.UnixMilli(c.before).Sub(t0), c.n, want)
			}
		}
		// Ann's tombstone is gone; her remove at t0 is now too old to apply again.
		if got := mustSubmit(t, w, at(add("Ann"), t0.Add(-time.Millisecond))); got != (store.Result{Stale: true}) {
			t.Fatalf("add older than the purged tombstone = %+v, want stale (too old)", got)
		}
	})
}
