package feed_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func change(user string, count int64) []store.Change {
	return []store.Change{{ContentID: "Stew", ReactionType: "fire", UserID: user, Count: count}}
}

func TestHub_Publish(t *testing.T) {
	h := feed.New(4)
	a, b := h.Watch(), h.Watch()
	buf := change("sam", 1)
	h.Publish(buf)
	buf[0].UserID = "reused" // the writer reuses its buffer: watchers must hold a copy
	for _, w := range []*feed.Watcher{a, b} {
		got := <-w.C
		if len(got) != 1 || got[0].UserID != "sam" || got[0].Count != 1 {
			t.Fatalf("watcher got %+v, want sam's change", got)
		}
	}
	h.Unwatch(b)
	h.Publish(change("ann", 2))
	if got := <-a.C; got[0].UserID != "ann" {
		t.Fatalf("got %+v, want ann", got)
	}
	select {
	case got := <-b.C:
		t.Fatalf("unwatched watcher got %+v", got)
	default:
	}
}

// TestHub_SlowWatcherCutOff: Publish never blocks; a watcher that falls behind by more
// than its buffer is cut off, and the others are unaffected.
func TestHub_SlowWatcherCutOff(t *testing.T) {
	h := feed.New(2)
	slow, fast := h.Watch(), h.Watch()
	for i := range 3 {
		h.Publish(change("u", int64(i)))
		<-fast.C
	}
	select {
	case <-slow.Lagged():
	default:
		t.Fatal("a watcher 3 batches behind with a buffer of 2 was not cut off")
	}
	select {
	case <-fast.Lagged():
		t.Fatal("a watcher that kept up was cut off")
	default:
	}
}

func TestHub_Close(t *testing.T) {
	h := feed.New(0)
	h.Close()
	h.Close()
	select {
	case <-h.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
	w := h.Watch()
	select {
	case <-w.Lagged():
	default:
		t.Fatal("a watcher made after Close is not cut off")
	}
	h.Publish(change("sam", 1)) // no watchers left: must not block or panic
}
