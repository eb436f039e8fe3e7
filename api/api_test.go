package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// seedJSON is the seed service's request body, byte for byte.
const seedJSON = `{"type":"reaction","action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`

// harness is the real API in front of a started writer and a memory store, served by
// an httptest server. MustStart registers its shutdown with Cleanup.
type harness struct {
	mem *store.Memory
	w   *ingest.Writer
	reg *prometheus.Registry
	ts  *httptest.Server
}

type harnessOptions struct {
	ingest ingest.Options
	wrap   func(store.Store) store.Store // wraps the memory store for the writer and the API; nil: none
	checks []api.Check                   // nil: one check, "writer", on Writer.Running
	// history, if set, feeds the writer's changes through a feed.Hub to a History
	// with these options, served by the history routes (history_test.go).
	history *history.Options
}

// MustStart builds store → writer → api.Server and serves its Handler.
func MustStart(tb testing.TB, o harnessOptions) *harness {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := &harness{mem: store.NewMemory(), reg: prometheus.NewRegistry()}
	tb.Cleanup(func() {
		if err := h.mem.Close(); err != nil {
			tb.Errorf("closing store: %v", err)
		}
	})
	var st store.Store = h.mem
	if o.wrap != nil {
		st = o.wrap(h.mem)
	}
	var apiOpts api.Options
	if o.history != nil {
		apiOpts.Feed, apiOpts.History = mustHistory(tb, &o.ingest, *o.history)
	}
	w, err := ingest.NewWriter(st, o.ingest, logger, h.reg)
	if err != nil {
		tb.Fatalf("NewWriter: %v", err)
	}
	h.w = w
	w.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			tb.Errorf("closing writer: %v", err)
		}
	})
	checks := o.checks
	if checks == nil {
		checks = []api.Check{{Name: "writer", OK: w.Running}}
	}
	apiOpts.Gatherer, apiOpts.Registerer, apiOpts.Checks = h.reg, h.reg, checks
	srv, err := api.New(apiOpts, st, w, logger)
	if err != nil {
		tb.Fatalf("api.New: %v", err)
	}
	h.ts = httptest.NewServer(srv.Handler())
	tb.Cleanup(h.ts.Close) // runs first: no request is in flight when the writer closes
	return h
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// reply is a whole HTTP response.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request; path is already escaped. It does not touch tb, so goroutines
// may call it.
func (h *harness) send(method, path, contentType, body string) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("reading %s %s response: %w", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (h *harness) do(tb testing.TB, method, path, contentType, body string) reply {
	tb.Helper()
	r, err := h.send(method, path, contentType, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// reactionReply is the body of a 201 to POST /api/v1/reaction.
type reactionReply struct {
	Type         string `json:"type"`
	Action       string `json:"action"`
	ContentID    string `json:"content_id"`
	ReactionType string `json:"reaction_type"`
	UserID       string `json:"user_id"`
	Changed      bool   `json:"changed"`
	Count        int64  `json:"count"`
}

func decodeReaction(r reply) (reactionReply, error) {
	var rr reactionReply
	if r.status != http.StatusCreated {
		return rr, fmt.Errorf("status = %d, want 201; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return rr, fmt.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := strictDecode(r.body, &rr); err != nil {
		return rr, err
	}
	return rr, nil
}

// mustPost posts one event in the seed's shape and requires a 201.
func (h *harness) mustPost(tb testing.TB, action, content, reaction, user string) reactionReply {
	tb.Helper()
	r := h.do(tb, http.MethodPost, "/api/v1/reaction", "application/json", eventJSON(action, content, reaction, user))
	rr, err := decodeReaction(r)
	if err != nil {
		tb.Fatalf("POST %s %s/%s/%s: %v", action, content, reaction, user, err)
	}
	return rr
}

// storeCounts reads counts straight from the store; nil for a content never seen.
func (h *harness) storeCounts(tb testing.TB, content string) map[string]int64 {
	tb.Helper()
	return storetest.CountsMap(tb, h.mem, content)
}

// metric sums the series of the named metric whose labels include all of labels
// (pairs of name, value).
func (h *harness) metric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		tb.Fatalf("gathering metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// eventJSON is a seed-shaped body.
func eventJSON(action, content, reaction, user string) string {
	return mustJSON(map[string]any{"type": "reaction", "action": action, "content_id": content, "reaction_type": reaction, "user_id": user})
}

type omitField struct{}

// omitted, as a value in annWith, deletes the field.
var omitted omitField

// annWith is the seed body adding Ann's fire on Stew, with fields replaced (pairs of
// name, value) or deleted (value omitted).
func annWith(kv ...any) string {
	m := map[string]any{"type": "reaction", "action": "add", "content_id": "Stew", "reaction_type": "fire", "user_id": "Ann"}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == omitted {
			delete(m, k)
		} else {
			m[k] = kv[i+1]
		}
	}
	return mustJSON(m)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// padTo pads a JSON body with trailing spaces to exactly n bytes.
func padTo(body string, n int) string {
	return body + strings.Repeat(" ", n-len(body))
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", b, err)
	}
	if dec.More() {
		return fmt.Errorf("decoding %s: data after the JSON value", b)
	}
	return nil
}

// apiError is the one JSON error shape: {"error":{"code":...,"message":...}}, with an
// optional field.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// checkError checks status, media type and the exact JSON error shape, and returns it.
func checkError(tb testing.TB, r reply, wantStatus int, wantCode string) apiError {
	tb.Helper()
	var e apiError
	if r.status != wantStatus {
		tb.Errorf("status = %d, want %d; body %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := strictDecode(r.body, &e); err != nil {
		tb.Fatalf("error body is not {\"error\":{...}}: %v", err)
	}
	if e.Error.Code != wantCode {
		tb.Errorf("error code = %q, want %q (message %q)", e.Error.Code, wantCode, e.Error.Message)
	}
	if e.Error.Message == "" {
		tb.Errorf("error message is empty; body %s", r.body)
	}
	return e
}

// checkJSON requires body to be JSON equal to want: same keys, same values, same order
// of array elements, nothing more.
func checkJSON(tb testing.TB, body []byte, want string) {
	tb.Helper()
	parse := func(b []byte) (any, error) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	}
	got, err := parse(body)
	if err != nil {
		tb.Fatalf("body %s is not JSON: %v", body, err)
	}
	w, err := parse([]byte(want))
	if err != nil {
		tb.Fatalf("want %s is not JSON: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		tb.Errorf("body = %s, want %s", bytes.TrimSpace(body), want)
	}
}

// checkRetryAfter requires a Retry-After of a positive number of seconds.
func checkRetryAfter(tb testing.TB, r reply) {
	tb.Helper()
	ra := r.header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
		tb.Errorf("Retry-After = %q, want a positive number of seconds", ra)
	}
}

func TestServer_PostReaction(t *testing.T) {
	t.Parallel()
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name        string
		setup       []string // bodies posted (and required to succeed) first
		contentType string
		body        string
		want        reactionReply
		wantCounts  map[string]map[string]int64 // content → counts in the store afterwards; nil map: unknown content
	}{
		{
			name:        "SeedAdd",
			contentType: "application/json",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "DuplicateAdd",
			setup:       []string{seedJSON},
			contentType: "application/json",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", false, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "SecondUser",
			setup:       []string{seedJSON},
			contentType: "application/json",
			body:        annWith(),
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Ann", true, 2},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 2}},
		},
		{
			name:        "Remove",
			setup:       []string{seedJSON},
			contentType: "application/json",
			body:        eventJSON("remove", "Stew", "fire", "Sam"),
			want:        reactionReply{"reaction", "remove", "Stew", "fire", "Sam", true, 0},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 0}},
		},
		{
			name:        "RemoveAbsentUser",
			setup:       []string{seedJSON},
			contentType: "application/json",
			body:        eventJSON("remove", "Stew", "fire", "Ann"),
			want:        reactionReply{"reaction", "remove", "Stew", "fire", "Ann", false, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "RemoveBeforeAddLeavesNothing",
			contentType: "application/json",
			body:        eventJSON("remove", "Ghost", "fire", "Sam"),
			want:        reactionReply{"reaction", "remove", "Ghost", "fire", "Sam", false, 0},
			wantCounts:  map[string]map[string]int64{"Ghost": nil},
		},
		{
			name:        "TypeOmitted",
			contentType: "application/json",
			body:        `{"action":"add","content_id":"Stew","user_id":"Sam","reaction_type":"fire"}`,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "TSAndEventID",
			contentType: "application/json",
			body:        annWith("ts", time.Now().UnixMilli(), "event_id", "e-1"),
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Ann", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "ContentTypeWithCharset",
			contentType: "application/json; charset=utf-8",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "ContentTypeMixedCase",
			contentType: "Application/JSON",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "ContentTypeJSONSuffix",
			contentType: "application/vnd.arina+json",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "NoContentType",
			contentType: "",
			body:        seedJSON,
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
		{
			name:        "UTF8IDs",
			contentType: "application/json",
			body:        eventJSON("add", "Crème brûlée", "🔥", "Zoë"),
			want:        reactionReply{"reaction", "add", "Crème brûlée", "🔥", "Zoë", true, 1},
			wantCounts:  map[string]map[string]int64{"Crème brûlée": {"🔥": 1}},
		},
		{
			name:        "LongestIDs",
			contentType: "application/json",
			body:        eventJSON("add", long(ingest.MaxIDLen), long(ingest.MaxReactionLen), long(ingest.MaxIDLen)),
			want:        reactionReply{"reaction", "add", long(ingest.MaxIDLen), long(ingest.MaxReactionLen), long(ingest.MaxIDLen), true, 1},
			wantCounts:  map[string]map[string]int64{long(ingest.MaxIDLen): {long(ingest.MaxReactionLen): 1}},
		},
		{
			name:        "BodyAtLimit",
			contentType: "application/json",
			body:        padTo(seedJSON, api.DefaultMaxBodyBytes),
			want:        reactionReply{"reaction", "add", "Stew", "fire", "Sam", true, 1},
			wantCounts:  map[string]map[string]int64{"Stew": {"fire": 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustStart(t, harnessOptions{})
			for _, b := range tt.setup {
				if _, err := decodeReaction(h.do(t, http.MethodPost, "/api/v1/reaction", "application/json", b)); err != nil {
					t.Fatalf("setup POST %s: %v", b, err)
				}
			}
			got, err := decodeReaction(h.do(t, http.MethodPost, "/api/v1/reaction", tt.contentType, tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("reply = %+v, want %+v", got, tt.want)
			}
			for content, want := range tt.wantCounts {
				if got := h.storeCounts(t, content); !maps.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("store counts of %q = %v, want %v", content, got, want)
				}
			}
			n := float64(len(tt.setup) + 1)
			if got := h.metric(t, "arina_events_applied_total", "source", "http"); got != n {
				t.Errorf("arina_events_applied_total{source=http} = %v, want %v", got, n)
			}
			if got := h.metric(t, "arina_events_rejected_total"); got != 0 {
				t.Errorf("arina_events_rejected_total = %v, want 0", got)
			}
		})
	}
}

// TestServer_PostReaction_Rejected: every rejected write answers the JSON error with its
// stable code, changes no count, and is counted by reason.
func TestServer_PostReaction_Rejected(t *testing.T) {
	t.Parallel()
	const ct = "application/json"
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
		wantField   string // "" when the error names no field
	}{
		{name: "MalformedJSON", contentType: ct, body: `{"type":"reaction","action":`, wantStatus: 400, wantCode: "bad_json"},
		{name: "NotJSON", contentType: ct, body: `add Ann`, wantStatus: 400, wantCode: "bad_json"},
		{name: "EmptyBody", contentType: ct, body: ``, wantStatus: 400, wantCode: "bad_json"},
		{name: "JSONArray", contentType: ct, body: `[` + annWith() + `]`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TwoObjects", contentType: ct, body: annWith() + annWith(), wantStatus: 400, wantCode: "bad_json"},
		{name: "TrailingBrace", contentType: ct, body: annWith() + `}`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TrailingBracket", contentType: ct, body: annWith() + ` ]`, wantStatus: 400, wantCode: "bad_json"},
		// A wrong JSON type names the field.
		{name: "UserIDNumber", contentType: ct, body: annWith("user_id", 42), wantStatus: 400, wantCode: "invalid_field", wantField: "user_id"},
		{name: "ActionBool", contentType: ct, body: annWith("action", true), wantStatus: 400, wantCode: "invalid_field", wantField: "action"},
		{name: "TSString", contentType: ct, body: annWith("ts", "yesterday"), wantStatus: 400, wantCode: "invalid_field", wantField: "ts"},
		{name: "LoneSurrogate", contentType: ct, body: `{"action":"add","content_id":"Stew","reaction_type":"fire","user_id":"Ann\ud800"}`, wantStatus: 400, wantCode: "invalid_id", wantField: "user_id"},
		{name: "MissingUserID", contentType: ct, body: annWith("user_id", omitted), wantStatus: 400, wantCode: "missing_field", wantField: "user_id"},
		{name: "MissingContentID", contentType: ct, body: annWith("content_id", omitted), wantStatus: 400, wantCode: "missing_field", wantField: "content_id"},
		{name: "MissingReactionType", contentType: ct, body: annWith("reaction_type", omitted), wantStatus: 400, wantCode: "missing_field", wantField: "reaction_type"},
		{name: "MissingAction", contentType: ct, body: annWith("action", omitted), wantStatus: 400, wantCode: "missing_field", wantField: "action"},
		{name: "EmptyUserID", contentType: ct, body: annWith("user_id", ""), wantStatus: 400, wantCode: "missing_field", wantField: "user_id"},
		{name: "NullUserID", contentType: ct, body: annWith("user_id", nil), wantStatus: 400, wantCode: "missing_field", wantField: "user_id"},
		// The old service treated any action but remove as add.
		{name: "ActionLike", contentType: ct, body: annWith("action", "like"), wantStatus: 400, wantCode: "invalid_action", wantField: "action"},
		{name: "ActionUpperCase", contentType: ct, body: annWith("action", "ADD"), wantStatus: 400, wantCode: "invalid_action", wantField: "action"},
		{name: "ActionEmpty", contentType: ct, body: annWith("action", ""), wantStatus: 400, wantCode: "invalid_action", wantField: "action"},
		{name: "ContentIDSlash", contentType: ct, body: annWith("content_id", "Stew/1"), wantStatus: 400, wantCode: "invalid_id", wantField: "content_id"},
		{name: "ReactionTypePlus", contentType: ct, body: annWith("reaction_type", "fi+re"), wantStatus: 400, wantCode: "invalid_id", wantField: "reaction_type"},
		{name: "UserIDHash", contentType: ct, body: annWith("user_id", "Ann#2"), wantStatus: 400, wantCode: "invalid_id", wantField: "user_id"},
		{name: "UserIDNUL", contentType: ct, body: annWith("user_id", "Ann\x00"), wantStatus: 400, wantCode: "invalid_id", wantField: "user_id"},
		{name: "UserIDNewline", contentType: ct, body: annWith("user_id", "Ann\n"), wantStatus: 400, wantCode: "invalid_id", wantField: "user_id"},
		{name: "ContentIDDEL", contentType: ct, body: annWith("content_id", "Stew\x7f"), wantStatus: 400, wantCode: "invalid_id", wantField: "content_id"},
		{name: "ReactionTypeC1Control", contentType: ct, body: annWith("reaction_type", "fire\u0085"), wantStatus: 400, wantCode: "invalid_id", wantField: "reaction_type"},
		{name: "ContentIDTooLong", contentType: ct, body: annWith("content_id", strings.Repeat("s", ingest.MaxIDLen+1)), wantStatus: 400, wantCode: "invalid_id", wantField: "content_id"},
		{name: "ContentIDTooLongMultibyte", contentType: ct, body: annWith("content_id", strings.Repeat("é", ingest.MaxIDLen/2)+"s"), wantStatus: 400, wantCode: "invalid_id", wantField: "content_id"},
		{name: "UserIDTooLong", contentType: ct, body: annWith("user_id", strings.Repeat("u", ingest.MaxIDLen+1)), wantStatus: 400, wantCode: "invalid_id", wantField: "user_id"},
		{name: "ReactionTypeTooLong", contentType: ct, body: annWith("reaction_type", strings.Repeat("r", ingest.MaxReactionLen+1)), wantStatus: 400, wantCode: "invalid_id", wantField: "reaction_type"},
		{name: "InvalidUTF8", contentType: ct, body: `{"action":"add","content_id":"Stew","reaction_type":"fire","user_id":"Ann` + "\xff" + `"}`, wantStatus: 400, wantCode: "bad_json"},
		{name: "TypeNotReaction", contentType: ct, body: annWith("type", "comment"), wantStatus: 400, wantCode: "invalid_field", wantField: "type"},
		{name: "NegativeTS", contentType: ct, body: annWith("ts", -1), wantStatus: 400, wantCode: "invalid_field", wantField: "ts"},
		{name: "EventIDTooLong", contentType: ct, body: annWith("event_id", strings.Repeat("e", ingest.MaxIDLen+1)), wantStatus: 400, wantCode: "invalid_field", wantField: "event_id"},
		{name: "TextPlain", contentType: "text/plain", body: annWith(), wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "FormURLEncoded", contentType: "application/x-www-form-urlencoded", body: "type=reaction&action=add&content_id=Stew&user_id=Ann&reaction_type=fire", wantStatus: 415, wantCode: "unsupported_media_type"},
		{name: "BodyOneOverLimit", contentType: ct, body: padTo(annWith(), api.DefaultMaxBodyBytes+1), wantStatus: 413, wantCode: "payload_too_large"},
		{name: "BodyFarOverLimit", contentType: ct, body: padTo(annWith(), 4*api.DefaultMaxBodyBytes), wantStatus: 413, wantCode: "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustStart(t, harnessOptions{})
			h.mustPost(t, "add", "Stew", "fire", "Sam")
			received := h.metric(t, "arina_events_received_total", "source", "http")

			r := h.do(t, http.MethodPost, "/api/v1/reaction", tt.contentType, tt.body)
			e := checkError(t, r, tt.wantStatus, tt.wantCode)
			if e.Error.Field != tt.wantField {
				t.Errorf("error field = %q, want %q", e.Error.Field, tt.wantField)
			}

			// A rejected request changes no count: Ann's fire on Stew (or wherever the bad
			// id would have put it) was not applied.
			if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 1}; !maps.Equal(got, want) {
				t.Errorf("store counts of Stew = %v, want %v", got, want)
			}
			if got := h.metric(t, "arina_events_applied_total"); got != 1 {
				t.Errorf("arina_events_applied_total = %v, want 1 (the setup event only)", got)
			}
			if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", tt.wantCode); got != 1 {
				t.Errorf("arina_events_rejected_total{source=http,reason=%s} = %v, want 1", tt.wantCode, got)
			}
			if got := h.metric(t, "arina_events_rejected_total"); got != 1 {
				t.Errorf("arina_events_rejected_total (all reasons) = %v, want 1", got)
			}
			if got := h.metric(t, "arina_events_received_total", "source", "http"); got != received+1 {
				t.Errorf("arina_events_received_total{source=http} = %v, want %v", got, received+1)
			}
		})
	}
}

// TestServer_Routes: a known path with the wrong method is a JSON 405 with Allow; an
// unknown path is a JSON 404. Neither is an event.
func TestServer_Routes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
		wantAllow  string
		wantRoute  string // route label of arina_http_requests_total
	}{
		{name: "GetOnPostRoute", method: "GET", path: "/api/v1/reaction", wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "POST", wantRoute: "/api/v1/reaction"},
		{name: "PutOnPostRoute", method: "PUT", path: "/api/v1/reaction", body: annWith(), wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "POST", wantRoute: "/api/v1/reaction"},
		{name: "DeleteOnPostRoute", method: "DELETE", path: "/api/v1/reaction", wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "POST", wantRoute: "/api/v1/reaction"},
		{name: "PostOnSeedCounts", method: "POST", path: "/api/v1/reaction/reaction_counts/Stew", body: annWith(), wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/api/v1/reaction/reaction_counts/{content_id}"},
		{name: "PostOnSeedReadmeCounts", method: "POST", path: "/reaction/reactions_count/Stew", body: annWith(), wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/reaction/reactions_count/{content_id}"},
		{name: "PostOnContents", method: "POST", path: "/api/v1/contents/Stew", body: annWith(), wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/api/v1/contents/{content_id}"},
		{name: "PostOnHealthz", method: "POST", path: "/healthz", wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/healthz"},
		{name: "DeleteOnMetrics", method: "DELETE", path: "/metrics", wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/metrics"},
		{name: "UnknownRoute", method: "GET", path: "/api/v1/nope", wantStatus: 404, wantCode: "not_found", wantRoute: "unmatched"},
		{name: "RootPost", method: "POST", path: "/", wantStatus: 405, wantCode: "method_not_allowed", wantAllow: "GET, HEAD", wantRoute: "/{$}"},
		{name: "PostToMisspelledRoute", method: "POST", path: "/api/v1/reactons", body: annWith(), wantStatus: 404, wantCode: "not_found", wantRoute: "unmatched"},
		{name: "TrailingSlash", method: "POST", path: "/api/v1/reaction/", body: annWith(), wantStatus: 404, wantCode: "not_found", wantRoute: "unmatched"},
		{name: "CountsWithoutID", method: "GET", path: "/api/v1/reaction/reaction_counts/", wantStatus: 404, wantCode: "not_found", wantRoute: "unmatched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := MustStart(t, harnessOptions{})
			h.mustPost(t, "add", "Stew", "fire", "Sam")
			ct := ""
			if tt.body != "" {
				ct = "application/json"
			}
			r := h.do(t, tt.method, tt.path, ct, tt.body)
			checkError(t, r, tt.wantStatus, tt.wantCode)
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 1}; !maps.Equal(got, want) {
				t.Errorf("store counts of Stew = %v, want %v", got, want)
			}
			if got := h.metric(t, "arina_events_received_total"); got != 1 {
				t.Errorf("arina_events_received_total = %v, want 1 (the setup event only)", got)
			}
			if got := h.metric(t, "arina_events_rejected_total"); got != 0 {
				t.Errorf("arina_events_rejected_total = %v, want 0", got)
			}
			code := strconv.Itoa(tt.wantStatus)
			if got := h.metric(t, "arina_http_requests_total", "route", tt.wantRoute, "code", code); got != 1 {
				t.Errorf("arina_http_requests_total{route=%q,code=%s} = %v, want 1", tt.wantRoute, code, got)
			}
		})
	}
}

// blockingStore holds every Apply until Release.
type blockingStore struct {
	store.Store
	entered chan struct{} // gets a value (if empty) each time Apply starts waiting
	release chan struct{}
	once    sync.Once
}

func newBlockingStore() *blockingStore {
	return &blockingStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (b *blockingStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	return b.Store.Apply(ctx, ops, out)
}

// Release lets every Apply through, now and later.
func (b *blockingStore) Release() { b.once.Do(func() { close(b.release) }) }

// MustStartBlocked starts a harness whose writer has a one-slot queue, the given
// enqueue timeout, and a store that blocks in Apply until released (at cleanup at
// the latest).
func MustStartBlocked(t *testing.T, enqueueTimeout time.Duration) (*harness, *blockingStore) {
	t.Helper()
	bs := newBlockingStore()
	h := MustStart(t, harnessOptions{
		ingest: ingest.Options{QueueSize: 1, EnqueueTimeout: enqueueTimeout},
		wrap:   func(s store.Store) store.Store { bs.Store = s; return bs },
	})
	t.Cleanup(bs.Release) // registered last, so it runs before the server and writer close
	return h, bs
}

// asyncReply is the outcome of a request sent with sendAsync.
type asyncReply struct {
	r   reply
	err error
}

// sendAsync POSTs body to path in its own goroutine and delivers the outcome.
func (h *harness) sendAsync(path, contentType, body string) <-chan asyncReply {
	ch := make(chan asyncReply, 1)
	go func() {
		r, err := h.send(http.MethodPost, path, contentType, body)
		ch <- asyncReply{r, err}
	}()
	return ch
}

// MustBlockInApply waits until the writer has taken the first request's event and
// blocks in Apply, failing if the request is answered first.
func MustBlockInApply(t *testing.T, bs *blockingStore, first <-chan asyncReply) {
	t.Helper()
	select {
	case <-bs.entered:
	case res := <-first:
		t.Fatalf("the first request was answered before the writer applied it: %+v", res)
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never called Apply")
	}
}

func TestServer_PostReaction_Overload(t *testing.T) {
	t.Parallel()
	const enqueueTimeout = 50 * time.Millisecond
	h, bs := MustStartBlocked(t, enqueueTimeout)
	postAsync := func(user string) <-chan asyncReply {
		return h.sendAsync("/api/v1/reaction", "application/json", eventJSON("add", "Stew", "fire", user))
	}

	// A is taken by the writer, which then blocks in Apply; B fills the one-slot queue.
	a := postAsync("A")
	MustBlockInApply(t, bs, a)
	b := postAsync("B")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := h.w.QueueLen(); n != 1 {
			return fmt.Errorf("queue length = %d, want 1", n)
		}
		return nil
	})

	// C finds no room within the enqueue timeout.
	start := time.Now()
	r := h.do(t, http.MethodPost, "/api/v1/reaction", "application/json", eventJSON("add", "Stew", "fire", "C"))
	elapsed := time.Since(start)
	checkError(t, r, http.StatusServiceUnavailable, "overload")
	checkRetryAfter(t, r)
	if elapsed < enqueueTimeout {
		t.Errorf("503 after %v, want at least the enqueue timeout %v", elapsed, enqueueTimeout)
	}
	if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "overload"); got != 1 {
		t.Errorf("arina_events_rejected_total{source=http,reason=overload} = %v, want 1", got)
	}
	// Reads never go through the writer: they answer while it is stuck.
	r = h.do(t, http.MethodGet, "/api/v1/reaction/reaction_counts/Stew", "", "")
	if r.status != http.StatusNotFound {
		t.Errorf("GET counts while the writer is stuck: status = %d, want 404 (nothing applied yet); body %s", r.status, r.body)
	}

	bs.Release()
	counts := map[string]int64{}
	for user, ch := range map[string]<-chan asyncReply{"A": a, "B": b} {
		res := <-ch
		if res.err != nil {
			t.Fatalf("POST %s: %v", user, res.err)
		}
		rr, err := decodeReaction(res.r)
		if err != nil {
			t.Fatalf("POST %s: %v", user, err)
		}
		if !rr.Changed {
			t.Errorf("POST %s: changed = false, want true", user)
		}
		counts[user] = rr.Count
	}
	if counts["A"] != 1 || counts["B"] != 2 {
		t.Errorf("counts after A and B = %v, want A:1 B:2 (applied in order)", counts)
	}
	if got, want := h.storeCounts(t, "Stew"), map[string]int64{"fire": 2}; !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v (C was not applied)", got, want)
	}
	if got := h.metric(t, "arina_events_applied_total", "source", "http"); got != 2 {
		t.Errorf("arina_events_applied_total{source=http} = %v, want 2", got)
	}
	// C was not applied: adding it again changes the set.
	if rr := h.mustPost(t, "add", "Stew", "fire", "C"); !rr.Changed || rr.Count != 3 {
		t.Errorf("retried C: changed=%v count=%d, want changed=true count=3", rr.Changed, rr.Count)
	}
}

