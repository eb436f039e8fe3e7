package ingest_test

import (
	"context"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/durable"
	"github.com/arina-dev/arina/store/storetest"
)

func activeTTL(d time.Duration) func(string) time.Duration {
	return func(reaction string) time.Duration {
		if reaction == "active" {
			return d
		}
		return 0
	}
}

func active(user string, a store.Action) ingest.Event {
	return ev("stove-3", "active", user, a, ingest.SourceMQTT)
}

func mustSubmit(tb testing.TB, w *ingest.Writer, e ingest.Event) store.Result {
	tb.Helper()
	res, err := w.Submit(context.Background(), e)
	if err != nil {
		tb.Fatalf("Submit(%s %s): %v", e.Action, e.UserID, err)
	}
	return res
}

// TestWriter_Expiry runs in a synctest bubble: time is fake and advances only when
// every goroutine of the test is blocked, so hours of TTL take no real time.
func TestWriter_Expiry(t *testing.T) {
	t.Run("ExpiresWithoutRefresh", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := store.NewMemory()
			w, reg := MustStartWriter(t, st, ingest.Options{TTL: activeTTL(2 * time.Second)})
			res := mustSubmit(t, w, active("sam", store.Add))
			if want := time.Now().Add(2 * time.Second).UnixMilli(); res.Expiry != want {
				t.Fatalf("expiry = %d, want now+2s = %d", res.Expiry, want)
			}
			mustSubmit(t, w, ev("stove-3", "fire", "sam", store.Add, ingest.SourceMQTT)) // no TTL
			time.Sleep(1999 * time.Millisecond)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 1)
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 0)
			mustCount(t, st, "stove-3", "fire", 1)
			mustMetric(t, reg, 1, "arina_memberships_expired_total", "reaction", "active")
		})
	})
	t.Run("RefreshExtends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := store.NewMemory()
			w, _ := MustStartWriter(t, st, ingest.Options{TTL: activeTTL(8 * time.Hour)})
			mustSubmit(t, w, active("sam", store.Add))
			for range 10 { // a badge seen every 7h stays for 70h and more
				time.Sleep(7 * time.Hour)
				res := mustSubmit(t, w, active("sam", store.Add))
				if res.Changed {
					t.Fatalf("refresh %+v: the membership had expired", res)
				}
			}
			time.Sleep(8*time.Hour - time.Millisecond)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 1)
			time.Sleep(2 * time.Millisecond)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 0)
		})
	})
	t.Run("RemoveThenReAdd", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := store.NewMemory()
			w, reg := MustStartWriter(t, st, ingest.Options{TTL: activeTTL(time.Minute)})
			mustSubmit(t, w, active("sam", store.Add))
			mustSubmit(t, w, active("sam", store.Remove))
			time.Sleep(30 * time.Second)
			mustSubmit(t, w, active("sam", store.Add)) // a new membership, expiring at 90s
			time.Sleep(31 * time.Second)               // the first add's check comes and goes
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 1)
			time.Sleep(30 * time.Second)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 0)
			mustMetric(t, reg, 1, "arina_memberships_expired_total", "reaction", "active")
		})
	})
	t.Run("ManyAtOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := store.NewMemory()
			w, reg := MustStartWriter(t, st, ingest.Options{TTL: activeTTL(time.Minute), BatchSize: 256})
			const n = 5000
			for i := range n {
				mustEnqueue(t, w, active("u"+strconv.Itoa(i), store.Add), nil)
			}
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", n)
			time.Sleep(time.Minute + time.Millisecond)
			synctest.Wait()
			mustCount(t, st, "stove-3", "active", 0)
			mustMetric(t, reg, n, "arina_memberships_expired_total", "reaction", "active")
		})
	})
}

