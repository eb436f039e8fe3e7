package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gateStore is the real memory store with three additions for the tests: it records
// the size of every batch, it can hold Apply until Release, and it can fail Apply.
type gateStore struct {
	*store.Memory
	gate    chan struct{} // nil: Apply never waits; else it waits until gate is closed
	release sync.Once
	fail    error // when not nil, every Apply returns it (after the gate) and applies nothing

	calls   atomic.Int64 // Apply calls begun
	mu      sync.Mutex
	batches []int // guarded by mu
}

var _ store.Store = (*gateStore)(nil)

// newGateStore returns a gateStore; blocked makes Apply wait for Release.
func newGateStore(blocked bool, fail error) *gateStore {
	s := &gateStore{Memory: store.NewMemory(), fail: fail}
	if blocked {
		s.gate = make(chan struct{})
	}
	return s
}

func (s *gateStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	s.mu.Lock()
	s.batches = append(s.batches, len(ops))
	s.mu.Unlock()
	s.calls.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.fail != nil {
		return s.fail
	}
	return s.Memory.Apply(ctx, ops, out)
}

// Release lets every waiting and future Apply through.
func (s *gateStore) Release() {
	if s.gate != nil {
		s.release.Do(func() { close(s.gate) })
	}
}

// Batches returns the sizes of the batches Apply was called with, in order.
func (s *gateStore) Batches() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// MustStartWriter starts a writer on st with its metrics on a new registry, and closes it
// (releasing st first, if it is a gateStore) at cleanup.
func MustStartWriter(tb testing.TB, st store.Store, opts ingest.Options) (*ingest.Writer, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	w, err := ingest.NewWriter(st, opts, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		tb.Fatalf("NewWriter: %v", err)
	}
	w.Start()
	tb.Cleanup(func() {
		if gs, ok := st.(*gateStore); ok {
			gs.Release()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			tb.Errorf("closing the writer: %v", err)
		}
	})
	return w, reg
}

// waitFor polls cond until it returns nil, failing the test with cond's last error
// after 5s.
func waitFor(tb testing.TB, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after 5s: %v", err)
		}
		<-tick.C
	}
}

// applyCalls is a waitFor condition: st has begun n Apply calls.
func applyCalls(st *gateStore, n int64) func() error {
	return func() error {
		if got := st.calls.Load(); got != n {
			return fmt.Errorf("Apply calls = %d, want %d", got, n)
		}
		return nil
	}
}

// queued is a waitFor condition: n events wait in w's queue.
func queued(w *ingest.Writer, n int) func() error {
	return func() error {
		if got := w.QueueLen(); got != n {
			return fmt.Errorf("QueueLen = %d, want %d", got, n)
		}
		return nil
	}
}

// mustCount fails unless the set of (content, reaction) in st holds want users.
func mustCount(tb testing.TB, st store.Store, content, reaction string, want int64) {
	tb.Helper()
	for _, c := range storetest.MustCounts(tb, st, content) {
		if c.ReactionType == reaction {
			if c.Count != want {
				tb.Fatalf("count of (%s, %s) = %d, want %d", content, reaction, c.Count, want)
			}
			return
		}
	}
	tb.Fatalf("content %s has no reaction %s, want count %d", content, reaction, want)
}

type ackResult struct {
	res store.Result
	err error
}

// ackChan is an Ack that sends each outcome on a buffered channel.
type ackChan chan ackResult

func (a ackChan) Done(res store.Result, err error) { a <- ackResult{res, err} }

// recvAcks receives n outcomes from a, failing the test after 5s.
func recvAcks(tb testing.TB, a ackChan, n int) []ackResult {
	tb.Helper()
	timeout := time.After(5 * time.Second)
	got := make([]ackResult, 0, n)
	for len(got) < n {
		select {
		case r := <-a:
			got = append(got, r)
		case <-timeout:
			tb.Fatalf("got %d acks, want %d", len(got), n)
		}
	}
	return got
}

func mustEnqueue(tb testing.TB, w *ingest.Writer, e ingest.Event, ack ingest.Ack) {
	tb.Helper()
	if err := w.Enqueue(context.Background(), e, ack); err != nil {
		tb.Fatalf("Enqueue(%s %s): %v", e.Action, e.UserID, err)
	}
}

// add and remove are MQTT events on (Stew, fire).
func add(user string) ingest.Event {
	return ev("Stew", "fire", user, store.Add, ingest.SourceMQTT)
}