func TestServer_PostReaction_ShuttingDown(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	h.mustPost(t, "add", "Stew", "fire", "Sam")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.w.Close(ctx); err != nil {
		t.Fatalf("closing writer: %v", err)
	}

	r := h.do(t, http.MethodPost, "/api/v1/reaction", "application/json", annWith())
	checkError(t, r, http.StatusServiceUnavailable, "shutting_down")
	checkRetryAfter(t, r)
	if got := h.metric(t, "arina_events_rejected_total", "source", "http", "reason", "shutting_down"); got != 1 {
		t.Errorf("arina_events_rejected_total{source=http,reason=shutting_down} = %v, want 1", got)
	}
	// Counts stay readable while shutting down, and unchanged.
	r = h.do(t, http.MethodGet, "/api/v1/reaction/reaction_counts/Stew", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET counts after writer close: status = %d, want 200; body %s", r.status, r.body)
	}
	checkJSON(t, r.body, `{"content_id":"Stew","reaction_count":{"fire":1}}`)
	// The writer check fails.
	testutil.WaitFor(t, 10*time.Second, func() error {
		r := h.do(t, http.MethodGet, "/readyz", "", "")
		if r.status != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz status = %d, want 503; body %s", r.status, r.body)
		}
		return nil
	})
}

