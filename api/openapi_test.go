package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// The tests here check arina's real answers against the OpenAPI document it serves
// (openapi.yaml): each route is driven with good and bad requests on a running server
// (a real listener, writer and store), and every response (status, headers, body) is
// validated with kin-openapi; every route the server registers must be in the
// document, and every operation of the document must have been answered.

// oaServer is a started api.Server with its writer, and the client to ask it with.
type oaServer struct {
	srv    *api.Server
	w      *ingest.Writer
	base   string
	client *http.Client
}

type oaServerOptions struct {
	full   bool                        // tokens file, history, change feed, metrics and pprof
	reader func(api.Reader) api.Reader // wraps the store for the API; nil: none
}

func startOA(tb testing.TB, o oaServerOptions) *oaServer {
	tb.Helper()
	logger := slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	mem := store.NewMemory()
	tb.Cleanup(func() { _ = mem.Close() })
	reg := prometheus.NewRegistry()
	var io ingest.Options
	opts := api.Options{Listen: "127.0.0.1:0"}
	if o.full {
		path := filepath.Join(tb.TempDir(), "tokens.yaml")
		if err := os.WriteFile(path, []byte(authTokensYAML), 0o600); err != nil {
			tb.Fatal(err)
		}
		tokens, err := auth.OpenTokensFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		opts.Tokens, opts.Gatherer, opts.Registerer, opts.Pprof = tokens, reg, reg, true
		opts.Feed, opts.History = mustHistory(tb, &io, history.Options{Resolution: time.Second, Window: time.Minute})
	}
	w, err := ingest.NewWriter(mem, io, logger, reg)
	if err != nil {
		tb.Fatal(err)
	}
	w.Start()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	opts.Checks = []api.Check{{Name: "writer", OK: w.Running}}
	var r api.Reader = mem
	if o.reader != nil {
		r = o.reader(mem)
	}
	srv, err := api.New(opts, r, w, logger)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tr := &http.Transport{}
	tb.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			tb.Errorf("closing server: %v", err)
		}
	})
	return &oaServer{srv: srv, w: w, base: "http://" + srv.Addr(), client: &http.Client{Transport: tr}}
}

// oaChecker validates responses against the served document and records which
// operations answered with which statuses.
type oaChecker struct {
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string][]int // "GET /healthz" (document path) → statuses validated
}

var registerDecoders sync.Once

func newOAChecker(t *testing.T, s *oaServer) *oaChecker {
	t.Helper()
	registerDecoders.Do(func() {
		// Bodies the filter has no decoder for: checked as strings (the stream's
		// events are checked one by one in TestOpenAPI_Stream).
		openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
		openapi3filter.RegisterBodyDecoder("application/openmetrics-text", openapi3filter.PlainBodyDecoder)
	})
	// The document itself, as served, needs no token.
	resp, err := s.client.Get(s.base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json: %d %q %v %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("loading the served document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI 3: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &oaChecker{doc: doc, router: router, seen: map[string][]int{}}
	c.validate(t, mustRequest(t, http.MethodGet, s.base+"/api/v1/openapi.json", "", "", ""), resp.StatusCode, resp.Header, body)
	return c
}

func mustRequest(tb testing.TB, method, url, ctype, authz, body string) *http.Request {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return req
}

// validate checks one response against the document. A request the document has no
// operation for (another method on a known path, an unknown path) must get the
// documented 405 or 404 error.
func (c *oaChecker) validate(tb testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	tb.Helper()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// A path the document has with another method: 405; else 404.
		want, name := http.StatusNotFound, "NotFound"
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if _, _, err := c.router.FindRoute(mustRequest(tb, m, req.URL.String(), "", "", "")); err == nil {
				want, name = http.StatusMethodNotAllowed, "MethodNotAllowed"
			}
		}
		if status != want {
			tb.Errorf("%s %s: %d, and no operation in the document (%v)", req.Method, req.URL, status, err)
			return
		}
		c.validateComponent(tb, req, name, header, body)
		c.note(req.Method+" (none)", status)
		return
	}
	ctx := context.Background()
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		tb.Errorf("%s %s: %d %q %.300s: not as documented: %v", req.Method, req.URL, status, header.Get("Content-Type"), body, err)
		return
	}
	c.note(route.Method+" "+route.Path, status)
}