func remove(user string) ingest.Event {
	return ev("Stew", "fire", user, store.Remove, ingest.SourceMQTT)
}

// series is the one metric of reg with this name and these labels (name, value pairs),
// as a Collector for testutil.ToFloat64.
type series struct {
	reg    *prometheus.Registry
	name   string
	labels []string
}

func (s series) Describe(chan<- *prometheus.Desc) {} // unchecked: only for ToFloat64

func (s series) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric)
	go func() {
		s.reg.Collect(all)
		close(all)
	}()
	for m := range all {
		if s.match(m) {
			ch <- m
		}
	}
}

func (s series) match(m prometheus.Metric) bool {
	if !strings.Contains(m.Desc().String(), fmt.Sprintf("fqName: %q", s.name)) {
		return false
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil || len(pb.GetLabel()) != len(s.labels)/2 {
		return false
	}
	for _, l := range pb.GetLabel() {
		i := slices.Index(s.labels, l.GetName())
		if i < 0 || i%2 != 0 || s.labels[i+1] != l.GetValue() {
			return false
		}
	}
	return true
}

// mustMetric fails unless the counter or gauge name{labels} of reg has value want.
func mustMetric(tb testing.TB, reg *prometheus.Registry, want float64, name string, labels ...string) {
	tb.Helper()
	s := series{reg, name, labels}
	if n := testutil.CollectAndCount(s); n != 1 {
		tb.Fatalf("%s%v: %d series, want 1", name, labels, n)
	}
	if got := testutil.ToFloat64(s); got != want {
		tb.Fatalf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// mustHistogram returns the histogram name of reg.
func mustHistogram(tb testing.TB, reg *prometheus.Registry, name string) *dto.Histogram {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetHistogram() != nil {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	tb.Fatalf("no histogram %s", name)
	return nil
}

func TestWriter_Submit(t *testing.T) {
	st := store.NewMemory()
	w, _ := MustStartWriter(t, st, ingest.Options{})
	// Each step runs on the state the previous ones left. Submit returns only after the
	// event was applied: the count is right at once, with no polling.
	for _, step := range []struct {
		name string
		ev   ingest.Event
		want store.Result
	}{
		{"AddNew", add("Sam"), store.Result{Changed: true, Count: 1}},
		{"AddOther", add("Ann"), store.Result{Changed: true, Count: 2}},
		{"AddDuplicate", add("Sam"), store.Result{Changed: false, Count: 2}},
		{"Remove", remove("Ann"), store.Result{Changed: true, Count: 1}},
		{"RemoveAbsent", remove("Zed"), store.Result{Changed: false, Count: 1}},
		{"RemoveLast", remove("Sam"), store.Result{Changed: true, Count: 0}},
	} {
		t.Run(step.name, func(t *testing.T) {
			got, err := w.Submit(context.Background(), step.ev)
			if err != nil {
				t.Fatalf("Submit(%s %s): %v", step.ev.Action, step.ev.UserID, err)
			}
			if got != step.want {
				t.Fatalf("Submit(%s %s) = %+v, want %+v", step.ev.Action, step.ev.UserID, got, step.want)
			}
			mustCount(t, st, "Stew", "fire", step.want.Count)
		})
	}
}

func TestWriter_Submit_Concurrent(t *testing.T) {
	const producers, perProducer = 16, 250
	st := newGateStore(false, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{BatchSize: 32})

	var changed atomic.Int64
	errs := make(chan error, producers)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				e := add(fmt.Sprintf("u%d-%d", p, i))
				if p%2 == 1 {
					e.ContentID = "Soup"
				}
				res, err := w.Submit(context.Background(), e)
				if err != nil {
					errs <- fmt.Errorf("producer %d, event %d: %w", p, i, err)
					return
				}
				if res.Changed {
					changed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	const total = producers * perProducer
	// Every event applied, each exactly once: the sets hold all users, every add changed
	// its set, and the batches the store saw add up to the events submitted.
	mustCount(t, st, "Stew", "fire", total/2)
	mustCount(t, st, "Soup", "fire", total/2)
	if got := changed.Load(); got != total {
		t.Errorf("%d results changed a set, want %d", got, total)
	}
	var applied, most int
	for _, n := range st.Batches() {
		applied += n
		most = max(most, n)
	}
	if applied != total {
		t.Errorf("the store was given %d events, want %d", applied, total)
	}
	if most > 32 {
		t.Errorf("largest batch %d, want at most BatchSize 32", most)
	}
	mustMetric(t, reg, total, "arina_events_applied_total", "source", "mqtt")
	mustMetric(t, reg, total, "arina_memberships_changed_total", "action", "add")
}

func TestWriter_BatchSize(t *testing.T) {
	st := newGateStore(true, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{BatchSize: 8, QueueSize: 1000})
	acks := make(ackChan, 101)

	mustEnqueue(t, w, add("first"), acks)
	waitFor(t, applyCalls(st, 1)) // the writer holds a batch of 1 in Apply
	for i := range 100 {
		mustEnqueue(t, w, add(fmt.Sprintf("u%d", i)), acks)
	}
	waitFor(t, queued(w, 100))
	st.Release()

	for _, a := range recvAcks(t, acks, 101) {
		if a.err != nil || !a.res.Changed {
			t.Fatalf("ack = %+v, %v; want a change and no error", a.res, a.err)
		}
	}
	// The 100 queued events are taken in full batches of 8, then the rest.
	want := []int{1, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 4}
	if got := st.Batches(); !slices.Equal(got, want) {
		t.Fatalf("batch sizes = %v, want %v", got, want)
	}
	mustCount(t, st, "Stew", "fire", 101)
	h := mustHistogram(t, reg, "arina_ingest_batch_size")
	if h.GetSampleCount() != uint64(len(want)) || h.GetSampleSum() != 101 {
		t.Fatalf("batch size histogram: %d batches of %v events in all, want %d of 101", h.GetSampleCount(), h.GetSampleSum(), len(want))
	}
}

// TestWriter_Linger: with Linger set, a batch that is not full waits that long from
// its first event for more (events that come meanwhile go into it, and nothing is
// acked before the linger ends), while a batch that fills is applied at once.
func TestWriter_Linger(t *testing.T) {
	const linger = time.Second
	st := newGateStore(false, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{BatchSize: 4, QueueSize: 100, Linger: linger})
	acks := make(ackChan, 10)

	start := time.Now()
	mustEnqueue(t, w, add("a"), acks)
	waitFor(t, func() error { // in the writer's hands, not yet applied
		if w.QueueLen() != 0 {
			return errors.New("a still queued")
		}
		return nil
	})
	mustEnqueue(t, w, add("b"), acks)
	recvAcks(t, acks, 2)
	if elapsed := time.Since(start); elapsed < linger {
		t.Fatalf("a and b acked after %v, want no sooner than the linger %v", elapsed, linger)
	}
	if got := st.Batches(); !slices.Equal(got, []int{2}) {
		t.Fatalf("batch sizes = %v, want [2]: b joins a's batch while it lingers", got)
	}

	// Four events fill a batch: applied without waiting for the linger (an hour).
	w2, _ := MustStartWriter(t, newGateStore(false, nil), ingest.Options{BatchSize: 4, QueueSize: 100, Linger: time.Hour})
	for _, u := range []string{"c", "d", "e", "f"} {
		mustEnqueue(t, w2, add(u), acks)
	}
	recvAcks(t, acks, 4)
	mustMetric(t, reg, 2, "arina_events_applied_total", "source", "mqtt")
}

func TestWriter_Enqueue_QueueFull(t *testing.T) {
	const timeout = 20 * time.Millisecond
	st := newGateStore(true, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: timeout})

	mustEnqueue(t, w, add("a"), nil)
	waitFor(t, applyCalls(st, 1)) // "a" is held in Apply
	mustEnqueue(t, w, add("b"), nil)
	waitFor(t, queued(w, 1)) // "b" fills the queue

	start := time.Now()
	err := w.Enqueue(context.Background(), add("c"), nil)
	if elapsed := time.Since(start); elapsed < timeout {
		t.Errorf("Enqueue gave up after %v, want at least EnqueueTimeout %v", elapsed, timeout)
	}
	if !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("Enqueue on a full queue = %v, want ErrQueueFull", err)
	}
	if got := ingest.CodeOf(err); got != ingest.CodeOverload {
		t.Fatalf("CodeOf(%v) = %q, want %q", err, got, ingest.CodeOverload)
	}
	if _, err := w.Submit(context.Background(), add("d")); !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("Submit on a full queue = %v, want ErrQueueFull", err)
	}

	mustMetric(t, reg, 4, "arina_events_received_total", "source", "mqtt")
	mustMetric(t, reg, 2, "arina_events_rejected_total", "source", "mqtt", "reason", "overload")
	mustMetric(t, reg, 1, "arina_ingest_queue_length")
	mustMetric(t, reg, 1, "arina_ingest_queue_capacity")

	st.Release()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mustCount(t, st, "Stew", "fire", 2) // a and b; c and d were refused
	mustMetric(t, reg, 2, "arina_events_applied_total", "source", "mqtt")
}

func TestWriter_Enqueue_ContextDone(t *testing.T) {
	st := newGateStore(true, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: time.Hour})
	mustEnqueue(t, w, add("a"), nil)
	waitFor(t, applyCalls(st, 1))
	mustEnqueue(t, w, add("b"), nil)
	waitFor(t, queued(w, 1))

	// The producer's context bounds the wait too: no hour-long hang.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := w.Enqueue(ctx, add("c"), nil); !errors.Is(err, ingest.ErrQueueFull) {
		t.Fatalf("Enqueue with a done context on a full queue = %v, want ErrQueueFull", err)
	}
	mustMetric(t, reg, 1, "arina_events_rejected_total", "source", "mqtt", "reason", "overload")
}