// TestWriter_ExpiryAcrossRestart: expiry times are kept by a durable store; a
// membership that expired while the writer was stopped is gone when it starts, and one
// that has not expired yet still expires on time.
func TestWriter_ExpiryAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() store.Store {
		s, err := durable.Open(durable.Options{Dir: dir, Sync: true, MinFreeBytes: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ttl := func(r string) time.Duration {
		switch r {
		case "short":
			return time.Second
		case "long":
			return time.Hour
		}
		return 0
	}
	st := open()
	w, _ := MustStartWriter(t, st, ingest.Options{TTL: ttl})
	mustSubmit(t, w, ev("c", "short", "sam", store.Add, ingest.SourceMQTT))
	res := mustSubmit(t, w, ev("c", "long", "sam", store.Add, ingest.SourceMQTT))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()

	deadline := time.UnixMilli(res.Expiry - time.Hour.Milliseconds() + time.Second.Milliseconds())
	for time.Now().Before(deadline.Add(10 * time.Millisecond)) { // the short one expires while down
		time.Sleep(time.Until(deadline) + 10*time.Millisecond) // waiting out a real 1s TTL
	}
	st = open()
	defer st.Close()
	ms, err := st.Members(context.Background(), "c", "long", "", 10)
	if err != nil || len(ms) != 1 || ms[0].ExpiresAt != res.Expiry {
		t.Fatalf("long members after reopen = %+v, %v; want sam expiring at %d", ms, err, res.Expiry)
	}
	MustStartWriter(t, st, ingest.Options{TTL: ttl}) // Start applies expiries already due
	got := storetest.CountsMap(t, st, "c")
	if got["short"] != 0 || got["long"] != 1 {
		t.Fatalf("counts after restart = %v, want short 0 (expired while down), long 1", got)
	}
}

// BenchmarkWriter_Expire1M: one million memberships all due at once (as after a shift
// ends, or after a long stop): the writer loads their checks and applies the expiries
// in batches. Reported per membership.
func BenchmarkWriter_Expire1M(b *testing.B) {
	const n = 1_000_000
	ops := make([]store.Op, n)
	past := time.Now().Add(-time.Minute).UnixMilli()
	for i := range ops {
		ops[i] = store.Op{ContentID: "c" + strconv.Itoa(i%10_000), ReactionType: "active", UserID: "u" + strconv.Itoa(i), Action: store.Add, ExpiresAt: past}
	}
	out := make([]store.Result, n)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		st := store.NewMemory()
		if err := st.Apply(context.Background(), ops, out); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		w, _ := MustStartWriter(b, st, ingest.Options{TTL: activeTTL(time.Minute)}) // Start expires what is due
		b.StopTimer()
		if got := storetest.CountsMap(b, st, "c0")["active"]; got != 0 {
			b.Fatalf("c0 active = %d after the expiries, want 0", got)
		}
		w.Close(context.Background())
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/expiry")
}

// TestWriter_RemoteChanges: changes another node applied to a shared store reach
// OnChanges, and the writer expires the memberships they add with an expiry, which
// it did not read at its start; its own changes carry their expiry too.
func TestWriter_RemoteChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		var log changeLog
		w, _ := MustStartWriter(t, st, ingest.Options{TTL: activeTTL(2 * time.Second), OnChanges: log.add})
		res := mustSubmit(t, w, active("own", store.Add))
		// Another node adds sam with a TTL after this writer read the expiries.
		exp := time.Now().Add(time.Second).UnixMilli()
		storetest.MustApply(t, st, store.Op{ContentID: "stove-3", ReactionType: "active", UserID: "sam",
			Action: store.Add, ExpiresAt: exp})
		remote := store.Change{ContentID: "stove-3", ReactionType: "active", UserID: "sam", Action: store.Add,
			Count: 2, At: time.Now().UnixMilli(), ExpiresAt: exp}
		w.RemoteChanges([]store.Change{remote})
		time.Sleep(1001 * time.Millisecond)
		synctest.Wait()
		mustCount(t, st, "stove-3", "active", 1) // sam expired, own (2s) not yet
		log.mu.Lock()
		defer log.mu.Unlock()
		if len(log.changes) != 3 {
			t.Fatalf("changes %+v, want own's add, sam's remote add, sam's expiry", log.changes)
		}
		if c := log.changes[0]; c.UserID != "own" || c.ExpiresAt != res.Expiry || res.Expiry == 0 {
			t.Errorf("own change %+v, want its expiry %d", c, res.Expiry)
		}
		if log.changes[1] != remote {
			t.Errorf("remote change reached OnChanges as %+v, want %+v", log.changes[1], remote)
		}
		if c := log.changes[2]; c.UserID != "sam" || c.Action != store.Expire || c.Count != 1 || c.ExpiresAt != 0 {
			t.Errorf("expiry change %+v, want sam expired, count 1, no expiry", c)
		}
	})
}
