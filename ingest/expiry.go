package ingest

import (
	"container/heap"
	"time"

	"github.com/arina-dev/arina/store"
)

// maxTTLCache bounds the writer's cache of TTL lookups by reaction type: reaction
// types come from the network, so the cache is cleared when it reaches this size.
const maxTTLCache = 4096

// expiry is one membership's scheduled check. The writer keeps at most one per
// membership with an expiry: one is pushed when a membership gets an expiry it did not
// have, and when a check finds the membership refreshed it is pushed again for the new
// time. So a refresh costs no timer work, and the heap holds at most one entry per
// expiring membership.
type expiry struct {
	at                int64 // unix ms
	content, reaction string
	user              string
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return e
}

// ttl returns the time to live of reactionType, 0 for none.
func (w *Writer) ttl(reactionType string) time.Duration {
	if w.opts.TTL == nil {
		return 0
	}
	if d, ok := w.ttls[reactionType]; ok {
		return d
	}
	if len(w.ttls) >= maxTTLCache {
		clear(w.ttls)
	}
	d := w.opts.TTL(reactionType)
	w.ttls[reactionType] = d
	return d
}

// stampExpiry sets the expiry of the adds in ops from their reaction's TTL.
func (w *Writer) stampExpiry(ops []store.Op, now int64) {
	if w.opts.TTL == nil {
		return
	}
	for i := range ops {
		if ops[i].Action == store.Add {
			if d := w.ttl(ops[i].ReactionType); d > 0 {
				ops[i].ExpiresAt = now + d.Milliseconds()
			}
		}
	}
}

// schedule pushes a check for every membership that gained an expiry in ops.
func (w *Writer) schedule(ops []store.Op, out []store.Result) {
	for i := range ops {
		if ops[i].Action == store.Add && out[i].Expiry != 0 && out[i].PrevExpiry == 0 {
			heap.Push(&w.expiries, expiry{at: out[i].Expiry, content: ops[i].ContentID, reaction: ops[i].ReactionType, user: ops[i].UserID})
		}
	}
}

// nextExpiry returns when the earliest scheduled check is due, and false if none is.
func (w *Writer) nextExpiry() (time.Time, bool) {
	if len(w.expiries) == 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(w.expiries[0].at), true
}

// expire applies, in batches, an Expire op for every check due at now. A membership
// refreshed since is left in place and checked again at its new expiry.
func (w *Writer) expire(now time.Time, ops []store.Op, out []store.Result) {
	ms := now.UnixMilli()
	for len(w.expiries) > 0 && w.expiries[0].at <= ms {
		n := 0
		for n < len(ops) && len(w.expiries) > 0 && w.expiries[0].at <= ms {
			e := heap.Pop(&w.expiries).(expiry)
			ops[n] = store.Op{ContentID: e.content, ReactionType: e.reaction, UserID: e.user, Action: store.Expire, ExpiresAt: ms}
			n++
		}
		if err := w.st.Apply(w.ctx, ops[:n], out[:n]); err != nil {
			// Nothing was applied: check again shortly.
			for i := range ops[:n] {
				heap.Push(&w.expiries, expiry{at: ms + 1000, content: ops[i].ContentID, reaction: ops[i].ReactionType, user: ops[i].UserID})
			}
			w.log.Error("applying expiries failed; retrying in 1s", "memberships", n, "err", err)
			clear(ops[:n])
			return
		}
		w.emit(ops[:n], out[:n], ms)
		for i := range ops[:n] {
			switch {
			case out[i].Changed:
				w.m.expired(ops[i].ReactionType).Inc()
				w.m.changed[store.Remove].Inc()
			case out[i].Expiry > ms: // refreshed meanwhile
				heap.Push(&w.expiries, expiry{at: out[i].Expiry, content: ops[i].ContentID, reaction: ops[i].ReactionType, user: ops[i].UserID})
			}
		}
		clear(ops[:n])
	}
}

// loadExpiries rebuilds the checks from the store and applies those already due (a
// membership that expired while arina was down). It runs before the writer goroutine
// starts, so it is still the only caller of Apply.
func (w *Writer) loadExpiries() {
	w.st.Expiring(func(c, r, u string, at int64) {
		w.expiries = append(w.expiries, expiry{at: at, content: c, reaction: r, user: u})
	})
	heap.Init(&w.expiries)
	if n := len(w.expiries); n > 0 {
		ops := make([]store.Op, w.opts.BatchSize)
		out := make([]store.Result, w.opts.BatchSize)
		w.expire(time.Now(), ops, out)
		w.log.Info("expiries loaded", "expired_while_stopped", n-len(w.expiries), "scheduled", len(w.expiries))
	}
}
