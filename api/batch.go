package api

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// ndjsonType is the media type of a batch sent as one JSON object per line.
const ndjsonType = "application/x-ndjson"

// Statuses of the items of a batch.
const (
	statusApplied  = "applied"
	statusRejected = "rejected"
)

// batchResponse is the answer to POST /api/v1/reactions.
type batchResponse struct {
	Results  []itemResult `json:"results"`  // one per item, in request order
	Applied  int          `json:"applied"`  // items with status applied
	Rejected int          `json:"rejected"` // items with status rejected
}

// itemResult is the outcome of one item of a batch.
type itemResult struct {
	Index   int        `json:"index"`             // position among the items (NDJSON: among the non-blank lines)
	Status  string     `json:"status"`            // statusApplied or statusRejected
	Changed *bool      `json:"changed,omitempty"` // applied only: whether the set changed
	Count   *int64     `json:"count,omitempty"`   // applied only: users holding the reaction after the item
	Stale   bool       `json:"stale,omitempty"`   // applied only: superseded by a newer event (see ts)
	Error   *itemError `json:"error,omitempty"`   // rejected only
}

// itemError says why one item was not applied, with the codes of the single route.
type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// batchItem is one item of a batch on its way through the handler.
type batchItem struct {
	ev      ingest.Event
	invalid error   // why the item is not a valid event; it was never offered
	failed  error   // why the valid item was not applied: refused by the queue, or failed to apply
	ack     itemAck // the writer's answer, once offered
}

// batchWait tells the handler when the writer has answered for every accepted item.
type batchWait struct {
	pending atomic.Int64  // answers still due, plus one while items are being offered
	done    chan struct{} // closed when pending reaches zero
}

func (b *batchWait) release() {
	if b.pending.Add(-1) == 0 {
		close(b.done)
	}
}

// itemAck receives the outcome of one accepted item from the writer goroutine.
type itemAck struct {
	wait *batchWait // nil until the item was accepted
	res  store.Result
	err  error
}

// Done records the outcome; it never blocks.
func (a *itemAck) Done(res store.Result, err error) {
	a.res, a.err = res, err
	a.wait.release()
}

// notOfferedError refuses a valid item that follows a refused one: offering it could
// apply it before the one refused ahead of it.
type notOfferedError struct {
	first int   // index of the first refused item
	err   error // why that one was refused
}

func (e *notOfferedError) Error() string {
	return fmt.Sprintf("not offered: item %d was refused before it: %v", e.first, e.err)
}

func (e *notOfferedError) Unwrap() error { return e.err }

