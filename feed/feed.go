// Package feed fans the ingest writer's changes out to live watchers (the SSE stream,
// and later count topics and the web page) without ever slowing the writer: Publish
// never blocks, and a watcher that falls behind is cut off and must reconnect (it
// then starts again from a snapshot).
package feed

import (
	"slices"
	"sync"

	"github.com/arina-dev/arina/store"
)

// DefaultBuffer is how many change batches a watcher may fall behind before it is cut off.
const DefaultBuffer = 1024

// Hub distributes change batches to watchers. It is safe for concurrent use.
type Hub struct {
	buffer int
	mu     sync.RWMutex
	subs   map[*Watcher]struct{}
	closed bool
	done   chan struct{}
}

// Watcher receives change batches on C until Lagged or Done is closed.
type Watcher struct {
	C      <-chan []store.Change
	c      chan []store.Change
	lagged chan struct{}
	once   sync.Once
}

// Lagged is closed when the watcher fell behind and was cut off.
func (w *Watcher) Lagged() <-chan struct{} { return w.lagged }

// New returns a hub whose watchers may fall behind by buffer batches (0: DefaultBuffer).
func New(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Hub{buffer: buffer, subs: make(map[*Watcher]struct{}), done: make(chan struct{})}
}

// Done is closed when the hub is closed (the daemon is shutting down).
func (h *Hub) Done() <-chan struct{} { return h.done }

// Watch adds a watcher; call Unwatch when done with it.
func (h *Hub) Watch() *Watcher {
	c := make(chan []store.Change, h.buffer)
	w := &Watcher{C: c, c: c, lagged: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		w.cut()
		return w
	}
	h.subs[w] = struct{}{}
	return w
}

// Unwatch removes a watcher.
func (h *Hub) Unwatch(w *Watcher) {
	h.mu.Lock()
	delete(h.subs, w)
	h.mu.Unlock()
}

func (w *Watcher) cut() { w.once.Do(func() { close(w.lagged) }) }

// Publish hands a copy of changes to every watcher, without blocking: a watcher whose
// buffer is full is cut off. It is safe to call from any goroutine: the writer's, and
// the one receiving other nodes' changes.
func (h *Hub) Publish(changes []store.Change) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if len(h.subs) == 0 {
		return
	}
	batch := slices.Clone(changes) // shared, read-only, by every watcher
	for w := range h.subs {
		select {
		case w.c <- batch:
		default:
			w.cut()
		}
	}
}

// Close ends every watch; later watchers are cut off at once. Safe to call twice.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	close(h.done)
}
