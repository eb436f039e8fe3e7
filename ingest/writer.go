package ingest

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/store"
)

// Options configure a Writer. Zero values take the defaults.
type Options struct {
	QueueSize      int           // capacity of the queue; default 16384
	BatchSize      int           // most events applied in one store call; default 1024
	EnqueueTimeout time.Duration // how long a producer waits for room before ErrQueueFull; default 1s
	// Linger is how long the writer waits, from the first event of a batch, for more
	// before it applies (and with a durable store commits) a batch that is not full:
	// fewer, larger commits for a fleet whose events come one at a time, at the price
	// of that much ack latency. 0 (the default): it applies what is queued at once.
	Linger time.Duration

	// TTL returns how long a membership of a reaction type lasts without being added
	// again (refreshed); 0: for ever. nil: nothing expires. Called by the writer only.
	TTL func(reactionType string) time.Duration

	// OnChanges, if set, is called by the writer goroutine after every applied batch
	// (events and expiries) with the changes it made, in order, and by RemoteChanges
	// with the changes other nodes made to a shared store: so it may run on two
	// goroutines at once. It must not block and must not keep the slice.
	OnChanges func([]store.Change)

	// TombstoneTTL is how long the store is asked to remember the ts of a user who left
	// a set (a tombstone, see store.Op.TS); default 24h. Every TombstoneTTL/24 (at most
	// 1h, at least 1s) the writer purges older tombstones, once an event with a ts has
	// been applied. So an event whose ts is older than now-TombstoneTTL could meet a
	// purged tombstone and wrongly apply: the writer does not apply it but acknowledges
	// it as stale, with a Result of Stale set and Count 0 (the count is not read).
	TombstoneTTL time.Duration
}

// Change is store.Change.
//
// Deprecated: use store.Change; this alias only keeps code written against
// ingest.Change building.
type Change = store.Change

// emit hands the changes among ops to OnChanges.
func (w *Writer) emit(ops []store.Op, out []store.Result, at int64) {
	if w.opts.OnChanges == nil {
		return
	}
	w.changes = w.changes[:0]
	for i := range ops {
		if out[i].Changed {
			w.changes = append(w.changes, store.Change{ContentID: ops[i].ContentID, ReactionType: ops[i].ReactionType,
				UserID: ops[i].UserID, Action: ops[i].Action, Count: out[i].Count, At: at, ExpiresAt: out[i].Expiry})
		}
	}
	if len(w.changes) > 0 {
		w.opts.OnChanges(w.changes)
		clear(w.changes)
	}
}

// Defaults for Options.
const (
	DefaultQueueSize      = 16384
	DefaultBatchSize      = 1024
	DefaultEnqueueTimeout = time.Second
	DefaultTombstoneTTL   = 24 * time.Hour
)

func (o *Options) setDefaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.EnqueueTimeout <= 0 {
		o.EnqueueTimeout = DefaultEnqueueTimeout
	}
	if o.TombstoneTTL <= 0 {
		o.TombstoneTTL = DefaultTombstoneTTL
	}
}

// purgeInterval is how often the writer purges tombstones: TombstoneTTL/24, between 1s
// and 1h. Purging late is harmless (the writer refuses what is older than the TTL
// anyway); purging often only costs scans.
func (o *Options) purgeInterval() time.Duration {
	return min(max(o.TombstoneTTL/24, time.Second), time.Hour)
}

// Ack is told the outcome of an enqueued event, once, by the writer goroutine, after the
// batch holding the event was applied (err == nil) or failed. Done must not block.
type Ack interface {
	Done(res store.Result, err error)
}

// An AckBatcher is told when the writer goroutine begins and ends completing the acks
// of a batch (Writer.SetAckBatcher), so that it can gather what the batch's Done calls
// leave it and act on it once. Both are called on the writer goroutine, around every
// batch's Done calls, and must not block for long.
type AckBatcher interface {
	BeginAcks()
	EndAcks()
}

type item struct {
	ev  Event
	ack Ack // may be nil
}