func TestWriter_Enqueue_Closed(t *testing.T) {
	st := store.NewMemory()
	w, reg := MustStartWriter(t, st, ingest.Options{})
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := w.Enqueue(context.Background(), add("late"), nil)
	if !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if got := ingest.CodeOf(err); got != ingest.CodeShuttingDown {
		t.Fatalf("CodeOf(%v) = %q, want %q", err, got, ingest.CodeShuttingDown)
	}
	if _, err := w.Submit(context.Background(), add("late")); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("Submit after Close = %v, want ErrClosed", err)
	}
	mustMetric(t, reg, 2, "arina_events_rejected_total", "source", "mqtt", "reason", "shutting_down")
	if _, err := st.Counts(context.Background(), "Stew"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Counts after refused events = %v, want ErrNotFound", err)
	}
}

func TestWriter_Close_WakesWaitingProducer(t *testing.T) {
	st := newGateStore(true, nil)
	w, reg := MustStartWriter(t, st, ingest.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: time.Hour})
	mustEnqueue(t, w, add("a"), nil)
	waitFor(t, applyCalls(st, 1))
	mustEnqueue(t, w, add("b"), nil)
	waitFor(t, queued(w, 1))

	enqueued := make(chan error, 1)
	go func() { enqueued <- w.Enqueue(context.Background(), add("c"), nil) }()
	waitFor(t, func() error { // the producer is in Enqueue, waiting for room
		if got := testutil.ToFloat64(series{reg, "arina_events_received_total", []string{"source", "mqtt"}}); got != 3 {
			return fmt.Errorf("received = %v, want 3", got)
		}
		return nil
	})
	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()

	select {
	case err := <-enqueued:
		if !errors.Is(err, ingest.ErrClosed) {
			t.Fatalf("Enqueue waiting when Close began = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake the producer waiting for room")
	}
	st.Release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	mustCount(t, st, "Stew", "fire", 2)
}