// seedFixture posts the events the count tests read.
func seedFixture(tb testing.TB, h *harness) {
	tb.Helper()
	for _, e := range [][4]string{
		{"add", "Stew", "yum", "Sam"},
		{"add", "Stew", "fire", "Sam"},
		{"add", "Stew", "fire", "Ann"},
		{"add", "Stew", "angry", "Bob"},
		{"remove", "Stew", "angry", "Bob"}, // all left: angry stays with 0
		{"add", "Beef Stew", "fire", "Sam"},
		{"add", "Crème brûlée", "🔥", "Zoë"},
		{"add", "火锅", "辣", "李"},
		{"add", "Fish & Chips?", "yum", "Sam"},
		{"add", "100%", "yum", "Sam"},
		{"remove", "Ghost", "fire", "Sam"}, // remove before add: Ghost stays unknown
	} {
		h.mustPost(tb, e[0], e[1], e[2], e[3])
	}
}

func TestServer_SeedCounts(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	seedFixture(t, h)
	const notFound = `{"errors":{"detail":"Not Found"}}`
	tests := []struct {
		name       string
		content    string // escaped with url.PathEscape
		wantStatus int
		wantBody   string
	}{
		{"Stew", "Stew", 200, `{"content_id":"Stew","reaction_count":{"angry":0,"fire":2,"yum":1}}`},
		{"Space", "Beef Stew", 200, `{"content_id":"Beef Stew","reaction_count":{"fire":1}}`},
		{"UTF8", "Crème brûlée", 200, `{"content_id":"Crème brûlée","reaction_count":{"🔥":1}}`},
		{"CJK", "火锅", 200, `{"content_id":"火锅","reaction_count":{"辣":1}}`},
		{"Reserved", "Fish & Chips?", 200, `{"content_id":"Fish & Chips?","reaction_count":{"yum":1}}`},
		{"Percent", "100%", 200, `{"content_id":"100%","reaction_count":{"yum":1}}`},
		{"Unknown", "Soup", 404, notFound},
		{"RemovedBeforeAdded", "Ghost", 404, notFound},
		{"CaseSensitive", "stew", 404, notFound},
		{"EscapedSlash", "Stew/x", 404, notFound},
	}
	for _, route := range []string{
		"/api/v1/reaction/reaction_counts/",
		"/api/v1/reaction/reactions_count/",
		"/reaction/reactions_count/",
	} {
		t.Run(strings.Trim(route, "/"), func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := h.do(t, http.MethodGet, route+url.PathEscape(tt.content), "", "")
					if r.status != tt.wantStatus {
						t.Errorf("status = %d, want %d", r.status, tt.wantStatus)
					}
					if ct := r.header.Get("Content-Type"); ct != "application/json" {
						t.Errorf("Content-Type = %q, want application/json", ct)
					}
					checkJSON(t, r.body, tt.wantBody)
				})
			}
		})
	}
}