// validateComponent checks a response against components.responses[name]: its
// required headers and its JSON body.
func (c *oaChecker) validateComponent(tb testing.TB, req *http.Request, name string, header http.Header, body []byte) {
	tb.Helper()
	ref := c.doc.Components.Responses[name]
	if ref == nil || ref.Value == nil {
		tb.Fatalf("components.responses.%s missing", name)
	}
	for h, hr := range ref.Value.Headers {
		if hr.Value.Required && header.Get(h) == "" {
			tb.Errorf("%s %s: no %s header", req.Method, req.URL, h)
		}
	}
	mt := ref.Value.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		tb.Errorf("%s %s: Content-Type %q not in components.responses.%s", req.Method, req.URL, header.Get("Content-Type"), name)
		return
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		tb.Errorf("%s %s: %v: %s", req.Method, req.URL, err, body)
		return
	}
	if err := mt.Schema.Value.VisitJSON(v); err != nil {
		tb.Errorf("%s %s: %s not as components.responses.%s: %v", req.Method, req.URL, body, name, err)
	}
}

func (c *oaChecker) note(op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.seen[op], status) {
		c.seen[op] = append(c.seen[op], status)
	}
}

// oaCall is one request and the status it must get.
type oaCall struct {
	method, path, ctype, authz, body string
	want                             int
	wantCode                         string // the error code of a JSON error answer; "" for none
}

func (c *oaChecker) run(t *testing.T, s *oaServer, calls []oaCall) {
	t.Helper()
	for _, call := range calls {
		req := mustRequest(t, call.method, s.base+call.path, call.ctype, call.authz, call.body)
		resp, err := s.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", call.method, call.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != call.want {
			t.Errorf("%s %s: %d %.300s, want %d", call.method, call.path, resp.StatusCode, body, call.want)
			continue
		}
		if call.wantCode != "" {
			var e struct{ Error struct{ Code string } }
			if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != call.wantCode {
				t.Errorf("%s %s: %s, want error code %s", call.method, call.path, body, call.wantCode)
			}
		}
		// A fresh request for the router: the one sent has its body consumed.
		c.validate(t, mustRequest(t, call.method, s.base+call.path, call.ctype, call.authz, ""), resp.StatusCode, resp.Header, body)
	}
}

const bearer = "Bearer " + tokBoth

