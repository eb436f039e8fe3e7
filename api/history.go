package api

import (
	"errors"
	"net/http"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/store"
)

// historyResponse is GET /api/v1/contents/{content_id}/history: per reaction of the
// content, the count now, the count when the window began, and the steps within the
// window in which it changed (each with the count at the step's end). A reaction that
// did not change within the window has no samples, and its start count is its count.
type historyResponse struct {
	ContentID    string           `json:"content_id"`
	ResolutionMS int64            `json:"resolution_ms"`
	WindowMS     int64            `json:"window_ms"`
	Reactions    []history.Series `json:"reactions"`
}

// activityResponse is GET /api/v1/activity: the changes applied per step over the
// window, oldest first, the last step still running. Only events that changed a count
// are counted (a repeated add is not).
type activityResponse struct {
	ResolutionMS int64                    `json:"resolution_ms"`
	WindowMS     int64                    `json:"window_ms"`
	Total        uint64                   `json:"total"` // changes within the window
	Samples      []history.ActivitySample `json:"samples"`
}

func (s *Server) historyOff(w http.ResponseWriter) bool {
	if s.opts.History == nil {
		writeError(w, http.StatusNotFound, "not_found", "the history is not enabled (history.enabled)")
		return true
	}
	return false
}

func (s *Server) contentHistory(w http.ResponseWriter, r *http.Request) {
	if s.historyOff(w) {
		return
	}
	id := r.PathValue("content_id")
	// The store says which reactions the content has, the history how they moved.
	counts, err := s.reader.Counts(r.Context(), id)
	series := s.opts.History.Content(id)
	if errors.Is(err, store.ErrNotFound) && len(series) > 0 {
		err = nil // every member left meanwhile (or the store forgot an empty content)
	}
	if s.readFailed(w, id, err) {
		return
	}
	h := s.opts.History
	resp := historyResponse{ContentID: id, ResolutionMS: h.Resolution().Milliseconds(), WindowMS: h.Window().Milliseconds(),
		Reactions: make([]history.Series, 0, len(counts))}
	byType := make(map[string]history.Series, len(series))
	for _, se := range series {
		byType[se.ReactionType] = se
	}
	for _, c := range counts {
		se, ok := byType[c.ReactionType]
		if !ok {
			se = history.Series{ReactionType: c.ReactionType, Count: c.Count, StartCount: c.Count}
		}
		delete(byType, c.ReactionType)
		if se.Samples == nil {
			se.Samples = []history.Sample{}
		}
		resp.Reactions = append(resp.Reactions, se)
	}
	for _, se := range series { // changed within the window, absent from the store now
		if _, ok := byType[se.ReactionType]; ok {
			resp.Reactions = append(resp.Reactions, se)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) activity(w http.ResponseWriter, _ *http.Request) {
	if s.historyOff(w) {
		return
	}
	h := s.opts.History
	resp := activityResponse{ResolutionMS: h.Resolution().Milliseconds(), WindowMS: h.Window().Milliseconds(), Samples: h.Activity()}
	for _, a := range resp.Samples {
		resp.Total += a.Changes
	}
	writeJSON(w, http.StatusOK, resp)
}
