package history_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// t0 is on a step boundary, so step k begins at t0 + k×10s.
var t0 = time.UnixMilli(1_800_000_000_000)

func newHistory(opts history.Options) (*history.History, *clock) {
	c := &clock{t: t0}
	if opts.Resolution == 0 {
		opts.Resolution = 10 * time.Second
	}
	if opts.Window == 0 {
		opts.Window = time.Minute // 6 steps
	}
	opts.Now = c.Now
	return history.New(opts), c
}

func add(content, reaction string, count int64) store.Change {
	return store.Change{ContentID: content, ReactionType: reaction, UserID: "u", Action: store.Add, Count: count}
}

func remove(content, reaction string, count int64) store.Change {
	return store.Change{ContentID: content, ReactionType: reaction, UserID: "u", Action: store.Remove, Count: count}
}

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

func TestHistory_Content(t *testing.T) {
	h, c := newHistory(history.Options{})
	if got := h.Content("Stew"); got != nil {
		t.Fatalf("history of a content never seen: %+v", got)
	}
	h.Apply([]store.Change{remove("Pot", "fire", 0)}) // first seen on a remove: it was 1
	if got := h.Content("Pot"); len(got) != 1 || got[0].StartCount != 1 || got[0].Count != 0 {
		t.Fatalf("Pot: %+v, want 1 → 0", got)
	}
	h.Apply([]store.Change{add("Stew", "fire", 3)}) // it was 2 before
	c.Add(3 * time.Second)
	h.Apply([]store.Change{add("Stew", "fire", 4), add("Stew", "yum", 1)}) // same step: the last count wins
	c.Add(20 * time.Second)                                                // step 2
	h.Apply([]store.Change{remove("Stew", "fire", 3)})

	want := []history.Series{
		{ReactionType: "fire", Count: 3, StartCount: 2, Samples: []history.Sample{{At: ms(0), Count: 4}, {At: ms(20 * time.Second), Count: 3}}},
		{ReactionType: "yum", Count: 1, StartCount: 0, Samples: []history.Sample{{At: ms(0), Count: 1}}},
	}
	if got := h.Content("Stew"); !reflect.DeepEqual(got, want) {
		t.Fatalf("history:\n got %+v\nwant %+v", got, want)
	}

	// Four steps later the first step has left the 6-step window: the start count is
	// the count at its end.
	c.Add(40 * time.Second) // step 6; window: steps 1..6
	got := h.Content("Stew")
	if got[0].StartCount != 4 || len(got[0].Samples) != 1 || got[0].Samples[0].Count != 3 {
		t.Fatalf("fire after the first step left the window: %+v", got[0])
	}
	if len(got) != 1 {
		t.Fatalf("yum changed only in the step that left the window, yet: %+v", got)
	}

	// A change long after: the ring holds no stale step.
	c.Add(10 * time.Minute)
	h.Apply([]store.Change{add("Stew", "fire", 4)})
	got = h.Content("Stew")
	if len(got) != 1 || got[0].StartCount != 3 || len(got[0].Samples) != 1 || got[0].Samples[0].Count != 4 {
		t.Fatalf("after a long idle time: %+v", got)
	}
}

func TestHistory_IdleSetsAreDropped(t *testing.T) {
	h, c := newHistory(history.Options{})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.Collectors()...)
	h.Apply([]store.Change{add("Stew", "fire", 1), add("Soup", "yum", 1)})
	c.Add(30 * time.Second)
	h.Apply([]store.Change{add("Soup", "yum", 2)})
	if n := testutil.ToFloat64(h.Collectors()[0]); n != 2 {
		t.Fatalf("arina_history_sets = %v, want 2", n)
	}
	c.Add(30 * time.Second) // step 6: Stew's last change (step 0) is out of the window
	h.Sweep()
	if n := testutil.ToFloat64(h.Collectors()[0]); n != 1 {
		t.Fatalf("arina_history_sets = %v after Stew went idle, want 1", n)
	}
	if got := h.Content("Stew"); got != nil {
		t.Fatalf("idle Stew still has history: %+v", got)
	}
	if got := h.Content("Soup"); len(got) != 1 {
		t.Fatalf("Soup changed 30s ago, history %+v", got)
	}
	if n := testutil.ToFloat64(h.Collectors()[1]); n != 0 {
		t.Fatalf("arina_history_dropped_total = %v; going idle is not a drop", n)
	}
}