func TestWriter_Close_Drains(t *testing.T) {
	const n = 50
	st := newGateStore(true, nil)
	// One event held in Apply and n-1 queued fill the queue, so no probe below can be
	// accepted: it is refused as overload until Close begins, then as closed.
	w, _ := MustStartWriter(t, st, ingest.Options{QueueSize: n - 1, BatchSize: 16})
	acks := make(ackChan, n)
	mustEnqueue(t, w, add("u0"), acks)
	waitFor(t, applyCalls(st, 1))
	for i := 1; i < n; i++ {
		mustEnqueue(t, w, add(fmt.Sprintf("u%d", i)), acks)
	}
	waitFor(t, queued(w, n-1))

	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()
	// Poll until Close has begun: then new events are refused as closed. The probe's
	// context is done so that it never waits for room.
	probe, cancel := context.WithCancel(context.Background())
	cancel()
	waitFor(t, func() error {
		if err := w.Enqueue(probe, add("late"), nil); !errors.Is(err, ingest.ErrClosed) {
			return fmt.Errorf("Enqueue during Close = %v, want ErrClosed", err)
		}
		return nil
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the store still held the first batch", err)
	default:
	}

	st.Release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Everything accepted before Close was applied and acknowledged before it returned.
	if len(acks) != n {
		t.Fatalf("%d acks when Close returned, want %d", len(acks), n)
	}
	for _, a := range recvAcks(t, acks, n) {
		if a.err != nil {
			t.Fatalf("ack error: %v", a.err)
		}
	}
	mustCount(t, st, "Stew", "fire", n)
	if w.Running() || w.QueueLen() != 0 {
		t.Fatalf("after Close: Running = %v, QueueLen = %d; want false, 0", w.Running(), w.QueueLen())
	}
}

func TestWriter_Close_RacingProducers(t *testing.T) {
	// Producers keep enqueueing while Close runs: each event is either accepted, and
	// then applied and acknowledged before Close returns, or refused as closed and never
	// applied. A sender that raced past the closing gate would panic sending on the
	// closed queue, or leave an accepted event unapplied.
	for round := range 20 {
		st := store.NewMemory()
		w, _ := MustStartWriter(t, st, ingest.Options{QueueSize: 64, BatchSize: 8})
		const producers = 16
		var accepted atomic.Int64
		acks := new(countAck)
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					err := w.Enqueue(context.Background(), add(fmt.Sprintf("p%d-%d", p, i)), acks)
					switch {
					case err == nil:
						accepted.Add(1)
					case errors.Is(err, ingest.ErrClosed):
						return
					default:
						t.Errorf("Enqueue: %v, want nil or ErrClosed", err)
						return
					}
				}
			}()
		}
		waitFor(t, func() error {
			if accepted.Load() < int64(round+1)*50 {
				return fmt.Errorf("%d events accepted so far", accepted.Load())
			}
			return nil
		})
		if err := w.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		acked := acks.n.Load() // every accepted event is acknowledged before Close returns
		wg.Wait()
		n := accepted.Load()
		if acked != n || acks.n.Load() != n || acks.failed.Load() != 0 {
			t.Fatalf("round %d: %d events accepted, %d acknowledged when Close returned, %d after the producers stopped, %d with an error",
				round, n, acked, acks.n.Load(), acks.failed.Load())
		}
		mustCount(t, st, "Stew", "fire", n)
	}
}