func TestServer_ContentCounts(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	seedFixture(t, h)
	tests := []struct {
		name       string
		content    string
		wantStatus int
		wantBody   string // for 200
		wantCode   string // for errors
	}{
		{name: "SortedByReactionType", content: "Stew", wantStatus: 200,
			wantBody: `{"content_id":"Stew","total":3,"reactions":[{"reaction_type":"angry","count":0},{"reaction_type":"fire","count":2},{"reaction_type":"yum","count":1}]}`},
		{name: "UTF8", content: "Crème brûlée", wantStatus: 200,
			wantBody: `{"content_id":"Crème brûlée","total":1,"reactions":[{"reaction_type":"🔥","count":1}]}`},
		{name: "Space", content: "Beef Stew", wantStatus: 200,
			wantBody: `{"content_id":"Beef Stew","total":1,"reactions":[{"reaction_type":"fire","count":1}]}`},
		{name: "Unknown", content: "Soup", wantStatus: 404, wantCode: "not_found"},
		{name: "RemovedBeforeAdded", content: "Ghost", wantStatus: 404, wantCode: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.do(t, http.MethodGet, "/api/v1/contents/"+url.PathEscape(tt.content), "", "")
			if tt.wantCode != "" {
				checkError(t, r, tt.wantStatus, tt.wantCode)
				return
			}
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d", r.status, tt.wantStatus)
			}
			checkJSON(t, r.body, tt.wantBody)
		})
	}
}

