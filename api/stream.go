package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/arina-dev/arina/store"
)

// Stream timing.
const (
	streamWriteTimeout = 10 * time.Second // a client that cannot take an event this long is cut off
	streamHeartbeat    = 15 * time.Second
	snapshotPage       = 1000
)

// snapshotEvent is one content's counts, sent first for every watched content.
type snapshotEvent struct {
	ContentID     string           `json:"content_id"`
	ReactionCount map[string]int64 `json:"reaction_count"`
}

// changeEvent is one applied change.
type changeEvent struct {
	store.Change
	Action string `json:"action"` // add, remove or expire
}

// stream serves GET /api/v1/stream: Server-Sent Events of count changes, optionally for
// the contents named by ?content= (repeatable). It starts with a "snapshot" event per
// content (every content when none is named), then a "ready" event, then "change"
// events. Watching starts before the snapshot, so nothing is missed in between (a
// change may show in both). With ?batch=1 the changes come as "changes" events, each a
// JSON array of what one writer batch changed. A client that falls behind gets an "error" event and is
// disconnected; it reconnects and starts again from a snapshot.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	if s.opts.Feed == nil {
		writeError(w, http.StatusNotFound, "not_found", "the change feed is not enabled")
		return
	}
	want := r.URL.Query()["content"]
	// ?batch=1: one "changes" event (a JSON array) per writer batch instead of one
	// "change" event per change: a browser keeps up with thousands a second this way.
	batched := r.URL.Query().Get("batch") == "1"
	filter := make(map[string]bool, len(want))
	for _, c := range want {
		filter[c] = true
	}
	watcher := s.opts.Feed.Watch()
	defer s.opts.Feed.Unwatch(watcher)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) bool {
		data, err := json.Marshal(v)
		if err != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	snapshot := func(id string) bool {
		counts, err := s.reader.Counts(r.Context(), id)
		if err != nil {
			return true // unknown (or unreadable) content: nothing to show yet
		}
		m := make(map[string]int64, len(counts))
		for _, c := range counts {
			m[c.ReactionType] = c.Count
		}
		return send("snapshot", snapshotEvent{ContentID: id, ReactionCount: m})
	}
	if len(want) > 0 {
		for _, id := range want {
			if !snapshot(id) {
				return
			}
		}
	} else {
		for after := ""; ; {
			ids, err := s.reader.Contents(r.Context(), "", after, snapshotPage)
			if err != nil {
				return
			}
			for _, id := range ids {
				if !snapshot(id) {
					return
				}
			}
			if len(ids) < snapshotPage {
				break
			}
			after = ids[len(ids)-1]
		}
	}
	if !send("ready", map[string]any{}) {
		return
	}
	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case batch := <-watcher.C:
			if batched {
				evs := make([]changeEvent, 0, len(batch))
				for _, c := range batch {
					if len(filter) == 0 || filter[c.ContentID] {
						evs = append(evs, changeEvent{Change: c, Action: c.Action.String()})
					}
				}
				if len(evs) > 0 && !send("changes", evs) {
					return
				}
				continue
			}
			for _, c := range batch {
				if len(filter) == 0 || filter[c.ContentID] {
					if !send("change", changeEvent{Change: c, Action: c.Action.String()}) {
						return
					}
				}
			}
		case <-watcher.Lagged():
			send("error", map[string]string{"code": "lagging", "message": "the stream fell behind; reconnect to start from a snapshot"})
			return
		case <-heartbeat.C:
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-s.opts.Feed.Done():
			return
		case <-r.Context().Done():
			return
		}
	}
}