func TestHistory_MaxSets(t *testing.T) {
	h, c := newHistory(history.Options{MaxSets: 2})
	h.Apply([]store.Change{add("A", "fire", 1)})
	c.Add(time.Second)
	h.Apply([]store.Change{add("B", "fire", 1)})
	c.Add(time.Second)
	h.Apply([]store.Change{add("A", "fire", 2)}) // A is now the most recently changed
	c.Add(time.Second)
	h.Apply([]store.Change{add("C", "fire", 1)}) // over the cap: B goes
	if h.Content("B") != nil || h.Content("A") == nil || h.Content("C") == nil {
		t.Fatalf("after the cap: A %v, B %v, C %v; want B dropped", h.Content("A"), h.Content("B"), h.Content("C"))
	}
	if n := testutil.ToFloat64(h.Collectors()[1]); n != 1 {
		t.Fatalf("arina_history_dropped_total = %v, want 1", n)
	}
	// The dropped content being the one changing again.
	h.Apply([]store.Change{add("A", "yum", 1)}) // A/fire (changed before C) is now the oldest: it goes
	if got := h.Content("A"); len(got) != 1 || got[0].ReactionType != "yum" {
		t.Fatalf("A after dropping its older set: %+v", got)
	}
	if n := testutil.ToFloat64(h.Collectors()[0]); n != 2 {
		t.Fatalf("arina_history_sets = %v, want 2 (the cap)", n)
	}
}

func TestHistory_Activity(t *testing.T) {
	h, c := newHistory(history.Options{})
	h.Apply([]store.Change{add("A", "fire", 1), add("B", "fire", 1)})
	c.Add(10 * time.Second)
	h.Apply([]store.Change{add("A", "fire", 2)})
	c.Add(25 * time.Second) // step 3
	got := h.Activity()
	want := []history.ActivitySample{
		{At: ms(-20 * time.Second), Changes: 0}, {At: ms(-10 * time.Second), Changes: 0},
		{At: ms(0), Changes: 2}, {At: ms(10 * time.Second), Changes: 1},
		{At: ms(20 * time.Second), Changes: 0}, {At: ms(30 * time.Second), Changes: 0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("activity:\n got %+v\nwant %+v", got, want)
	}
	c.Add(time.Hour) // everything left the window; old counts must not come back
	h.Apply([]store.Change{add("A", "fire", 3)})
	got = h.Activity()
	var sum uint64
	for _, s := range got {
		sum += s.Changes
	}
	if sum != 1 || got[len(got)-1].Changes != 1 {
		t.Fatalf("activity an hour later: %+v", got)
	}
}

// TestHistory_Start follows a real feed.Hub: changes published by the "writer" show,
// and Close (or the hub closing) ends the goroutine (goleak checks).
func TestHistory_Start(t *testing.T) {
	hub := feed.New(2)
	h := history.New(history.Options{Resolution: 100 * time.Millisecond, Window: 10 * time.Second})
	h.Start(hub)
	defer h.Close()
	hub.Publish([]store.Change{add("Stew", "fire", 1)})
	deadline := time.Now().Add(5 * time.Second)
	for h.Content("Stew") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the published change never reached the history")
		}
		time.Sleep(5 * time.Millisecond)
	}
	hub.Close()
	h.Close()
	h.Close()
}

func TestHistory_Concurrent(t *testing.T) {
	hub := feed.New(0)
	h := history.New(history.Options{Resolution: time.Millisecond, Window: 50 * time.Millisecond, MaxSets: 50})
	h.Start(hub)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			hub.Publish([]store.Change{add(fmt.Sprint("c", i%97), fmt.Sprint("r", i%3), int64(i))})
		}
	}()
	for range 200 {
		_ = h.Content("c1")
		_ = h.Activity()
	}
	wg.Wait()
	hub.Close()
	h.Close()
}

// TestHistory_Start_Lagged: a history that falls behind the feed is cut off; it counts
// that (arina_history_lagged_total), watches again, and follows the later changes.
func TestHistory_Start_Lagged(t *testing.T) {
	hub := feed.New(1)
	h := history.New(history.Options{Resolution: 100 * time.Millisecond, Window: 10 * time.Second})
	h.Start(hub)
	defer func() { hub.Close(); h.Close() }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	h.Lock() // the goroutine stalls in Apply with the first batch
	hub.Publish([]store.Change{add("A", "fire", 1)})
	hub.Publish([]store.Change{add("B", "fire", 1)}) // fills the buffer (1)
	hub.Publish([]store.Change{add("C", "fire", 1)}) // no room: the watcher is cut off
	h.Unlock()
	waitFor("the lag to be counted", func() bool { return testutil.ToFloat64(h.Collectors()[2]) == 1 })
	if h.Content("C") != nil {
		t.Fatal("C was published after the cut, yet it is in the history")
	}
	// Published until seen: the history watches again just after counting the lag.
	waitFor("a change after the lag", func() bool {
		hub.Publish([]store.Change{add("D", "fire", 1)})
		return h.Content("D") != nil
	})
}
