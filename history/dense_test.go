package history_test

// dense is the History as it was before sparse sets (a ring of steps+1 counts and a
// changed bit per step for every set, whatever how often it changed), kept as the
// model the property test compares History with: every answer must be the same.

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/store"
)

// dense is the recent past of the counts. It is safe for concurrent use: one
// goroutine applies changes (Start), readers take snapshots.
type dense struct {
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

	dropped int // sets dropped by the cap
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

func newDense(opts history.Options) *dense {
	if opts.Resolution <= 0 {
		opts.Resolution = history.DefaultResolution
	}
	if opts.Window <= 0 {
		opts.Window = history.DefaultWindow
	}
	if opts.MaxSets <= 0 {
		opts.MaxSets = history.DefaultMaxSets
	}
	res := max(opts.Resolution.Milliseconds(), 1)
	steps := int(min(max(opts.Window.Milliseconds()/res, 1), history.MaxSteps))
	h := &dense{res: res, steps: steps, max: opts.MaxSets, now: opts.Now,
		contents: make(map[string]*content), activity: make([]uint64, steps)}
	h.actStep = h.step()
	return h
}

func (h *dense) step() int64 { return h.now().UnixMilli() / h.res }

// Apply records a batch of changes as happening now. Start calls it for every batch
// of the feed; tests call it directly.
func (h *dense) Apply(changes []store.Change) {
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

func (h *dense) advanceActivity(now int64) {
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

func (h *dense) record(c *store.Change, now int64) {
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
			h.dropped++
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
func (h *dense) sweep(now int64) {
	for h.head != nil && h.head.last <= now-int64(h.steps) {
		h.drop(h.head)
	}
}

// Sweep drops what went idle; Start calls it every step.
func (h *dense) Sweep() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	h.advanceActivity(now)
	h.sweep(now)
}

func (h *dense) drop(st *set) {
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

func (h *dense) unlink(st *set) {
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

func (h *dense) pushBack(st *set) {
	st.prev = h.tail
	if h.tail != nil {
		h.tail.next = st
	} else {
		h.head = st
	}
	h.tail = st
}

// Content returns the history of the reactions of one content that changed within
// the window, sorted by reaction type; none when nothing changed.
func (h *dense) Content(id string) []history.Series {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	ct := h.contents[id]
	if ct == nil {
		return nil
	}
	n := int64(h.steps + 1)
	first := now - int64(h.steps) + 1 // the window's first step
	out := make([]history.Series, 0, len(ct.sets))
	for _, st := range ct.sets {
		if st.last < first {
			continue // idle; the next sweep drops it
		}
		s := history.Series{ReactionType: st.reaction, Count: int64(st.ring[st.last%n]), StartCount: int64(st.ring[(first-1)%n])}
		if first-1 >= st.last {
			s.StartCount = s.Count
		}
		for step := max(first, st.last-n+1); step <= st.last; step++ {
			i := step % n
			if st.changed(n, i) {
				s.Samples = append(s.Samples, history.Sample{At: step * h.res, Count: int64(st.ring[i])})
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReactionType < out[j].ReactionType })
	return out
}

// Activity returns the changes applied per step over the window, oldest first: one
// sample per step, the last one the current (unfinished) step.
func (h *dense) Activity() []history.ActivitySample {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.step()
	h.advanceActivity(now)
	out := make([]history.ActivitySample, h.steps)
	for k := range out {
		s := now - int64(h.steps) + 1 + int64(k)
		out[k] = history.ActivitySample{At: s * h.res, Changes: h.activity[s%int64(h.steps)]}
	}
	return out
}