// Writer is the single goroutine that mutates the store. Producers hand it events over
// one bounded channel; it applies what is queued in batches and acknowledges each event
// after its batch was applied.
type Writer struct {
	st   store.Store
	opts Options
	log  *slog.Logger
	m    *metrics

	ch       chan item
	mu       sync.RWMutex  // held shared by senders, exclusively by Close to close ch
	closed   bool          // guarded by mu
	stopping chan struct{} // closed when Close begins: wakes senders waiting for room
	done     chan struct{} // closed when the writer goroutine has returned
	started  atomic.Bool
	running  atomic.Bool
	stopOnce sync.Once

	waiters sync.Pool

	lastErrLog time.Time // writer goroutine only: failures are logged at most every 10s
	failed     int       // events refused since the last log line

	remote   chan expiry              // expiries of memberships other nodes added (shared store)
	reload   chan struct{}            // ReloadExpiries asks the writer goroutine to load them again
	ctx      context.Context          // for store calls; never cancelled
	stamped  bool                     // writer goroutine only: an event with a ts went to the store
	expiries expiryHeap               // writer goroutine only: scheduled expiry checks
	ttls     map[string]time.Duration // writer goroutine only: cache of opts.TTL
	changes  []store.Change           // writer goroutine only: buffer for OnChanges
	batcher  atomic.Pointer[AckBatcher]
}

// SetAckBatcher makes b the writer's AckBatcher (nil: none); it may be called while
// the writer runs, and applies from the next batch.
func (w *Writer) SetAckBatcher(b AckBatcher) {
	if b == nil {
		w.batcher.Store(nil)
		return
	}
	w.batcher.Store(&b)
}

// NewWriter returns a writer applying events to st. Its metrics are registered with reg
// (nil: not registered). Call Start to run it and Close to drain and stop it.
func NewWriter(st store.Store, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Writer, error) {
	opts.setDefaults()
	w := &Writer{
		st:       st,
		opts:     opts,
		log:      logger,
		ch:       make(chan item, opts.QueueSize),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		ctx:      context.Background(),
		remote:   make(chan expiry, 4096),
		reload:   make(chan struct{}, 1),
		ttls:     make(map[string]time.Duration),
	}
	w.waiters.New = func() any { return &waiter{ch: make(chan struct{}, 1)} }
	m, err := newMetrics(reg, w)
	if err != nil {
		return nil, fmt.Errorf("registering ingest metrics: %w", err)
	}
	w.m = m
	return w, nil
}

// Start starts the writer goroutine. Close waits for it.
func (w *Writer) Start() {
	if !w.started.CompareAndSwap(false, true) {
		return
	}
	w.loadExpiries()
	w.running.Store(true)
	go w.run()
}

// Running reports whether the writer goroutine is applying events.
func (w *Writer) Running() bool { return w.running.Load() }

// QueueLen returns the number of events waiting in the queue.
func (w *Writer) QueueLen() int { return len(w.ch) }

// Reject counts an event from src that the edge rejected with code, before it reached
// the queue.
func (w *Writer) Reject(src Source, code Code) {
	w.m.received[src].Inc()
	w.m.rejected(src, code).Inc()
}

// Enqueue hands ev to the writer, waiting up to the configured timeout (or until ctx is
// done) for room in the queue. On success ack (if not nil) is told the outcome later.
// It returns ErrQueueFull when no room was found and ErrClosed after Close began; the
// event was then not accepted and is counted as rejected.
func (w *Writer) Enqueue(ctx context.Context, ev Event, ack Ack) error {
	if ev.Source >= numSources || (ev.Action != store.Add && ev.Action != store.Remove) {
		// A producer skipped Validate; refuse the event rather than crash the writer.
		return &Error{Code: CodeInvalidField, Msg: fmt.Sprintf("event not validated: source %d, action %d", ev.Source, ev.Action)}
	}
	src := ev.Source
	w.m.received[src].Inc()
	err := w.send(ctx, item{ev: ev, ack: ack})
	if err != nil {
		w.m.rejected(src, CodeOf(err)).Inc()
	}
	return err
}

func (w *Writer) send(ctx context.Context, it item) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select { // fast path: no timer when there is room
	case w.ch <- it:
		return nil
	default:
	}
	t := time.NewTimer(w.opts.EnqueueTimeout)
	defer t.Stop()
	select {
	case w.ch <- it:
		return nil
	case <-t.C:
		return ErrQueueFull
	case <-ctx.Done():
		return ErrQueueFull
	case <-w.stopping:
		return ErrClosed
	}
}

