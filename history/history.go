// Package history keeps the recent past of the counts in memory: per (content,
// reaction) the count at every resolution step over a window (default 10s over 15m),
// and the changes applied per step (the floor's activity). It is fed from the change
// feed (feed.Hub) by its own goroutine, never by the writer, and it is bounded: only
// sets that changed within the window are kept, at most MaxSets of them, the least
// recently changed dropped first (and counted).
//
// It is its own package rather than part of feed: feed only fans changes out and
// keeps nothing; history is one of its watchers, like the SSE stream and the count
// topics, and owns state with its own bounds and metrics.
//
// Memory: each tracked set holds window/resolution+1 counts as uint32 (a count above
// 4294967295 is shown as that) and a bit per step saying whether it changed then,
// whatever how often it changes: about 0.5 KB per set at the defaults (see
// docs/PERFORMANCE.md for the measured figure).
package history

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/store"
)

// Defaults for Options.
const (
	DefaultResolution = 10 * time.Second
	DefaultWindow     = 15 * time.Minute
	DefaultMaxSets    = 100_000
	MaxSteps          = 4096 // the largest window/resolution
)

// Options configure a History.
type Options struct {
	Resolution time.Duration    // one sample per step; default 10s
	Window     time.Duration    // how far back; default 15m, rounded down to whole steps
	MaxSets    int              // (content, reaction) sets tracked at most; default 100000
	Now        func() time.Time // the clock; default time.Now (tests inject one)
}

// History is the recent past of the counts. It is safe for concurrent use: one
// goroutine applies changes (Start), readers take snapshots.
type History struct {
	res   int64 // resolution, ms
	steps int   // steps in the window
	max   int
	now   func() time.Time

	mu       sync.Mutex
	contents map[string]*content
	size     int
	head     *set // least recently changed
	tail     *set // most recently changed
	actStep  int64
	activity []uint64 // changes per step, index step % steps

	sets    prometheus.GaugeFunc
	dropped prometheus.Counter // sets dropped by the cap
	lagged  prometheus.Counter // times the feed cut the history off

	stop chan struct{}
	done chan struct{}
}

type content struct {
	id   string
	sets []*set
}

type set struct {
	c          *content
	reaction   string
	prev, next *set
	last       int64 // step of the last change
	// ring is the count at the end of each step, index step % (steps+1), followed by
	// a bit per step saying whether the count changed during it (one allocation).
	ring []uint32
}

func (st *set) changed(n, i int64) bool { return st.ring[n+i/32]&(1<<(i%32)) != 0 }
func (st *set) mark(n, i int64)         { st.ring[n+i/32] |= 1 << (i % 32) }
func (st *set) unmark(n, i int64)       { st.ring[n+i/32] &^= 1 << (i % 32) }

// New returns an empty History.
func New(opts Options) *History {
	if opts.Resolution <= 0 {
		opts.Resolution = DefaultResolution
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.MaxSets <= 0 {
		opts.MaxSets = DefaultMaxSets
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	res := max(opts.Resolution.Milliseconds(), 1)
	steps := int(min(max(opts.Window.Milliseconds()/res, 1), MaxSteps))
	h := &History{res: res, steps: steps, max: opts.MaxSets, now: opts.Now,
		contents: make(map[string]*content), activity: make([]uint64, steps)}
	h.actStep = h.step()
	h.sets = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "arina_history_sets",
		Help: "(content, reaction) sets whose recent history is kept in memory.",
	}, func() float64 {
		h.mu.Lock()
		defer h.mu.Unlock()
		return float64(h.size)
	})
	h.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "arina_history_dropped_total",
		Help: "Sets whose recent history was dropped to stay within history.max_sets (least recently changed first).",
	})
	h.lagged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "arina_history_lagged_total",
		Help: "Times the history fell behind the change feed and missed changes (it resumes with the next ones).",
	})
	return h
}

// Collectors returns the history's metrics, for registering.
func (h *History) Collectors() []prometheus.Collector {
	return []prometheus.Collector{h.sets, h.dropped, h.lagged}
}

// Resolution returns the step length.
func (h *History) Resolution() time.Duration { return time.Duration(h.res) * time.Millisecond }

// Window returns the span kept: Steps × Resolution.
func (h *History) Window() time.Duration {
	return time.Duration(h.res*int64(h.steps)) * time.Millisecond
}

func (h *History) step() int64 { return h.now().UnixMilli() / h.res }

// Apply records a batch of changes as happening now. Start calls it for every batch
// of the feed; tests call it directly.
func (h *History) Apply(changes []store.Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	h.advanceActivity(now)
	h.activity[now%int64(h.steps)] += uint64(len(changes))
	for i := range changes {
		h.record(&changes[i], now)
	}
	h.sweep(now)
}

func (h *History) advanceActivity(now int64) {
	if now <= h.actStep {
		return
	}
	for s := h.actStep + 1; s <= now && s <= h.actStep+int64(h.steps); s++ {
		h.activity[s%int64(h.steps)] = 0
	}
	h.actStep = now
}

func clamp(n int64) uint32 {
	if n < 0 {
		return 0
	}
	if n > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(n)
}

