package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// FuzzHTTPRequest sends arbitrary requests to the real handler (memory store, real
// writer). The API never panics, never answers 500 to bad input, answers every error
// as JSON with a code, and a write it refused leaves the store as it was.
func FuzzHTTPRequest(f *testing.F) {
	for _, s := range []struct{ method, path, ct, body string }{
		{"POST", "/api/v1/reaction", "application/json", `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`},
		{"POST", "/api/v1/reaction", "application/json", `{"action":"remove","content_id":"Stew","user_id":"Sam","reaction_type":"fire","ts":12}`},
		{"POST", "/api/v1/reaction", "application/json", `{"action":"add","content_id":"a/b","user_id":"\u0000","reaction_type":"x"}`},
		{"POST", "/api/v1/reaction", "text/plain", `add sam`},
		{"POST", "/api/v1/reactions", "application/json", `[{"action":"add","content_id":"c","user_id":"u","reaction_type":"r"},{"action":"jump"}]`},
		{"POST", "/api/v1/reactions", "application/x-ndjson", "{\"action\":\"add\",\"content_id\":\"c\",\"user_id\":\"u\",\"reaction_type\":\"r\"}\nnot json\n"},
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", ""},
		{"GET", "/api/v1/contents?prefix=S&after=&limit=5", "", ""},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members?limit=0", "", ""},
		{"GET", "/api/v1/users/Sam/memberships", "", ""},
		{"DELETE", "/api/v1/reaction", "", ""},
		{"GET", "/api/v1/contents/%ff%fe/reactions/%00/members?after=%ff", "", ""},
	} {
		f.Add(s.method, s.path, s.ct, s.body)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mem := store.NewMemory()
	w, err := ingest.NewWriter(mem, ingest.Options{}, logger, nil)
	if err != nil {
		f.Fatal(err)
	}
	w.Start()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	reg := prometheus.NewRegistry()
	srv, err := api.New(api.Options{Gatherer: reg, Registerer: reg, Checks: []api.Check{{Name: "writer", OK: w.Running}}}, mem, w, logger)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	snapshot := func() []string {
		ids, _ := mem.Contents(context.Background(), "", "", 100000)
		var out []string
		for _, id := range ids {
			cs, _ := mem.Counts(context.Background(), id)
			for _, c := range cs {
				out = append(out, id+"\x00"+c.ReactionType+"\x00"+string(rune('0'+c.Count%10)))
			}
		}
		return out
	}
	f.Fuzz(func(t *testing.T, method, path, contentType, body string) {
		if path == "" || path[0] != '/' || strings.ContainsAny(path, " \r\n\t#") || !validMethod(method) {
			return // not a request net/http would hand to a handler
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return // net/http answers 400 before any handler runs
		}
		if strings.HasPrefix(path, "/api/v1/stream") || strings.HasPrefix(path, "/debug") {
			return // long-lived stream; profiler (off here)
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		before := snapshot()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		if res.StatusCode == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500: %s", method, path, body, rec.Body)
		}
		if res.StatusCode >= 400 && path != "/metrics" {
			var e struct {
				Errors map[string]any `json:"errors"`
				Error  struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || (e.Error.Code == "" && e.Errors == nil) {
				t.Fatalf("%s %s: %d with a body that is no JSON error: %q", method, path, res.StatusCode, rec.Body)
			}
			if method == http.MethodPost && !slices.Equal(before, snapshot()) {
				t.Fatalf("%s %s %q refused with %d, yet the store changed", method, path, body, res.StatusCode)
			}
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