// postReactions applies a batch of seed-shaped events, sent as a JSON array or as
// NDJSON, and answers each item's outcome once every accepted item was applied.
//
// Invalid items are rejected alone and never applied. The valid ones are offered to
// the writer in order without waiting in between, so they share its batches and
// commits; once one is refused (overload, shutdown) the later ones are not offered,
// so what was applied is always a prefix of the valid items and a client can resend
// the rest as it is.
func (s *Server) postReactions(w http.ResponseWriter, r *http.Request) {
	raw, err := s.readBatch(w, r)
	if err != nil {
		he := err.(*httpError)
		s.ingest.Reject(ingest.SourceHTTP, ingest.Code(he.code))
		writeError(w, he.status, he.code, he.message)
		return
	}
	items := make([]batchItem, len(raw))
	valid := 0
	for i, b := range raw {
		it := &items[i]
		if it.ev, it.invalid = ingest.DecodeBatchItem(b, ingest.SourceHTTP); it.invalid != nil {
			s.ingest.Reject(ingest.SourceHTTP, ingest.CodeOf(it.invalid))
			continue
		}
		valid++
	}

	wait := &batchWait{done: make(chan struct{})}
	wait.pending.Store(1)
	var refused *notOfferedError
	for i := range items {
		it := &items[i]
		switch {
		case it.invalid != nil:
			continue
		case refused != nil:
			s.ingest.Reject(ingest.SourceHTTP, ingest.CodeOf(refused))
			it.failed = refused
			continue
		}
		it.ack.wait = wait
		wait.pending.Add(1)
		if err := s.ingest.Enqueue(r.Context(), it.ev, &it.ack); err != nil {
			it.ack.wait = nil
			wait.release() // never the last: the handler holds one count until the loop ends
			it.failed = err
			if errors.Is(err, ingest.ErrQueueFull) || errors.Is(err, ingest.ErrClosed) {
				refused = &notOfferedError{first: i, err: err}
			}
		}
	}
	wait.release()
	select {
	case <-wait.done:
	case <-r.Context().Done():
		// The client left or the server is closing; what was accepted is still applied.
		s.writeIngestError(w, r.Context().Err())
		return
	}

	resp := batchResponse{Results: make([]itemResult, len(items))}
	var firstErr, storeErr error // of the first valid item not applied; of the last apply failure
	storeErrs := 0
	for i := range items {
		it, res := &items[i], &resp.Results[i]
		res.Index = i
		if it.ack.wait != nil && it.ack.err != nil {
			it.failed, storeErr = it.ack.err, it.ack.err
			storeErrs++
		}
		switch {
		case it.invalid != nil:
			res.reject(it.invalid)
		case it.failed != nil:
			res.reject(it.failed)
			if firstErr == nil {
				firstErr = it.failed
			}
		default:
			changed, count := it.ack.res.Changed, it.ack.res.Count
			res.Status, res.Changed, res.Count, res.Stale = statusApplied, &changed, &count, it.ack.res.Stale
			resp.Applied++
			continue
		}
		resp.Rejected++
	}
	if valid > 0 && resp.Applied == 0 {
		// Nothing valid could be applied, for a reason a retry may cure (overload,
		// shutdown, store failure): answer like the single route, with Retry-After.
		s.writeIngestError(w, firstErr)
		return
	}
	if storeErrs > 0 {
		s.log.Error("applying http batch", "failed", storeErrs, "err", storeErr)
	}
	writeJSON(w, http.StatusOK, resp)
}

// reject marks the item rejected for err, with the codes of the single route.
func (res *itemResult) reject(err error) {
	res.Status = statusRejected
	e := &itemError{Code: string(ingest.CodeOf(err))}
	var ie *ingest.Error
	if errors.As(err, &ie) {
		e.Message, e.Field = ie.Error(), ie.Field
	} else {
		_, e.Message, _ = refusal(err)
	}
	var no *notOfferedError
	if errors.As(err, &no) {
		e.Message = fmt.Sprintf("not offered, as item %d was refused before it and items apply in order: %s", no.first, e.Message)
	}
	res.Error = e
}

// readBatch reads the body under the size limit and splits it into items: the elements
// of a JSON array, or the non-blank lines of NDJSON. Every error is an *httpError.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request) ([][]byte, error) {
	ndjson := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ndjson = err == nil && mt == ndjsonType
		isJSON := err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
		if !ndjson && !isJSON {
			return nil, &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("Content-Type %q is not JSON or NDJSON; send application/json (an array of events) or %s", ct, ndjsonType)}
		}
		if ndjson {
			// readBody takes only JSON media types; its size limit applies all the same.
			r = r.Clone(r.Context())
			r.Header.Del("Content-Type")
		}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return splitBatch(body, ndjson)
}

// splitBatch splits the body with ingest.SplitBatch, answering its errors as HTTP ones.
func splitBatch(body []byte, ndjson bool) ([][]byte, error) {
	items, err := ingest.SplitBatch(body, ndjson)
	if err != nil {
		status := http.StatusBadRequest
		if ingest.CodeOf(err) == ingest.CodeTooManyItems {
			status = http.StatusRequestEntityTooLarge
		}
		return nil, &httpError{status, string(ingest.CodeOf(err)), err.Error()}
	}
	return items, nil
}