// TestOpenAPI drives every route of a server with every option on (tokens, history,
// change feed, metrics, pprof) and of one with none, and checks each answer against
// the document.
func TestOpenAPI(t *testing.T) {
	full := startOA(t, oaServerOptions{full: true})
	c := newOAChecker(t, full)
	ev := func(action, content, reaction, user string) string { return eventJSON(action, content, reaction, user) }
	stale := fmt.Sprintf(`{"type":"reaction","action":"remove","content_id":"Stew","reaction_type":"fire","user_id":"Ann","ts":%d}`, time.Now().Add(-time.Minute).UnixMilli())
	tooMany := "[" + strings.TrimSuffix(strings.Repeat("{},", 1001), ",") + "]"
	const json, nd, text = "application/json", "application/x-ndjson", "text/plain"
	c.run(t, full, []oaCall{
		// writes
		{"POST", "/api/v1/reaction", json, bearer, ev("add", "Stew", "fire", "Sam"), 201, ""},
		{"POST", "/api/v1/reaction", json, "Bearer " + tokWrite, fmt.Sprintf(`{"type":"reaction","action":"add","content_id":"Stew","reaction_type":"fire","user_id":"Ann","ts":%d}`, time.Now().UnixMilli()), 201, ""},
		{"POST", "/api/v1/reaction", json, bearer, stale, 201, ""},
		{"POST", "/api/v1/reaction", "", bearer, ev("add", "Stew", "fire", "Sam"), 201, ""},
		{"POST", "/api/v1/reaction", json, bearer, `{"type":`, 400, "bad_json"},
		{"POST", "/api/v1/reaction", json, bearer, strings.Replace(ev("add", "Stew", "fire", "Sam"), `"add"`, `"like"`, 1), 400, "invalid_action"},
		{"POST", "/api/v1/reaction", json, bearer, `{"type":"reaction","action":"add"}`, 400, "missing_field"},
		{"POST", "/api/v1/reaction", json, bearer, ev("add", "a/b", "fire", "Sam"), 400, "invalid_id"},
		{"POST", "/api/v1/reaction", json, bearer, padTo(ev("add", "Stew", "fire", "Sam"), api.DefaultMaxBodyBytes+1), 413, "payload_too_large"},
		{"POST", "/api/v1/reaction", text, bearer, ev("add", "Stew", "fire", "Sam"), 415, "unsupported_media_type"},
		{"POST", "/api/v1/reaction", json, "", ev("add", "Stew", "fire", "Sam"), 401, "unauthorized"},
		{"POST", "/api/v1/reaction", json, "Bearer nope", ev("add", "Stew", "fire", "Sam"), 401, "unauthorized"},
		{"POST", "/api/v1/reaction", json, "Bearer " + tokRead, ev("add", "Stew", "fire", "Sam"), 403, "forbidden"},
		{"POST", "/api/v1/reactions", json, bearer, jsonArray(ev("add", "Stew", "yum", "Bo"), ev("like", "Stew", "yum", "Bo"), stale), 200, ""},
		{"POST", "/api/v1/reactions", nd, bearer, ndjson(ev("add", "Soup", "fire", "Sam"), "", ev("remove", "Soup", "fire", "Sam")), 200, ""},
		{"POST", "/api/v1/reactions", json, bearer, `{"not":"an array"}`, 400, ""},
		{"POST", "/api/v1/reactions", json, bearer, tooMany, 413, "too_many_items"},
		{"POST", "/api/v1/reactions", nd, bearer, padTo(ev("add", "Stew", "fire", "Sam"), api.DefaultMaxBodyBytes+1), 413, "payload_too_large"},
		{"POST", "/api/v1/reactions", text, bearer, "x", 415, "unsupported_media_type"},
		{"POST", "/api/v1/reactions", json, "", "[]", 401, "unauthorized"},
		{"POST", "/api/v1/reactions", json, "Bearer " + tokRead, "[]", 403, "forbidden"},
		// seed reads
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", bearer, "", 200, ""},
		{"GET", "/api/v1/reaction/reaction_counts/Nope", "", bearer, "", 404, ""},
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/reaction/reactions_count/Stew", "", bearer, "", 200, ""},
		{"GET", "/api/v1/reaction/reactions_count/Nope", "", bearer, "", 404, ""},
		{"GET", "/api/v1/reaction/reactions_count/Stew", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/reaction/reactions_count/Stew", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/reaction/reactions_count/Stew", "", bearer, "", 200, ""},
		{"GET", "/reaction/reactions_count/Nope", "", bearer, "", 404, ""},
		{"GET", "/reaction/reactions_count/Stew", "", "", "", 401, "unauthorized"},
		{"GET", "/reaction/reactions_count/Stew", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		// native reads
		{"GET", "/api/v1/contents", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents?prefix=St&limit=1", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents?limit=0", "", bearer, "", 400, "invalid_field"},
		{"GET", "/api/v1/contents", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/contents", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/contents/Stew", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents/Nope", "", bearer, "", 404, "not_found"},
		{"GET", "/api/v1/contents/Stew", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/contents/Stew", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/users/Sam/memberships", "", bearer, "", 200, ""},
		{"GET", "/api/v1/users/Nobody/memberships", "", bearer, "", 200, ""},
		{"GET", "/api/v1/users/Sam/memberships", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/users/Sam/memberships", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members?limit=1", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members?limit=x", "", bearer, "", 400, "invalid_field"},
		{"GET", "/api/v1/contents/Nope/reactions/fire/members", "", bearer, "", 404, "not_found"},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/contents/Stew/history", "", bearer, "", 200, ""},
		{"GET", "/api/v1/contents/Nope/history", "", bearer, "", 404, "not_found"},
		{"GET", "/api/v1/contents/Stew/history", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/contents/Stew/history", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/activity", "", bearer, "", 200, ""},
		{"GET", "/api/v1/activity", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/activity", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/stream?content=Stew", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/stream?access_token=nope", "", "", "", 401, "unauthorized"},
		{"GET", "/api/v1/stream", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		// operations
		{"GET", "/", "", "", "", 200, ""},
		{"GET", "/healthz", "", "", "", 200, ""},
		{"GET", "/readyz", "", "", "", 200, ""},
		{"GET", "/metrics", "", bearer, "", 200, ""},
		{"GET", "/metrics", "", "", "", 401, "unauthorized"},
		{"GET", "/metrics", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/api/v1/openapi.json", "", "Bearer nope", "", 200, ""},
		{"GET", "/debug/pprof/", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/debug/pprof/heap?debug=1", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/allocs", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/nope", "", bearer, "", 404, ""},
		{"GET", "/debug/pprof/heap", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/heap", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/debug/pprof/cmdline", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/cmdline", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/cmdline", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/debug/pprof/symbol", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/symbol", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/symbol", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/debug/pprof/profile?seconds=1", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/profile", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/profile", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		{"GET", "/debug/pprof/trace?seconds=0.1", "", bearer, "", 200, ""},
		{"GET", "/debug/pprof/trace", "", "", "", 401, "unauthorized"},
		{"GET", "/debug/pprof/trace", "", "Bearer " + tokWrite, "", 403, "forbidden"},
		// no operation: 405 and 404
		{"DELETE", "/api/v1/reaction", "", bearer, "", 405, "method_not_allowed"},
		{"PUT", "/api/v1/contents/Stew", json, bearer, "{}", 405, "method_not_allowed"},
		{"POST", "/healthz", json, bearer, "{}", 405, "method_not_allowed"},
		{"GET", "/api/v1/reactions", "", bearer, "", 405, "method_not_allowed"},
		{"GET", "/nope", "", bearer, "", 404, "not_found"},
		{"GET", "/api/v1/contents/Stew/nope", "", bearer, "", 404, "not_found"},
	})
	c.stream(t, full, "/api/v1/stream?content=Stew", bearer, "change", ev("remove", "Stew", "fire", "Sam"))
	c.stream(t, full, "/api/v1/stream?batch=1&access_token="+tokRead, "", "changes", ev("add", "Stew", "fire", "Sam"))
	c.stream(t, full, "/api/v1/stream", bearer, "change", ev("add", "Pie", "fire", "Sam"))

	// A server with no option: no history, no feed, no tokens; then a store that
	// fails its reads, and a writer that is closed.
	var failing *failingReader
	bare := startOA(t, oaServerOptions{reader: func(r api.Reader) api.Reader { failing = &failingReader{Reader: r}; return failing }})
	c.run(t, bare, []oaCall{
		{"POST", "/api/v1/reaction", json, "", ev("add", "Stew", "fire", "Sam"), 201, ""},
		{"GET", "/api/v1/contents/Stew/history", "", "", "", 404, "not_found"},
		{"GET", "/api/v1/activity", "", "", "", 404, "not_found"},
		{"GET", "/api/v1/stream", "", "", "", 404, "not_found"},
		{"GET", "/api/v1/openapi.json", "", "", "", 200, ""},
	})
	failing.fail()
	c.run(t, bare, []oaCall{
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", "", "", 503, "store_unavailable"},
		{"GET", "/api/v1/reaction/reactions_count/Stew", "", "", "", 503, "store_unavailable"},
		{"GET", "/reaction/reactions_count/Stew", "", "", "", 503, "store_unavailable"},
		{"GET", "/api/v1/contents", "", "", "", 503, "store_unavailable"},
		{"GET", "/api/v1/contents/Stew", "", "", "", 503, "store_unavailable"},
		{"GET", "/api/v1/users/Sam/memberships", "", "", "", 503, "store_unavailable"},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members", "", "", "", 503, "store_unavailable"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bare.w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.run(t, bare, []oaCall{
		{"POST", "/api/v1/reaction", json, "", ev("add", "Stew", "fire", "Sam"), 503, "shutting_down"},
		{"POST", "/api/v1/reactions", json, "", jsonArray(ev("add", "Stew", "fire", "Sam")), 503, "shutting_down"},
		{"GET", "/readyz", "", "", "", 503, ""},
	})

	// The full server's history, with a store that fails: its 503.
	var failingFull *failingReader
	full2 := startOA(t, oaServerOptions{full: true, reader: func(r api.Reader) api.Reader { failingFull = &failingReader{Reader: r}; return failingFull }})
	failingFull.fail()
	c.run(t, full2, []oaCall{{"GET", "/api/v1/contents/Stew/history", "", bearer, "", 503, "store_unavailable"}})

	// Every operation of the document answered, each status it was seen with.
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			op := method + " " + path
			if len(c.seen[op]) == 0 {
				t.Errorf("%s: no response checked against the document", op)
			}
		}
	}
	ops := slices.Sorted(mapKeys(c.seen))
	for _, op := range ops {
		t.Logf("%s: %v", op, c.seen[op])
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// stream opens the change stream at path, reads it until "ready", sends post (one
// event) and reads until an event named want; it checks the response against the
// document and each event's data against its schema (components.schemas).
func (c *oaChecker) stream(t *testing.T, s *oaServer, path, authz, want, post string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := mustRequest(t, http.MethodGet, s.base+path, "", authz, "")
	resp, err := s.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	schemas := map[string]string{"snapshot": "StreamSnapshot", "change": "StreamChange", "changes": "StreamChange", "error": "StreamError"}
	var got bytes.Buffer
	events := map[string]int{}
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(resp.Body, &got))
		var event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var v any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
					done <- fmt.Errorf("%s data: %v", event, err)
					return
				}
				items := []any{v}
				if event == "changes" {
					items, _ = v.([]any)
				}
				if name, ok := schemas[event]; ok {
					for _, it := range items {
						if err := c.doc.Components.Schemas[name].Value.VisitJSON(it); err != nil {
							done <- fmt.Errorf("%s event %s: not as %s: %v", event, line, name, err)
							return
						}
					}
				}
				events[event]++
				if event == "ready" {
					done <- nil
				}
				if event == want {
					done <- nil
					return
				}
			}
		}
		done <- fmt.Errorf("stream ended: %v", sc.Err())
	}()
	wait := func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("GET %s: no event in 10s", path)
		}
	}
	wait() // ready
	r, err := s.client.Do(mustRequest(t, http.MethodPost, s.base+"/api/v1/reaction", "application/json", bearer, post))
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Body.Close()
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", r.StatusCode)
	}
	wait() // want
	if events[want] == 0 {
		t.Errorf("GET %s: no %s event: %s", path, want, got.String())
	}
	c.validate(t, req, resp.StatusCode, resp.Header, got.Bytes())
}

