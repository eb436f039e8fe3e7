package loadgen

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// pipeline drives the QoS 1 window of one wire connection without a goroutine per
// in-flight publish: the connection's reader, on each PUBACK, completes that slot's
// publish and queues the slot's next one, and hands what it queued to the writer once
// it has handled everything it read. Per event that saves a goroutine wake-up, a park
// and two channel operations, which were most of the generator's CPU per event.
//
// It is used for QoS 1 publishers without HTTP probes (runner.pipelined); the worker
// goroutines do the rest. It draws the same events as the workers would: slot i has
// worker i's state and uses packet identifier i+1.
//
// Paced (Options.Rate), an acknowledged slot goes idle instead, and a pacer goroutine
// sends the idle slots' next publishes as the connection's share of the rate allows,
// every pacerTick: a ticker per connection rather than a limiter wait, with its timer,
// per event.
//
// Ownership: start prepares every slot before it publishes the pipeline to the reader
// (an atomic store); from then on only the reader touches the slots, and the pacer
// under mu, until the reader aborts them on leaving, or, if the connection failed
// before the reader could see the pipeline, until start aborts them after the reader
// has returned. Unpaced, mu is not taken.
type pipeline struct {
	r *runner
	p *publisher
	c *wireConn

	ws       []*worker
	t0       []time.Time
	measured []bool
	busy     []bool // a publish of the slot waits for its PUBACK
	active   int    // slots not retired
	buf      []byte // publishes queued since the last hand-over to the writer
	done     chan struct{}

	paced bool       // Options.Rate: the pacer sends, not the reader
	mu    sync.Mutex // paced only: held by the reader and the pacer around slot state
	idle  []int      // paced only: slots acknowledged and not yet sent again
}

// pacerTick is how often a paced pipeline sends what its share of the rate allows.
const pacerTick = 2 * time.Millisecond

// runPipeline publishes on c with window slots until every slot has retired (the run
// stopped, the budget is spent or the connection is lost).
func (c *wireConn) runPipeline(r *runner, p *publisher, pubIdx, window int) {
	pl := &pipeline{r: r, p: p, c: c, done: make(chan struct{}), paced: r.pubRate > 0}
	for j := range window {
		pl.ws = append(pl.ws, r.newWorker(pubIdx, j))
	}
	pl.t0 = make([]time.Time, window)
	pl.measured = make([]bool, window)
	pl.busy = make([]bool, window)
	for i := range window {
		switch {
		case pl.paced:
			pl.idle = append(pl.idle, i)
		case !pl.publishNext(i):
			r.retire(p, pl.ws[i])
			continue
		}
		pl.active++
	}
	if pl.active == 0 {
		return
	}
	// The first publishes go to the writer and the pipeline to the reader in one step:
	// no PUBACK can arrive before the reader can find the pipeline, and the reader
	// touches buf only once it has.
	c.mu.Lock()
	if !c.broken.Load() {
		c.pending = append(c.pending, pl.buf...)
	}
	pl.buf = pl.buf[:0]
	c.pipe.Store(pl)
	c.mu.Unlock()
	c.signal()
	if c.broken.Load() {
		// The reader may have left before it could see the pipeline.
		<-c.readerDone
		if pl.c.aborted.CompareAndSwap(false, true) {
			pl.abort()
		}
	}
	if pl.paced {
		pl.pace(r.pubRate)
	}
	<-pl.done
}

