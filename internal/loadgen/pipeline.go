package loadgen

import (
	"fmt"
	"time"
)

// pipeline drives the QoS 1 window of one wire connection without a goroutine per
// in-flight publish: the connection's reader, on each PUBACK, completes that slot's
// publish and queues the slot's next one, and hands what it queued to the writer once
// it has handled everything it read. Per event that saves a goroutine wake-up, a park
// and two channel operations, which were most of the generator's CPU per event.
//
// It is used for unpaced QoS 1 publishers without HTTP probes (runner.pipelined); the
// worker goroutines do the rest. It draws the same events as the workers would: slot
// i has worker i's state and uses packet identifier i+1.
//
// Ownership: start prepares every slot before it publishes the pipeline to the reader
// (an atomic store); from then on only the reader touches the slots, until it aborts
// them on leaving, or, if the connection failed before the reader could see the
// pipeline, until start aborts them after the reader has returned.
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
}

// runPipeline publishes on c with window slots until every slot has retired (the run
// stopped, the budget is spent or the connection is lost).
func (c *wireConn) runPipeline(r *runner, p *publisher, pubIdx, window int) {
	pl := &pipeline{r: r, p: p, c: c, done: make(chan struct{})}
	for j := range window {
		pl.ws = append(pl.ws, r.newWorker(pubIdx, j))
	}
	pl.t0 = make([]time.Time, window)
	pl.measured = make([]bool, window)
	pl.busy = make([]bool, window)
	for i := range window {
		if !pl.publishNext(i) {
			r.retire(p, pl.ws[i])
		}
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
	<-pl.done
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
	if !pl.busy[i] {
		pl.busy[i] = true
		pl.active++
	}
	pl.t0[i], pl.measured[i] = t0, measured
	return true
}

// acked completes the publish waiting for PUBACK id (reader only) and queues the
// slot's next one.
func (pl *pipeline) acked(id uint16, code byte, now time.Time) {
	i := int(id) - 1
	if i < 0 || i >= len(pl.busy) || !pl.busy[i] {
		return // not one of ours, or a duplicate
	}
	pl.c.sentAt[id].Store(0)
	var kind string
	var err error
	if code >= 0x80 {
		kind, err = pubackKind(code), fmt.Errorf("PUBACK reason %#x", code)
	}
	pl.r.completed(pl.p, pl.ws[i], pl.measured[i], kind, err, pl.t0[i], now)
	if !pl.publishNext(i) {
		pl.retireSlot(i)
	}
}

func (pl *pipeline) retireSlot(i int) {
	pl.busy[i] = false
	pl.r.retire(pl.p, pl.ws[i])
	pl.active--
	if pl.active == 0 {
		close(pl.done)
	}
}

// handOver gives the queued publishes to the writer (reader only).
func (pl *pipeline) handOver() {
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
func (pl *pipeline) abort() {
	now := time.Now()
	for i, b := range pl.busy {
		if !b {
			continue
		}
		kind, err := KindConnectionLost, errConnectionLost
		if now.Sub(pl.t0[i]) >= pl.c.ackTimeout {
			kind, err = KindAckTimeout, errAckTimeout
		}
		pl.r.completed(pl.p, pl.ws[i], pl.measured[i], kind, err, pl.t0[i], now)
		pl.retireSlot(i)
	}
}
