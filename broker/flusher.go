package broker

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mochi-mqtt/server/v2/packets"
)

// flusher writes the PUBACKs of plain TCP clients for every event the writer has
// applied, on one goroutine for all clients, instead of waking each client's acker.
//
// In a fleet of sensors each connection has one publish in flight, so the acker of
// every client was woken once per event (a futex wake, a goroutine switch, then the
// write). The writer completes many events of many clients at once; the flusher is
// woken once for all the events completed since its last round, and writes each
// client's PUBACKs in one non-blocking write: syscall.RawConn.Write with a function
// that does not wait for the socket to be writable.
//
// Order: per client, the flusher writes acks in the order the writer completed them,
// and it only writes while the client's acker has nothing to do (acker.busy). It hands
// the acker, in order, whatever it does not write itself: PUBACK bytes a full socket
// did not take (acker.carry), the messages to relay to subscribers (relaying can stall
// behind a slow QoS 1 subscriber: it never runs here), QoS 2 publishes, failed events
// and everything after them; from then on the client's completions go to its acker
// until the acker is idle again. The client's lock (which mochi's WritePacket holds
// while it writes a packet) is only tried: if it is held, the acks go to the acker.
//
// Small rounds run on the writer goroutine itself (ingest.AckBatcher): while the writer
// completes a batch, add does not wake the flusher goroutine, and when the batch is
// done, EndAcks writes the round then and there if it holds at most inlineRound
// publishes and no round is running, else wakes the goroutine. A paced fleet commits a
// few events at a time, and waking the goroutine for them was a thread wake-up, one of
// the few per commit that make most of arina's CPU per event beyond the floor's; large
// rounds (saturation) still go to the goroutine, so the writer is not held up by
// hundreds of writes while the other core is free. Rounds never overlap (roundMu), and
// take the completed publishes in order, so acks keep their order.
type flusher struct {
	startOnce sync.Once
	stopOnce  sync.Once
	h         *ingestHook
	mu        sync.Mutex
	list      []*pending // guarded by mu: completed, not yet taken by a round
	wake      chan struct{}
	done      chan struct{}
	started   atomic.Bool
	// deferWake is set while the writer completes a batch: add leaves the wake-up to
	// EndAcks.
	deferWake atomic.Bool

	// roundMu is held while a round runs, on the flusher goroutine or inline (EndAcks);
	// what follows, and every acker's fl, belong to its holder.
	roundMu sync.Mutex
	work    []*pending
	round   []*acker // the ackers of the current round

	// The non-blocking write of write, made without allocating: a closure capturing
	// its buffer and results escaped to the heap with them, three allocations per
	// write, so per event in a fleet of sensors. roundMu's holder (or a test) only.
	wfn  func(fd uintptr) bool // f.writeFD, bound on the first write
	wb   []byte
	wn   int
	werr error
}

// inlineRound is the most completed publishes a round run on the writer goroutine
// takes (EndAcks); a larger one goes to the flusher goroutine.
const inlineRound = 64

// flusherState is an acker's state during one round of the flusher.
type flusherState struct {
	seen   bool       // the acker is in the round
	hand   bool       // everything of the client in this round goes to its acker
	acks   []byte     // PUBACKs to write
	relays []*pending // their publishes
	tail   []*pending // for the acker, after acks
}

// start starts the flusher goroutine once; the first plain TCP client's acker calls it.
func (f *flusher) start(h *ingestHook) {
	f.startOnce.Do(func() {
		f.h = h
		f.wake = make(chan struct{}, 1)
		f.done = make(chan struct{})
		f.started.Store(true)
		h.ackerWG.Add(1)
		go f.run()
	})
}

func (f *flusher) stop() {
	f.startOnce.Do(func() {}) // not started: never starts
	f.stopOnce.Do(func() {
		if f.started.Load() {
			close(f.done)
		}
	})
}

// add is called for each completed publish of a plain TCP client, by the writer
// goroutine (or, for a batch topic publish, by whichever goroutine completes it last).
// It never blocks.
func (f *flusher) add(p *pending) {
	f.mu.Lock()
	f.list = append(f.list, p)
	first := len(f.list) == 1
	f.mu.Unlock()
	// With deferWake set, the writer's EndAcks comes after this: it takes the list
	// (this publish included) or wakes the goroutine.
	if first && !f.deferWake.Load() {
		f.signal()
	}
}

func (f *flusher) signal() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// BeginAcks implements ingest.AckBatcher: the writer is about to complete a batch.
func (f *flusher) BeginAcks() { f.deferWake.Store(true) }

