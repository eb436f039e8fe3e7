package ingest

import "sync"

// Drain hands values from goroutines that must not block (the writer calling an
// Ack's Done, a client library's message callback) to one goroutine that takes them
// in batches, in the order they were pushed. The MQTT acker and the bridge use it.
//
// It has no bound of its own: its users push only what something else bounds (the
// events in flight, which the writer's queue and the clients' windows limit), or
// check Len first.
type Drain[T any] struct {
	mu   sync.Mutex
	buf  []T // guarded by mu
	wake chan struct{}
}

// NewDrain returns an empty Drain.
func NewDrain[T any]() *Drain[T] { return &Drain[T]{wake: make(chan struct{}, 1)} }

// Push appends v and wakes the taker. It never blocks; any goroutine may call it.
func (d *Drain[T]) Push(v T) {
	d.mu.Lock()
	d.buf = append(d.buf, v)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default: // a wake-up is pending already: the taker will take v with the rest
	}
}

// Len returns how many values wait to be taken.
func (d *Drain[T]) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.buf)
}

// Wake receives once after one or more Pushes; the taker then calls Take.
func (d *Drain[T]) Wake() <-chan struct{} { return d.wake }

// Take returns everything pushed since the last Take, oldest first, and keeps spare's
// array (emptied) for the next pushes: a taker that passes back the batch it is done
// with, its elements cleared, allocates nothing once warm. Only the taker calls it.
func (d *Drain[T]) Take(spare []T) []T {
	d.mu.Lock()
	batch := d.buf
	d.buf = spare[:0]
	d.mu.Unlock()
	return batch
}