// countAck counts the outcomes it is told, never blocking the writer.
type countAck struct{ n, failed atomic.Int64 }

func (a *countAck) Done(_ store.Result, err error) {
	if err != nil {
		a.failed.Add(1)
	}
	a.n.Add(1)
}

func TestWriter_Close_Timeout(t *testing.T) {
	st := newGateStore(true, nil)
	w, _ := MustStartWriter(t, st, ingest.Options{QueueSize: 10, BatchSize: 1})
	acks := make(ackChan, 4)
	for _, u := range []string{"a", "b", "c", "d"} {
		mustEnqueue(t, w, add(u), acks)
	}
	waitFor(t, applyCalls(st, 1)) // a is held in Apply
	waitFor(t, queued(w, 3))

	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := w.Close(ctx)
	if err == nil {
		t.Fatal("Close with an expired context while the store is blocked = nil, want an error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close error %q does not wrap context.DeadlineExceeded", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "abandoned") || !strings.Contains(msg, "3 queued events") {
		t.Errorf("Close error %q does not say that 3 queued events were abandoned", msg)
	}

	// The writer goroutine is still there: once the store frees, a second Close
	// waits for it to drain and return.
	st.Release()
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, a := range recvAcks(t, acks, 4) {
		if a.err != nil {
			t.Fatalf("ack error: %v", a.err)
		}
	}
	mustCount(t, st, "Stew", "fire", 4)
}

func TestWriter_StoreError(t *testing.T) {
	boom := errors.New("disk on fire")
	st := newGateStore(true, boom)
	w, reg := MustStartWriter(t, st, ingest.Options{QueueSize: 16})
	acks := make(ackChan, 6)

	mustEnqueue(t, w, add("a"), acks)
	waitFor(t, applyCalls(st, 1))
	for _, u := range []string{"b", "c", "d", "e", "f"} {
		mustEnqueue(t, w, add(u), acks)
	}
	waitFor(t, queued(w, 5))
	st.Release()

	for _, a := range recvAcks(t, acks, 6) {
		if !errors.Is(a.err, boom) {
			t.Fatalf("ack error = %v, want the store's %v", a.err, boom)
		}
		if got := ingest.CodeOf(a.err); got != ingest.CodeStoreError {
			t.Fatalf("CodeOf(%v) = %q, want %q", a.err, got, ingest.CodeStoreError)
		}
		if a.res != (store.Result{}) {
			t.Fatalf("failed event's result = %+v, want the zero Result", a.res)
		}
	}
	if got, want := st.Batches(), []int{1, 5}; !slices.Equal(got, want) {
		t.Fatalf("batch sizes = %v, want %v: the error must reach every event of a multi-event batch", got, want)
	}

	_, err := w.Submit(context.Background(), add("g"))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "applying batch of 1") {
		t.Fatalf("Submit with a failing store = %v, want %q wrapped with the batch size", err, boom)
	}
	mustMetric(t, reg, 7, "arina_events_rejected_total", "source", "mqtt", "reason", "store_error")
	mustMetric(t, reg, 0, "arina_events_applied_total", "source", "mqtt")
	if _, err := st.Counts(context.Background(), "Stew"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Counts after failed batches = %v, want ErrNotFound", err)
	}
}