// EndAcks implements ingest.AckBatcher: the writer has completed a batch. A small
// round runs here, on the writer goroutine; a large one, or one while a round runs,
// goes to the flusher goroutine.
func (f *flusher) EndAcks() {
	f.deferWake.Store(false)
	if !f.started.Load() {
		return // no plain TCP client yet: nothing was added
	}
	f.mu.Lock()
	n := len(f.list)
	f.mu.Unlock()
	if n == 0 {
		return
	}
	if n > inlineRound || !f.roundMu.TryLock() {
		f.signal()
		return
	}
	select {
	case <-f.done: // stopped: leave it, as the goroutine does
	default:
		f.runRound()
	}
	f.roundMu.Unlock()
}

func (f *flusher) run() {
	defer f.h.ackerWG.Done()
	for {
		select {
		case <-f.done:
			return
		case <-f.wake:
		}
		f.roundMu.Lock()
		f.runRound()
		f.roundMu.Unlock()
	}
}

// runRound takes the completed publishes and flushes them; the caller holds roundMu.
func (f *flusher) runRound() {
	f.mu.Lock()
	f.work, f.list = f.list, f.work[:0]
	f.mu.Unlock()
	if len(f.work) > 0 {
		f.flush(f.work)
		clear(f.work)
	}
}

// flush writes the PUBACKs of one round, client by client, and hands the acker of each
// client what it does not write.
func (f *flusher) flush(work []*pending) {
	for _, p := range work {
		a := p.a
		st := &a.fl
		if !st.seen {
			st.seen = true
			f.round = append(f.round, a)
			a.mu.Lock()
			st.hand = a.busy
			a.mu.Unlock()
		}
		if !st.hand && p.err == nil && p.qos == 1 {
			// PUBACK, reason 0x00 and no properties: the 2-byte form, the same in 3.1.1 and 5.
			st.acks = append(st.acks, packets.Puback<<4, 2, byte(p.id>>8), byte(p.id))
			st.relays = append(st.relays, p)
			continue
		}
		st.hand = true
		st.tail = append(st.tail, p)
	}
	for i, a := range f.round {
		f.finish(a)
		f.round[i] = nil
	}
	f.round = f.round[:0]
}

// finish writes what the round gathered for a's client and hands the rest to a.
func (f *flusher) finish(a *acker) {
	st := &a.fl
	n := 0
	if len(st.acks) > 0 {
		n = f.write(a, st.acks)
	}
	// The messages of the acks written that are to be relayed (their pending kept the
	// packet) go to the acker: relaying may block.
	relays := st.relays
	if n == len(st.acks) {
		keep := relays[:0]
		for _, p := range relays {
			if p.pk != nil {
				keep = append(keep, p)
				continue
			}
			a.release(p)
		}
		clear(relays[len(keep):])
		relays = keep
	}
	if n < len(st.acks) || len(relays) > 0 || len(st.tail) > 0 {
		a.mu.Lock()
		a.carry = append(a.carry, st.acks[n:]...)
		a.carryRelays = append(a.carryRelays, relays...)
		a.queue = append(a.queue, st.tail...)
		a.busy = true
		a.mu.Unlock()
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
	clear(st.relays)
	clear(st.tail)
	*st = flusherState{acks: st.acks[:0], relays: st.relays[:0], tail: st.tail[:0]}
}

// write writes b to a's socket without waiting and returns how much was written: all
// of it, or less when the socket's buffer is full or the client's lock is held (the
// rest is then the acker's). A broken connection counts as written: nothing can reach
// it, and the client resends what it has no ack for.
func (f *flusher) write(a *acker, b []byte) int {
	cl := a.cl
	if !cl.TryLock() { // mochi is writing a packet: do not wait for it
		return 0
	}
	if f.wfn == nil {
		f.wfn = f.writeFD
	}
	f.wb, f.wn, f.werr = b, 0, nil
	err := a.raw.Write(f.wfn)
	cl.Unlock()
	n, werr := f.wn, f.werr
	f.wb, f.werr = nil, nil
	if n < 0 {
		n = 0
	}
	if n > 0 {
		info := f.h.server.Info
		atomic.AddInt64(&info.BytesSent, int64(n))
		atomic.AddInt64(&info.PacketsSent, int64(n/4))
	}
	switch {
	case err == nil && (werr == nil || errors.Is(werr, syscall.EAGAIN) || errors.Is(werr, syscall.EINTR)):
		return n // the rest, if any, waits for room in the acker
	default:
		if err == nil {
			err = werr
		}
		f.h.log.Debug("writing pubacks", "client_id", cl.ID, "err", err)
		return len(b)
	}
}

// writeFD is the function write hands syscall.RawConn.Write: one write of f.wb, done
// whatever happened, never waiting for the socket.
func (f *flusher) writeFD(fd uintptr) bool {
	f.wn, f.werr = syscall.Write(int(fd), f.wb)
	return true
}