func (h *History) record(c *store.Change, now int64) {
	ct := h.contents[c.ContentID]
	var st *set
	if ct != nil {
		for _, s := range ct.sets {
			if s.reaction == c.ReactionType {
				st = s
				break
			}
		}
	}
	if st == nil {
		if h.size >= h.max {
			h.drop(h.head)
			h.dropped.Inc()
			if ct != nil && len(ct.sets) == 0 { // that was this content's last set
				ct = nil
			}
		}
		if ct == nil {
			ct = &content{id: c.ContentID}
			h.contents[c.ContentID] = ct
		}
		// Every change moves a count by one: before this one, and (the set being idle
		// through the window, or new) through the whole window, it was one less or more.
		before := c.Count - 1
		if c.Action != store.Add {
			before = c.Count + 1
		}
		n := h.steps + 1
		st = &set{c: ct, reaction: c.ReactionType, last: now, ring: make([]uint32, n+(n+31)/32)}
		for i := range n {
			st.ring[i] = clamp(before)
		}
		ct.sets = append(ct.sets, st)
		h.size++
	} else {
		h.unlink(st)
		n := int64(h.steps + 1)
		prev := st.ring[st.last%n]
		for s := st.last + 1; s <= now && s <= st.last+n; s++ { // all n slots at most
			i := s % n
			st.ring[i] = prev
			st.unmark(n, i)
		}
		if now > st.last {
			st.last = now
		}
	}
	n := int64(h.steps + 1)
	i := st.last % n
	st.ring[i] = clamp(c.Count)
	st.mark(n, i)
	h.pushBack(st)
}

// sweep drops the sets that did not change within the window ending at now.
func (h *History) sweep(now int64) {
	for h.head != nil && h.head.last <= now-int64(h.steps) {
		h.drop(h.head)
	}
}

// Sweep drops what went idle; Start calls it every step.
func (h *History) Sweep() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	h.advanceActivity(now)
	h.sweep(now)
}

func (h *History) drop(st *set) {
	h.unlink(st)
	ct := st.c
	for i, s := range ct.sets {
		if s == st {
			ct.sets[i] = ct.sets[len(ct.sets)-1]
			ct.sets[len(ct.sets)-1] = nil
			ct.sets = ct.sets[:len(ct.sets)-1]
			break
		}
	}
	if len(ct.sets) == 0 {
		delete(h.contents, ct.id)
	}
	h.size--
}

func (h *History) unlink(st *set) {
	if st.prev != nil {
		st.prev.next = st.next
	} else if h.head == st {
		h.head = st.next
	}
	if st.next != nil {
		st.next.prev = st.prev
	} else if h.tail == st {
		h.tail = st.prev
	}
	st.prev, st.next = nil, nil
}

func (h *History) pushBack(st *set) {
	st.prev = h.tail
	if h.tail != nil {
		h.tail.next = st
	} else {
		h.head = st
	}
	h.tail = st
}

// Sample is one step: the count at its end (so far, for the current step).
type Sample struct {
	At    int64 `json:"at"` // unix ms when the step began
	Count int64 `json:"count"`
}

// Series is the recent history of one (content, reaction).
type Series struct {
	ReactionType string `json:"reaction_type"`
	Count        int64  `json:"count"`       // the count now
	StartCount   int64  `json:"start_count"` // the count when the window began
	// Samples are the steps within the window in which the count changed, oldest
	// first, each with the count at the step's end.
	Samples []Sample `json:"samples"`
}

// Content returns the history of the reactions of one content that changed within
// the window, sorted by reaction type; none when nothing changed.
func (h *History) Content(id string) []Series {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	ct := h.contents[id]
	if ct == nil {
		return nil
	}
	n := int64(h.steps + 1)
	first := now - int64(h.steps) + 1 // the window's first step
	out := make([]Series, 0, len(ct.sets))
	for _, st := range ct.sets {
		if st.last < first {
			continue // idle; the next sweep drops it
		}
		s := Series{ReactionType: st.reaction, Count: int64(st.ring[st.last%n]), StartCount: int64(st.ring[(first-1)%n])}
		if first-1 >= st.last {
			s.StartCount = s.Count
		}
		for step := max(first, st.last-n+1); step <= st.last; step++ {
			i := step % n
			if st.changed(n, i) {
				s.Samples = append(s.Samples, Sample{At: step * h.res, Count: int64(st.ring[i])})
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReactionType < out[j].ReactionType })
	return out
}

// ActivitySample is the number of changes applied during one step.
type ActivitySample struct {
	At      int64  `json:"at"` // unix ms when the step began
	Changes uint64 `json:"changes"`
}

// Activity returns the changes applied per step over the window, oldest first: one
// sample per step, the last one the current (unfinished) step.
func (h *History) Activity() []ActivitySample {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	h.advanceActivity(now)
	out := make([]ActivitySample, h.steps)
	for k := range out {
		s := now - int64(h.steps) + 1 + int64(k)
		out[k] = ActivitySample{At: s * h.res, Changes: h.activity[s%int64(h.steps)]}
	}
	return out
}

// Start follows hub in its own goroutine until Close or until hub closes. If the
// history falls behind the feed, the feed cuts it off: it counts that and watches
// again, missing the changes in between.
func (h *History) Start(hub *feed.Hub) {
	h.stop, h.done = make(chan struct{}), make(chan struct{})
	w := hub.Watch()
	go func() {
		defer close(h.done)
		tick := time.NewTicker(time.Duration(h.res) * time.Millisecond)
		defer tick.Stop()
		defer func() { hub.Unwatch(w) }()
		for {
			select {
			case batch := <-w.C:
				h.Apply(batch)
			case <-w.Lagged():
				select {
				case <-hub.Done():
					return // cut off because the hub closed
				default:
				}
				h.lagged.Inc()
				hub.Unwatch(w)
				w = hub.Watch()
			case <-tick.C:
				h.Sweep()
			case <-hub.Done():
				return
			case <-h.stop:
				return
			}
		}
	}()
}

// Close stops the goroutine Start began and waits for it. Safe to call twice, and
// without Start.
func (h *History) Close() {
	if h.stop == nil {
		return
	}
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}