// failingReader is a store whose reads fail once fail is called.
type failingReader struct {
	api.Reader
	mu     sync.Mutex
	failed bool
}

func (f *failingReader) fail() { f.mu.Lock(); f.failed = true; f.mu.Unlock() }

func (f *failingReader) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed {
		return fmt.Errorf("the disk is on fire")
	}
	return nil
}

func (f *failingReader) Counts(ctx context.Context, id string) ([]store.ReactionCount, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Reader.Counts(ctx, id)
}

func (f *failingReader) Members(ctx context.Context, id, reaction, after string, limit int) ([]store.Member, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Reader.Members(ctx, id, reaction, after, limit)
}

func (f *failingReader) Contents(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Reader.Contents(ctx, prefix, after, limit)
}

func (f *failingReader) UserMemberships(ctx context.Context, id string) ([]store.Membership, error) {
	if err := f.err(); err != nil {
		return nil, err
	}
	return f.Reader.UserMemberships(ctx, id)
}

// TestOpenAPI_Routes: every route the server registers (with every option on) is an
// operation of the document, and every operation is a registered route, so neither
// can change without the other.
func TestOpenAPI_Routes(t *testing.T) {
	s := startOA(t, oaServerOptions{full: true})
	c := newOAChecker(t, s)
	documented := map[string]bool{}
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, p := range api.Patterns(s.srv) {
		p = strings.Replace(p, "{$}", "", 1) // "GET /{$}": exactly "/"
		registered[p] = true
		if !documented[p] {
			t.Errorf("route %q is not in openapi.yaml", p)
		}
	}
	// The one operation the mux serves through a prefix pattern.
	const prefixServed = "GET /debug/pprof/{profile}"
	if !registered["GET /debug/pprof/"] {
		t.Errorf("GET /debug/pprof/ not registered; %s documents a route under it", prefixServed)
	}
	for op := range documented {
		if !registered[op] && op != prefixServed {
			t.Errorf("openapi.yaml documents %q, which the server does not register", op)
		}
	}
	if len(registered) < 20 {
		t.Errorf("only %d routes registered: %v", len(registered), registered)
	}
}