func TestServer_Healthz(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{checks: []api.Check{{Name: "down", OK: func() bool { return false }}}})
	// Liveness does not depend on readiness.
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		r := h.do(t, method, "/healthz", "", "")
		if r.status != http.StatusOK {
			t.Errorf("%s /healthz status = %d, want 200", method, r.status)
		}
		if method == http.MethodGet {
			checkJSON(t, r.body, `{"status":"ok"}`)
		}
	}
}

func TestServer_Readyz(t *testing.T) {
	t.Parallel()
	var broker, st atomic.Bool
	h := MustStart(t, harnessOptions{checks: []api.Check{
		{Name: "broker", OK: broker.Load},
		{Name: "store", OK: st.Load},
	}})
	tests := []struct {
		name          string
		broker, store bool
		wantStatus    int
		wantBody      string
	}{
		{"AllPass", true, true, 200, `{"status":"ready","checks":{"broker":"ok","store":"ok"}}`},
		{"StoreDown", true, false, 503, `{"status":"not ready","checks":{"broker":"ok","store":"down"}}`},
		{"BothDown", false, false, 503, `{"status":"not ready","checks":{"broker":"down","store":"down"}}`},
		{"Recovered", true, true, 200, `{"status":"ready","checks":{"broker":"ok","store":"ok"}}`},
	}
	for _, tt := range tests { // in order: the checks are shared
		t.Run(tt.name, func(t *testing.T) {
			broker.Store(tt.broker)
			st.Store(tt.store)
			r := h.do(t, http.MethodGet, "/readyz", "", "")
			if r.status != tt.wantStatus {
				t.Errorf("status = %d, want %d", r.status, tt.wantStatus)
			}
			checkJSON(t, r.body, tt.wantBody)
		})
	}

	t.Run("NoChecks", func(t *testing.T) {
		h := MustStart(t, harnessOptions{checks: []api.Check{}})
		r := h.do(t, http.MethodGet, "/readyz", "", "")
		if r.status != http.StatusOK {
			t.Errorf("status = %d, want 200", r.status)
		}
		checkJSON(t, r.body, `{"status":"ready","checks":{}}`)
	})
}