type waiter struct {
	ch  chan struct{}
	res store.Result
	err error
}

func (wt *waiter) Done(res store.Result, err error) {
	wt.res, wt.err = res, err
	wt.ch <- struct{}{}
}

// Submit enqueues ev and waits until it has been applied. If ctx ends first, Submit
// returns ctx's error, and the event, already accepted, is still applied.
func (w *Writer) Submit(ctx context.Context, ev Event) (store.Result, error) {
	wt := w.waiters.Get().(*waiter)
	if err := w.Enqueue(ctx, ev, wt); err != nil {
		w.waiters.Put(wt)
		return store.Result{}, err
	}
	select {
	case <-wt.ch:
		res, err := wt.res, wt.err
		w.waiters.Put(wt)
		return res, err
	case <-ctx.Done():
		return store.Result{}, ctx.Err() // wt is still owned by the writer: not pooled
	}
}

func (w *Writer) run() {
	defer close(w.done)
	defer w.running.Store(false)
	batch := make([]item, 0, w.opts.BatchSize)
	ops := make([]store.Op, w.opts.BatchSize)
	out := make([]store.Result, w.opts.BatchSize)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lingerT := time.NewTimer(time.Hour)
	lingerT.Stop()
	defer lingerT.Stop()
	var purgeT *time.Timer // nil until an event with a ts was applied
	defer func() {
		if purgeT != nil {
			purgeT.Stop()
		}
	}()
	for {
		var due <-chan time.Time
		if at, ok := w.nextExpiry(); ok {
			timer.Reset(time.Until(at))
			due = timer.C
		}
		var purge <-chan time.Time
		if purgeT != nil {
			purge = purgeT.C
		} else if w.stamped {
			purgeT = time.NewTimer(w.opts.purgeInterval())
			purge = purgeT.C
		}
		var it item
		var ok bool
		select {
		case it, ok = <-w.ch:
		case <-due:
			w.expire(time.Now(), ops, out)
			continue
		case now := <-purge:
			w.purgeTombstones(now)
			purgeT.Reset(w.opts.purgeInterval())
			continue
		case e := <-w.remote:
			heap.Push(&w.expiries, e)
			continue
		case <-w.reload:
			w.loadExpiries()
			continue
		}
		if !ok {
			return
		}
		batch = append(batch[:0], it)
	fill:
		for len(batch) < w.opts.BatchSize {
			select {
			case it, ok := <-w.ch:
				if !ok {
					break fill // apply what we have; the next receive returns !ok
				}
				batch = append(batch, it)
			default:
				break fill
			}
		}
		if w.opts.Linger > 0 && len(batch) < w.opts.BatchSize {
			batch = w.linger(batch, lingerT)
		}
		w.apply(batch, ops, out)
		clear(batch) // drop references to the events and acks
	}
}

// linger adds to batch the events that come within Options.Linger, until it is full or
// the queue is closed (t: the writer's linger timer, stopped).
func (w *Writer) linger(batch []item, t *time.Timer) []item {
	t.Reset(w.opts.Linger)
	defer t.Stop()
	for len(batch) < w.opts.BatchSize {
		select {
		case it, ok := <-w.ch:
			if !ok {
				return batch // the next receive returns !ok
			}
			batch = append(batch, it)
		case <-t.C:
			return batch
		}
	}
	return batch
}

// tooOld reports whether op has a ts before oldest: its tombstone may have been purged,
// so the writer does not apply it (see Options.TombstoneTTL).
func tooOld(op *store.Op, oldest int64) bool { return op.TS != 0 && op.TS < oldest }

