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
// Memory: a tracked set costs what changed. It keeps only the steps of the window in
// which its count changed, each with the count at the step's end (as uint32: a count
// above 4294967295 is shown as that): the latest one in the set itself, the earlier
// ones packed as varint differences, about 2 bytes a step (up to 7 for counts jumping
// by billions), the steps that left the window dropped as the set changes again.
// Measured live heap per set (BenchmarkHistory_SetBytes, 10k contents × 5 reactions,
// the History alone): about 115 B for a set that changed in one step of the window,
// 120 B in 5 steps, 305 B in all 91; it was 500 B whatever the changes, with a ring
// of every step's count.
package history

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unique"

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

// set is the recent past of one (content, reaction): the steps within the window in
// which its count changed, each with the count at the step's end (clamped to uint32).
// The latest such step is held apart (last, cur); the earlier ones, oldest first, are
// packed in buf[off:] as two varints each: the count minus the one before it (zigzag;
// before the first entry comes the count the set had before it), and the steps from
// this entry to the next one (the final entry's next one is last). A set that changed
// in one step costs no buf; each further changed step costs 2 bytes when its count
// moved by less than 64 and the steps are less than 128 apart. Entries older than
// the window are dropped when the set next changes (off moves past them; the bytes
// are reclaimed when buf is full), so buf holds at most steps entries.
type set struct {
	c          *content
	reaction   unique.Handle[string]
	prev, next *set
	last       int64  // step of the latest change
	cur        uint32 // the count at the end of step last
	prior      uint32 // the count of buf's final entry; buf empty: the count before step last
	buf        []byte
	off        uint16 // buf[:off] are dropped entries (buf stays under 64 KiB: MaxSteps entries of 7 bytes at most, grown by an eighth)
	age        uint16 // last minus the step of buf's first entry (buf not empty)
}

// entry decodes the entry at p of buf: its count minus the one before, the steps to
// the next entry, and where the one after it begins.
func (st *set) entry(p int) (dcount int64, gap int64, next int) {
	if b := st.buf; p+1 < len(b) && b[p] < 0x80 && b[p+1] < 0x80 { // two one-byte varints
		z := int64(b[p])
		return z>>1 ^ -(z & 1), int64(b[p+1]), p + 2
	}
	d, n := binary.Varint(st.buf[p:])
	g, m := binary.Uvarint(st.buf[p+n:])
	return d, int64(g), p + n + m
}

// base is the count before buf's first entry (before step last when buf is empty).
func (st *set) base() int64 {
	b := int64(st.prior)
	for p := int(st.off); p < len(st.buf); {
		d, _, next := st.entry(p)
		b -= d
		p = next
	}
	return b
}

// advance moves the set's latest step from last to now (now > last): it drops the
// entries older than the window ending at now (shrinking buf when that left it
// mostly empty), and packs (last, cur) after the rest, unless it is older than that
// window too.
func (st *set) advance(now int64, steps int64) {
	limit := now - steps // the window's first step: earlier entries are never read
	first := st.last     // the step of buf's first entry, once the old ones are dropped
	if b, off := st.buf, int(st.off); off < len(b) {
		s := st.last - int64(st.age)
		for off < len(b) && s < limit {
			if off+1 < len(b) && b[off] < 0x80 && b[off+1] < 0x80 { // entry's fast path, inline
				s += int64(b[off+1])
				off += 2
				continue
			}
			_, gap, next := st.entry(off)
			s, off = s+gap, next
		}
		first = s          // last when every entry went
		if off == len(b) { // the count before last is prior, as it was
			st.buf, off = b[:0], 0
			if cap(b) > 64 {
				st.buf = nil
			}
		} else if live := len(b) - off; cap(b) > 64 && live*4 < cap(b) { // mostly empty: shrink
			st.buf, off = append(slices.Grow([]byte(nil), live+live/8+8), b[off:]...), 0
		}
		st.off = uint16(off)
	}
	if st.last >= limit {
		d, gap := int64(st.cur)-int64(st.prior), now-st.last
		if z, n := uint64(d<<1)^uint64(d>>63), len(st.buf); z < 0x80 && gap < 0x80 && n+2 <= cap(st.buf) {
			st.buf = st.buf[:n+2] // push's fast path, inline: two one-byte varints
			st.buf[n], st.buf[n+1] = byte(z), byte(gap)
		} else {
			st.push(d, gap)
		}
		st.prior = st.cur
		st.age = uint16(now - first)
	} else {
		st.prior = st.cur // buf is empty: the count before now
	}
	st.last = now
}

// push appends an entry to buf, making room by moving the live entries to the front
// when dropped ones are in the way, and growing buf by an eighth of what it holds
// otherwise (the allocator's size classes round it up: a few allocations while a set
// gets busier, none once its changes fill the window).
func (st *set) push(dcount, gap int64) {
	if z := uint64(dcount<<1) ^ uint64(dcount>>63); z < 0x80 && gap < 0x80 && len(st.buf)+2 <= cap(st.buf) {
		n := len(st.buf) // the common entry: two one-byte varints, room for them
		st.buf = st.buf[:n+2]
		st.buf[n], st.buf[n+1] = byte(z), byte(gap)
		return
	}
	var tmp [2 * binary.MaxVarintLen64]byte
	e := binary.AppendVarint(tmp[:0], dcount)
	e = binary.AppendUvarint(e, uint64(gap))
	live := len(st.buf) - int(st.off)
	need := live + len(e)
	switch {
	case need > cap(st.buf):
		b := slices.Grow([]byte(nil), need+need/8) // the allocator rounds it up
		st.buf = append(b, st.buf[st.off:]...)
		st.off = 0
	case len(st.buf)+len(e) > cap(st.buf):
		st.buf = st.buf[:copy(st.buf, st.buf[st.off:])]
		st.off = 0
	}
	st.buf = append(st.buf, e...)
}

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
			if s.reaction.Value() == c.ReactionType {
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
			ct = &content{id: strings.Clone(c.ContentID)}
			h.contents[ct.id] = ct
		}
		// Every change moves a count by one: before this one, and (the set being idle
		// through the window, or new) through the whole window, it was one less or more.
		before := c.Count - 1
		if c.Action != store.Add {
			before = c.Count + 1
		}
		st = &set{c: ct, reaction: unique.Make(c.ReactionType), last: now, prior: clamp(before)}
		ct.sets = append(ct.sets, st)
		h.size++
	} else {
		if st != h.tail {
			h.unlink(st)
		}
		if now > st.last {
			st.advance(now, int64(h.steps))
		}
	}
	// A change in the step of the latest one (or, the clock having gone back, before
	// it) replaces that step's count.
	st.cur = clamp(c.Count)
	if st != h.tail {
		h.pushBack(st)
	}
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
		// The start count is the count at the end of the step before the window: x,
		// or, the clock having gone back behind last, the step of the steps+1 up to
		// last that is x modulo steps+1 (what a ring of steps+1 counts held for x).
		x := st.last - (st.last-(first-1))%n
		s := Series{ReactionType: st.reaction.Value(), Count: int64(st.cur)}
		count := st.base()
		s.StartCount = count
		step := st.last - int64(st.age)
		for p := int(st.off); p < len(st.buf); {
			d, gap, next := st.entry(p)
			count += d
			if step <= x {
				s.StartCount = count
			}
			if step >= first {
				s.Samples = append(s.Samples, Sample{At: step * h.res, Count: count})
			}
			step += gap
			p = next
		}
		if st.last <= x {
			s.StartCount = s.Count
		}
		s.Samples = append(s.Samples, Sample{At: st.last * h.res, Count: s.Count})
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