// pace sends idle slots' next publishes at perSec, in steps of pacerTick (or of one
// event's share of the second, if longer), until every
// slot has retired. A step's allowance does not carry over beyond two ticks, so that a
// broker slow to acknowledge is not then sent a burst.
func (pl *pipeline) pace(perSec float64) {
	// A connection with a small share (a fleet of thousands at a few events/s each)
	// ticks about once per event instead: a ticker firing every 2ms on each of 2000
	// connections took most of the generator's CPU.
	every := max(pacerTick, time.Duration(float64(time.Second)/perSec))
	// Each connection starts its steps at a random point of the first one: started
	// together, 2000 connections at 5 events/s each all sent every 200 ms at once, a
	// burst the broker queued (27 ms median ack latency even from one that only acks),
	// where a fleet of devices sends at moments of its own.
	select {
	case <-pl.done:
		return
	case <-time.After(rand.N(every)):
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	last, allowance := time.Now(), 1.0
	burst := max(1, perSec*(2*every).Seconds())
	for {
		select {
		case <-pl.done:
			return
		case now := <-tick.C:
			pl.mu.Lock()
			allowance = min(burst, allowance+perSec*now.Sub(last).Seconds())
			last = now
			for len(pl.idle) > 0 && (allowance >= 1 || pl.stopping()) {
				i := pl.idle[len(pl.idle)-1]
				pl.idle = pl.idle[:len(pl.idle)-1]
				if pl.publishNext(i) {
					allowance--
				} else {
					pl.retireSlot(i)
				}
			}
			pl.flush()
			pl.mu.Unlock()
		}
	}
}

// stopping reports whether the run or the connection has ended, so that idle slots
// retire without waiting for the pace.
func (pl *pipeline) stopping() bool {
	return pl.r.phase.Load() == phaseStopped || pl.c.lost()
}

// publishNext queues slot i's next publish, unless the worker would stop; it reports
// whether it did.
func (pl *pipeline) publishNext(i int) bool {
	measured, ok := pl.r.next(pl.p)
	if !ok {
		return false
	}
	w := pl.ws[i]
	topic := pl.r.event(w)
	t0 := pl.r.sending(pl.p, w, measured)
	id := uint16(i + 1)
	pl.c.sentAt[id].Store(t0.UnixNano())
	pl.buf = appendPublish(pl.buf, pl.c.protocol, 1, id, topic, w.payload)
	pl.busy[i] = true
	pl.t0[i], pl.measured[i] = t0, measured
	return true
}

// acked completes the publish waiting for PUBACK id (reader only) and queues the
// slot's next one, or, paced, leaves the slot to the pacer.
func (pl *pipeline) acked(id uint16, code byte, now time.Time) {
	if pl.paced {
		pl.mu.Lock()
		defer pl.mu.Unlock()
	}
	i := int(id) - 1
	if i < 0 || i >= len(pl.busy) || !pl.busy[i] {
		return // not one of ours, or a duplicate
	}
	pl.busy[i] = false
	pl.c.sentAt[id].Store(0)
	var kind string
	var err error
	if code >= 0x80 {
		kind, err = pubackKind(code), fmt.Errorf("PUBACK reason %#x", code)
	}
	pl.r.completed(pl.p, pl.ws[i], pl.measured[i], kind, err, pl.t0[i], now)
	switch {
	case pl.paced:
		pl.idle = append(pl.idle, i)
	case !pl.publishNext(i):
		pl.retireSlot(i)
	}
}

// retireSlot ends slot i, which waits for no PUBACK.
func (pl *pipeline) retireSlot(i int) {
	pl.r.retire(pl.p, pl.ws[i])
	pl.active--
	if pl.active == 0 {
		close(pl.done)
	}
}

// handOver gives the publishes the reader queued to the writer (reader only). Paced,
// the reader queues none: the pacer flushes its own.
func (pl *pipeline) handOver() {
	if !pl.paced {
		pl.flush()
	}
}

// flush gives the queued publishes to the writer.
func (pl *pipeline) flush() {
	if len(pl.buf) == 0 {
		return
	}
	c := pl.c
	c.mu.Lock()
	if !c.broken.Load() {
		c.pending = append(c.pending, pl.buf...)
	}
	c.mu.Unlock()
	c.signal()
	pl.buf = pl.buf[:0]
}

// abort ends every outstanding publish once the connection is gone: as ack_timeout if
// it waited that long (the watchdog ended the connection), else connection_lost.
// Idle slots (paced) retire with nothing to count.
func (pl *pipeline) abort() {
	if pl.paced {
		pl.mu.Lock()
		defer pl.mu.Unlock()
	}
	now := time.Now()
	for i, b := range pl.busy {
		if !b {
			continue
		}
		pl.busy[i] = false
		kind, err := KindConnectionLost, errConnectionLost
		if now.Sub(pl.t0[i]) >= pl.c.ackTimeout {
			kind, err = KindAckTimeout, errAckTimeout
		}
		pl.r.completed(pl.p, pl.ws[i], pl.measured[i], kind, err, pl.t0[i], now)
		pl.retireSlot(i)
	}
	for _, i := range pl.idle {
		pl.retireSlot(i)
	}
	pl.idle = nil
}