func (w *Writer) apply(batch []item, ops []store.Op, out []store.Result) {
	start := time.Now()
	now := start.UnixMilli()
	oldest := now - w.opts.TombstoneTTL.Milliseconds()
	n := 0 // ops for the store: the batch but the events too old
	for i := range batch {
		op := &batch[i].ev.Op
		if op.TS != 0 {
			if tooOld(op, oldest) {
				continue
			}
			w.stamped = true
		}
		ops[n] = *op
		n++
	}
	var err error
	if n > 0 {
		w.stampExpiry(ops[:n], now)
		err = w.st.Apply(w.ctx, ops[:n], out[:n])
		if err == nil {
			w.schedule(ops[:n], out[:n])
			w.emit(ops[:n], out[:n], now)
		}
	}
	w.m.applySeconds.Observe(time.Since(start).Seconds())
	w.m.batchSize.Observe(float64(len(batch)))
	if err != nil {
		err = fmt.Errorf("applying batch of %d: %w", n, err)
		w.failed += n
		if now := time.Now(); now.Sub(w.lastErrLog) >= 10*time.Second {
			w.log.Error("store apply failed; events refused", "events", w.failed, "err", err)
			w.lastErrLog, w.failed = now, 0
		}
	}
	// out[j] is the result of batch[i], j <= i, unless batch[i] was too old: it is then
	// stale whatever became of the batch.
	b := w.batcher.Load()
	if b != nil {
		(*b).BeginAcks()
	}
	j := 0
	for i := range batch {
		src := batch[i].ev.Source
		var res store.Result
		var evErr error
		if tooOld(&batch[i].ev.Op, oldest) {
			res.Stale = true
		} else {
			res, evErr = out[j], err
			j++
		}
		if evErr != nil {
			w.m.rejected(src, CodeStoreError).Inc()
			res = store.Result{}
		} else {
			w.m.applied[src].Inc()
			if res.Stale {
				w.m.stale[src].Inc()
			}
			if res.Changed {
				w.m.changed[batch[i].ev.Action].Inc()
			}
		}
		if batch[i].ack != nil {
			batch[i].ack.Done(res, evErr)
		}
	}
	if b != nil {
		(*b).EndAcks()
	}
	clear(ops[:n])
}

// purgeTombstones asks the store to forget the tombstones that events can no longer
// meet: those older than now-TombstoneTTL.
func (w *Writer) purgeTombstones(now time.Time) {
	before := now.Add(-w.opts.TombstoneTTL).UnixMilli()
	n, err := w.st.PurgeTombstones(w.ctx, before)
	if err != nil {
		w.log.Error("purging tombstones failed; retrying at the next interval", "before", before, "err", err)
		return
	}
	w.log.Debug("tombstones purged", "tombstones", n, "before", before)
}

// RemoteChanges takes the changes that other nodes applied to a shared store (a Redis
// store's change feed): they reach OnChanges as the writer's own do, and the writer
// checks the expiry of every membership they add with one, as it does for its own, so
// that a membership with a TTL expires even if the node that added it is gone. It may
// be called before Start and from any goroutine, and never blocks: when too many
// expiry checks are waiting, the membership expires when its own node checks it, or
// at the next start of any node.
func (w *Writer) RemoteChanges(changes []store.Change) {
	for i := range changes {
		if c := &changes[i]; c.ExpiresAt > 0 && c.Action == store.Add {
			select {
			case w.remote <- expiry{at: c.ExpiresAt, content: c.ContentID, reaction: c.ReactionType, user: c.UserID}:
			default:
			}
		}
	}
	if w.opts.OnChanges != nil {
		w.opts.OnChanges(changes)
	}
}

// ReloadExpiries makes the writer goroutine read the memberships that have an expiry
// from the store again, between two batches, and schedule their checks, as it does at
// Start: for a shared store that could not be read then. Calls made before the writer
// gets to it count as one; it never blocks.
func (w *Writer) ReloadExpiries() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

// Close stops accepting events, lets the writer apply everything already accepted, and
// waits for it to return. If ctx ends first, Close returns an error saying how many
// events were abandoned. Close is safe to call more than once. Call it only after the
// producers (broker, HTTP ingest) have stopped, or their events are refused.
func (w *Writer) Close(ctx context.Context) error {
	w.stopOnce.Do(func() {
		close(w.stopping)
		w.mu.Lock()
		w.closed = true
		close(w.ch)
		w.mu.Unlock()
		if w.started.CompareAndSwap(false, true) {
			close(w.done) // never started, and now it never will: Start is a no-op
		}
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ingest writer: %d queued events abandoned: %w", len(w.ch), ctx.Err())
	}
}