func TestServer_Metrics(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	h.do(t, http.MethodGet, "/healthz", "", "")
	h.mustPost(t, "add", "Stew", "fire", "Sam")
	h.do(t, http.MethodPost, "/api/v1/reaction", "application/json", `{`)

	r := h.do(t, http.MethodGet, "/metrics", "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
	}
	body := string(r.body)
	for _, want := range []string{
		"# TYPE arina_events_received_total counter",
		`arina_events_received_total{source="http"} 2`,
		`arina_events_applied_total{source="http"} 1`,
		`arina_events_rejected_total{reason="bad_json",source="http"} 1`,
		"# TYPE arina_http_requests_total counter",
		`arina_http_requests_total{code="200",route="GET /healthz"} 1`,
		`arina_http_requests_total{code="201",route="POST /api/v1/reaction"} 1`,
		`arina_http_requests_total{code="400",route="POST /api/v1/reaction"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The registry holds only our collectors: every family is ours.
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name := line
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			f := strings.Fields(rest) // HELP|TYPE name ...
			if len(f) < 2 {
				continue
			}
			name = f[1]
		} else if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		if !strings.HasPrefix(name, "arina_") {
			t.Errorf("metric %q is not prefixed arina_ (line %q)", name, line)
		}
	}
	// Lint what was served (prometheus/testutil/promlint: naming, units, help).
	problems, err := promlint.New(bytes.NewReader(r.body)).Lint()
	if err != nil {
		t.Fatalf("linting /metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
}

// TestServer_PostReaction_Concurrent: many clients at once, each event applied exactly
// once; readers run alongside and never see a count go backwards.
func TestServer_PostReaction_Concurrent(t *testing.T) {
	t.Parallel()
	const clients, perClient = 50, 20
	reactions := []string{"fire", "yum"}
	h := MustStart(t, harnessOptions{})

	var (
		mu       sync.Mutex
		returned = map[string][]int64{} // reaction → counts returned by the 201s
	)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := h.send(http.MethodGet, "/api/v1/reaction/reaction_counts/Stew", "", "")
			if err != nil {
				t.Errorf("GET counts: %v", err)
				return
			}
			if r.status == http.StatusNotFound {
				continue
			}
			var got struct {
				ContentID     string           `json:"content_id"`
				ReactionCount map[string]int64 `json:"reaction_count"`
			}
			if err := strictDecode(r.body, &got); err != nil {
				t.Errorf("GET counts: %v", err)
				return
			}
			n := got.ReactionCount["fire"]
			if n < last || n > clients*perClient/2 {
				t.Errorf("fire count went from %d to %d", last, n)
				return
			}
			last = n
		}
	})

	var writers sync.WaitGroup
	for c := range clients {
		writers.Go(func() {
			reaction := reactions[c%len(reactions)]
			for i := range perClient {
				user := fmt.Sprintf("u%d-%d", c, i)
				r, err := h.send(http.MethodPost, "/api/v1/reaction", "application/json", eventJSON("add", "Stew", reaction, user))
				if err != nil {
					t.Errorf("POST %s: %v", user, err)
					return
				}
				rr, err := decodeReaction(r)
				if err != nil {
					t.Errorf("POST %s: %v", user, err)
					return
				}
				if !rr.Changed {
					t.Errorf("POST %s: changed = false, want true", user)
				}
				mu.Lock()
				returned[reaction] = append(returned[reaction], rr.Count)
				mu.Unlock()
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		t.FailNow()
	}

	perReaction := clients * perClient / len(reactions)
	want := map[string]int64{}
	for _, reaction := range reactions {
		want[reaction] = int64(perReaction)
		// One writer applies them one after the other: the counts handed back are
		// exactly 1..perReaction, each once.
		got := slices.Sorted(slices.Values(returned[reaction]))
		for i, n := range got {
			if n != int64(i+1) {
				t.Errorf("%s: counts returned = %v, want 1..%d each once", reaction, got, perReaction)
				break
			}
		}
		if len(got) != perReaction {
			t.Errorf("%s: %d replies, want %d", reaction, len(got), perReaction)
		}
	}
	if got := h.storeCounts(t, "Stew"); !maps.Equal(got, want) {
		t.Errorf("store counts of Stew = %v, want %v", got, want)
	}
	if got, want := h.metric(t, "arina_events_applied_total", "source", "http"), float64(clients*perClient); got != want {
		t.Errorf("arina_events_applied_total{source=http} = %v, want %v", got, want)
	}
	if got := h.metric(t, "arina_memberships_changed_total", "action", "add"); got != float64(clients*perClient) {
		t.Errorf("arina_memberships_changed_total{action=add} = %v, want %d", got, clients*perClient)
	}
}

// TestServer_Start: Start binds synchronously (a taken address is a returned error),
// serves the same handler on the bound address, and Close is idempotent.
func TestServer_Start(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newServer := func(listen string) *api.Server {
		t.Helper()
		srv, err := api.New(api.Options{Listen: listen}, h.mem, h.w, logger)
		if err != nil {
			t.Fatalf("api.New: %v", err)
		}
		return srv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := newServer("127.0.0.1:0").Close(ctx); err != nil {
		t.Errorf("Close of a server never started = %v, want nil", err)
	}

	srv := newServer("127.0.0.1:0")
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	addr := srv.Addr()
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("Addr = %q, want the bound port", addr)
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz status = %d, want 200", resp.StatusCode)
	}

	if other := newServer(addr); other.Start() == nil {
		_ = other.Close(ctx)
		t.Errorf("Start on %s, which is taken: err = nil, want an error", addr)
	}

	for i := range 2 {
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close #%d = %v, want nil", i+1, err)
		}
	}
	tr.CloseIdleConnections()
	if resp, err := client.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("GET after Close: status %d, want a connection error", resp.StatusCode)
	}
}