func TestWriter_Submit_ContextDone(t *testing.T) {
	st := newGateStore(true, nil)
	w, _ := MustStartWriter(t, st, ingest.Options{})

	ctx, cancel := context.WithCancel(context.Background())
	submitted := make(chan error, 1)
	go func() {
		_, err := w.Submit(ctx, add("a"))
		submitted <- err
	}()
	waitFor(t, applyCalls(st, 1))
	cancel()
	if err := <-submitted; !errors.Is(err, context.Canceled) {
		t.Fatalf("Submit whose context ended = %v, want context.Canceled", err)
	}

	// The event was accepted, so it is still applied; and the abandoned waiter does not
	// disturb later Submits.
	st.Release()
	waitFor(t, func() error {
		if _, err := st.Counts(context.Background(), "Stew"); err != nil {
			return fmt.Errorf("counts of Stew: %w", err)
		}
		return nil
	})
	mustCount(t, st, "Stew", "fire", 1)
	for i := range 100 {
		res, err := w.Submit(context.Background(), add(fmt.Sprintf("u%d", i)))
		if err != nil || res != (store.Result{Changed: true, Count: int64(i) + 2}) {
			t.Fatalf("Submit #%d = %+v, %v; want changed, count %d", i, res, err, i+2)
		}
	}
}

func TestWriter_Close_Idempotent(t *testing.T) {
	t.Run("Started", func(t *testing.T) {
		st := store.NewMemory()
		w, _ := MustStartWriter(t, st, ingest.Options{})
		if _, err := w.Submit(context.Background(), add("a")); err != nil {
			t.Fatalf("Submit: %v", err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- w.Close(context.Background()) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Close: %v", err)
			}
		}
		if err := w.Close(context.Background()); err != nil {
			t.Fatalf("Close again: %v", err)
		}
		mustCount(t, st, "Stew", "fire", 1)
	})
	t.Run("NeverStarted", func(t *testing.T) {
		w, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatalf("NewWriter: %v", err)
		}
		for i := range 2 {
			if err := w.Close(context.Background()); err != nil {
				t.Fatalf("Close #%d of a writer never started: %v", i+1, err)
			}
		}
	})
}

func TestWriter_Running(t *testing.T) {
	w, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if w.Running() {
		t.Fatal("Running before Start = true")
	}
	w.Start()
	w.Start() // a second Start does nothing
	if !w.Running() {
		t.Fatal("Running after Start = false")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if w.Running() {
		t.Fatal("Running after Close = true")
	}
}

func TestWriter_Metrics(t *testing.T) {
	st := store.NewMemory()
	w, reg := MustStartWriter(t, st, ingest.Options{QueueSize: 128})
	for _, e := range []ingest.Event{
		add("Sam"), add("Ann"), add("Sam"), remove("Ann"), remove("Zed"),
		ev("Stew", "yum", "Bob", store.Add, ingest.SourceHTTP),
	} {
		if _, err := w.Submit(context.Background(), e); err != nil {
			t.Fatalf("Submit: %v", err)
		}
	}
	w.Reject(ingest.SourceHTTP, ingest.CodeBadJSON)
	w.Reject(ingest.SourceMQTT, ingest.CodeInvalidID)
	w.Reject(ingest.SourceMQTT, ingest.CodeInvalidID)

	for _, m := range []struct {
		want   float64
		name   string
		labels []string
	}{
		{7, "arina_events_received_total", []string{"source", "mqtt"}},
		{2, "arina_events_received_total", []string{"source", "http"}},
		{5, "arina_events_applied_total", []string{"source", "mqtt"}},
		{1, "arina_events_applied_total", []string{"source", "http"}},
		{2, "arina_events_rejected_total", []string{"source", "mqtt", "reason", "invalid_id"}},
		{1, "arina_events_rejected_total", []string{"source", "http", "reason", "bad_json"}},
		{3, "arina_memberships_changed_total", []string{"action", "add"}},
		{1, "arina_memberships_changed_total", []string{"action", "remove"}},
		{0, "arina_ingest_queue_length", nil},
		{128, "arina_ingest_queue_capacity", nil},
	} {
		t.Run(fmt.Sprintf("%s%v", m.name, m.labels), func(t *testing.T) {
			mustMetric(t, reg, m.want, m.name, m.labels...)
		})
	}
	if n := testutil.CollectAndCount(reg, "arina_events_rejected_total"); n != 2 {
		t.Errorf("arina_events_rejected_total has %d series, want 2 (one per source and reason seen)", n)
	}
	// Each Submit waited for its event, so each event was a batch of its own.
	for _, name := range []string{"arina_ingest_batch_size", "arina_ingest_apply_seconds"} {
		if h := mustHistogram(t, reg, name); h.GetSampleCount() != 6 {
			t.Errorf("%s has %d observations, want 6", name, h.GetSampleCount())
		}
	}
	if h := mustHistogram(t, reg, "arina_ingest_batch_size"); h.GetSampleSum() != 6 {
		t.Errorf("arina_ingest_batch_size sums to %v events, want 6", h.GetSampleSum())
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("linting metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

func TestNewWriter_Registry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), reg); err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	_, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) || !strings.Contains(err.Error(), "registering ingest metrics") {
		t.Fatalf("second NewWriter on one registry = %v, want an AlreadyRegisteredError with context", err)
	}
	for i := range 2 {
		if _, err := ingest.NewWriter(store.NewMemory(), ingest.Options{}, slog.New(slog.DiscardHandler), nil); err != nil {
			t.Fatalf("NewWriter #%d without a registry: %v", i+1, err)
		}
	}
}

// callLog records, in order, an AckBatcher's calls and the acks' Done calls.
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *callLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *callLog) BeginAcks() { l.add("begin") }
func (l *callLog) EndAcks()   { l.add("end") }

// logAck is an Ack that records its Done in a callLog under its user.
type logAck struct {
	l    *callLog
	user string
}

func (a logAck) Done(store.Result, error) { a.l.add("done " + a.user) }

// TestWriter_AckBatcher: the writer brackets every batch's Done calls with its
// AckBatcher's BeginAcks and EndAcks (the broker's flusher writes the PUBACKs the
// batch left it in EndAcks), whether the batch applied or failed; with none set,
// nothing is called.
func TestWriter_AckBatcher(t *testing.T) {
	for _, fail := range []error{nil, errors.New("disk gone")} {
		st := newGateStore(true, fail)
		w, _ := MustStartWriter(t, st, ingest.Options{BatchSize: 10, QueueSize: 100})
		l := &callLog{}
		w.SetAckBatcher(l)
		mustEnqueue(t, w, add("a"), logAck{l, "a"})
		waitFor(t, applyCalls(st, 1)) // a is held in Apply: b and c queue behind it
		mustEnqueue(t, w, add("b"), logAck{l, "b"})
		mustEnqueue(t, w, add("c"), logAck{l, "c"})
		st.Release()
		want := []string{"begin", "done a", "end", "begin", "done b", "done c", "end"}
		waitFor(t, func() error {
			if got := l.get(); !slices.Equal(got, want) {
				return fmt.Errorf("store error %v: calls %q, want %q", fail, got, want)
			}
			return nil
		})

		w.SetAckBatcher(nil)
		acks := make(ackChan, 1)
		mustEnqueue(t, w, add("d"), acks)
		recvAcks(t, acks, 1)
		if got := l.get(); len(got) != len(want) {
			t.Fatalf("calls after SetAckBatcher(nil): %q", got[len(want):])
		}
	}
}
