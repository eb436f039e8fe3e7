package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// Reader answers count queries. store.Store implements it.
type Reader interface {
	Counts(ctx context.Context, contentID string) ([]store.ReactionCount, error)
	Members(ctx context.Context, contentID, reactionType, after string, limit int) ([]store.Member, error)
	Contents(ctx context.Context, prefix, after string, limit int) ([]string, error)
	UserMemberships(ctx context.Context, userID string) ([]store.Membership, error)
}

// Ingester applies events. *ingest.Writer implements it.
type Ingester interface {
	Submit(ctx context.Context, ev ingest.Event) (store.Result, error)
	Enqueue(ctx context.Context, ev ingest.Event, ack ingest.Ack) error
	Reject(src ingest.Source, code ingest.Code)
}

// Check is one readiness condition reported by /readyz.
type Check struct {
	Name string
	OK   func() bool
	// Optional checks are reported but do not fail readiness: a node whose upstream
	// broker is down still answers from what it has (the status says "degraded").
	Optional bool
}

// Options configure the API.
type Options struct {
	Listen       string                // address to listen on
	MaxBodyBytes int64                 // largest request body; default 64 KiB
	Checks       []Check               // all must pass for /readyz to answer 200
	Gatherer     prometheus.Gatherer   // served on /metrics; nil: no metrics
	Registerer   prometheus.Registerer // where the HTTP metrics go; nil: not registered
	Pprof        bool                  // serve net/http/pprof under /debug/pprof/
	// TTL is the reaction types' time to live (nil: none); the members route derives
	// when a membership was last refreshed from it.
	TTL func(reactionType string) time.Duration
	// Feed, if set, serves GET /api/v1/stream.
	Feed *feed.Hub
	// History, if set, serves GET /api/v1/contents/{content_id}/history and
	// GET /api/v1/activity (history.go).
	History *history.History
	// Tokens, if set, is the tokens file: every route but /healthz and /readyz needs a
	// bearer token, with the read scope for GET and the write scope for POST (see
	// auth.go). nil: the API is open.
	Tokens *auth.TokensFile

	// TLS, if set, serves HTTPS instead of HTTP.
	TLS *tls.Config
	// Slow or idle clients: how long one may take to send its headers and its whole
	// request, to read a response (the change stream extends its own), and to stay
	// connected idle between requests; defaults 10s, 30s, 30s, 2m.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int // default 64 KiB; larger headers get 431
}

// DefaultMaxBodyBytes is the default limit on a request body.
const DefaultMaxBodyBytes = 64 << 10

// Server serves the HTTP API.
type Server struct {
	opts      Options
	reader    Reader
	ingest    Ingester
	log       *slog.Logger
	handler   http.Handler
	srv       *http.Server
	ln        net.Listener
	serveDone chan struct{} // closed when the Serve goroutine has returned
	closed    atomic.Bool
	// patterns are the mux patterns of the routes ("GET /healthz"), in registration
	// order; openapi_test.go checks that the OpenAPI document describes each.
	patterns    []string
	openapiJSON []byte // GET /api/v1/openapi.json

	requests     *prometheus.CounterVec
	limitHits    *prometheus.CounterVec // limits net/http enforces (limits.go)
	authFailures *prometheus.CounterVec // with Tokens only
}

// New returns an API server reading from r and applying writes through in.
func New(opts Options, r Reader, in Ingester, logger *slog.Logger) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Server{opts: opts, reader: r, ingest: in, log: logger}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_http_requests_total",
		Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	s.limitHits = newLimitHits()
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.requests, s.limitHits} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("registering http metrics: %w", err)
			}
		}
	}
	if err := s.initAuth(); err != nil {
		return nil, err
	}
	doc, err := openapiDoc()
	if err != nil {
		return nil, err
	}
	s.openapiJSON = doc
	s.handler = s.routes()
	return s, nil
}

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		s.patterns = append(s.patterns, method+" "+path)
		// The same path with another method: a JSON 405 rather than the mux's text one.
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			allow := method
			if method == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed here; use %s", r.Method, allow))
		})
	}
	handle(http.MethodPost, "/api/v1/reaction", s.postReaction)
	handle(http.MethodPost, "/api/v1/reactions", s.postReactions)
	handle(http.MethodGet, "/api/v1/reaction/reaction_counts/{content_id}", s.seedCounts)
	handle(http.MethodGet, "/api/v1/reaction/reactions_count/{content_id}", s.seedCounts)
	handle(http.MethodGet, "/reaction/reactions_count/{content_id}", s.seedCounts)
	handle(http.MethodGet, "/api/v1/contents", s.contents)
	handle(http.MethodGet, "/api/v1/contents/{content_id}", s.contentCounts)
	handle(http.MethodGet, "/api/v1/users/{user_id}/memberships", s.userMemberships)
	handle(http.MethodGet, "/api/v1/contents/{content_id}/reactions/{reaction_type}/members", s.members)
	handle(http.MethodGet, "/api/v1/stream", s.stream)
	handle(http.MethodGet, "/api/v1/contents/{content_id}/history", s.contentHistory)
	handle(http.MethodGet, "/api/v1/activity", s.activity)
	handle(http.MethodGet, "/{$}", s.index)
	handle(http.MethodGet, "/healthz", s.healthz)
	handle(http.MethodGet, "/readyz", s.readyz)
	handle(http.MethodGet, "/api/v1/openapi.json", s.openapi)
	if s.opts.Gatherer != nil {
		mh := promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
		handle(http.MethodGet, "/metrics", mh.ServeHTTP)
	}
	if s.opts.Pprof {
		for _, r := range []struct {
			pattern string
			h       http.HandlerFunc
		}{
			{"GET /debug/pprof/", pprof.Index}, {"GET /debug/pprof/cmdline", pprof.Cmdline},
			{"GET /debug/pprof/profile", pprof.Profile}, {"GET /debug/pprof/symbol", pprof.Symbol},
			{"GET /debug/pprof/trace", pprof.Trace},
		} {
			mux.HandleFunc(r.pattern, r.h)
			s.patterns = append(s.patterns, r.pattern)
		}
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})
	return s.instrument(s.authenticate(mux))
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, fmt.Sprint(sw.code)).Inc()
	})
}

// Start binds the listener (an address in use is a returned error) and serves in the
// background until Close.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.opts.Listen)
	if err != nil {
		return fmt.Errorf("http: listening on %s: %w", s.opts.Listen, err)
	}
	// Under TLS, net/http must see the *tls.Conn itself (it answers plain HTTP on an
	// HTTPS port, and fills Request.TLS), so the counting wrapper goes beneath it;
	// there it sees only encrypted bytes and counts timeouts, not 431s.
	ln = &limitListener{Listener: ln, hits: s.limitHits}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.ln = ln
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	maxHeader := s.opts.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = 64 << 10
	}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: or(s.opts.ReadHeaderTimeout, 10*time.Second),
		ReadTimeout:       or(s.opts.ReadTimeout, 30*time.Second),
		WriteTimeout:      or(s.opts.WriteTimeout, 30*time.Second),
		IdleTimeout:       or(s.opts.IdleTimeout, 2*time.Minute),
		MaxHeaderBytes:    maxHeader,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "err", err)
		}
	}()
	return nil
}

// Addr returns the address the listener is bound to.
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.opts.Listen
	}
	return s.ln.Addr().String()
}

// Close stops accepting requests and waits, until ctx ends, for those in progress.
// It is safe to call more than once.
func (s *Server) Close(ctx context.Context) error {
	if s.srv == nil || !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("http: shutting down: %w", err)
	}
	<-s.serveDone
	return err
}

// errorBody is the JSON of every API error.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

// writeIngestError answers a rejected or failed write; it counts input rejections.
func (s *Server) writeIngestError(w http.ResponseWriter, err error) {
	var ie *ingest.Error
	switch {
	case errors.As(err, &ie):
		status := http.StatusBadRequest
		if ie.Code == ingest.CodePayloadTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		var b errorBody
		b.Error.Code, b.Error.Message, b.Error.Field = string(ie.Code), ie.Error(), ie.Field
		writeJSON(w, status, b)
	default:
		code, msg, retryAfter := refusal(err)
		if code == string(ingest.CodeStoreError) {
			s.log.Error("applying http event", "err", err)
		}
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, code, msg)
	}
}

// refusal describes an event that was valid but not applied, a refusal a retry may
// cure: its error code, message and Retry-After seconds.
func refusal(err error) (code, msg, retryAfter string) {
	switch {
	case errors.Is(err, ingest.ErrQueueFull):
		return string(ingest.CodeOverload), "ingest queue is full; retry later", "1"
	case errors.Is(err, ingest.ErrClosed):
		return string(ingest.CodeShuttingDown), "arina is shutting down; retry on another node or later", "5"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "timeout", "the request ended before the event was applied; it may still be applied", "1"
	}
	return string(ingest.CodeStoreError), "the store could not apply the event", "1"
}

// reactionResponse is the answer to a successful POST /api/v1/reaction.
type reactionResponse struct {
	Type         string `json:"type"`
	Action       string `json:"action"`
	ContentID    string `json:"content_id"`
	ReactionType string `json:"reaction_type"`
	UserID       string `json:"user_id"`
	Changed      bool   `json:"changed"` // false for a duplicate add or a remove of an absent user
	Count        int64  `json:"count"`   // users holding the reaction after the event
	// Stale: the event's ts was older than what the store had for this user (or than
	// store.tombstone_ttl): accepted, and superseded; nothing changed.
	Stale bool `json:"stale,omitempty"`
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type",
				fmt.Sprintf("Content-Type %q is not JSON; send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &httpError{http.StatusRequestEntityTooLarge, string(ingest.CodePayloadTooLarge),
				fmt.Sprintf("request body is over the %d byte limit", s.opts.MaxBodyBytes)}
		}
		return nil, &httpError{http.StatusBadRequest, "bad_request", "reading request body: " + err.Error()}
	}
	return body, nil
}

type httpError struct {
	status  int
	code    string
	message string
}

func (e *httpError) Error() string { return e.message }

func (s *Server) postReaction(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		he := err.(*httpError)
		s.ingest.Reject(ingest.SourceHTTP, ingest.Code(he.code))
		writeError(w, he.status, he.code, he.message)
		return
	}
	ev, err := ingest.DecodeJSON(body, ingest.SourceHTTP)
	if err != nil {
		s.ingest.Reject(ingest.SourceHTTP, ingest.CodeOf(err))
		s.writeIngestError(w, err)
		return
	}
	res, err := s.ingest.Submit(r.Context(), ev)
	if err != nil {
		s.writeIngestError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, reactionResponse{
		Type: "reaction", Action: ev.Action.String(), ContentID: ev.ContentID,
		ReactionType: ev.ReactionType, UserID: ev.UserID, Changed: res.Changed, Count: res.Count, Stale: res.Stale,
	})
}

// seedCountsResponse is the seed's count shape: {"content_id":"Stew","reaction_count":{"fire":3}}.
type seedCountsResponse struct {
	ContentID     string           `json:"content_id"`
	ReactionCount map[string]int64 `json:"reaction_count"`
}

func (s *Server) seedCounts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("content_id")
	counts, err := s.reader.Counts(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": map[string]string{"detail": "Not Found"}})
		return
	}
	if err != nil {
		s.writeReadError(w, err)
		return
	}
	m := make(map[string]int64, len(counts))
	for _, c := range counts {
		m[c.ReactionType] = c.Count
	}
	writeJSON(w, http.StatusOK, seedCountsResponse{ContentID: id, ReactionCount: m})
}

// contentResponse is the native count shape of GET /api/v1/contents/{content_id}.
type contentResponse struct {
	ContentID string                `json:"content_id"`
	Total     int64                 `json:"total"` // sum of the counts
	Reactions []store.ReactionCount `json:"reactions"`
}

func (s *Server) contentCounts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("content_id")
	counts, err := s.reader.Counts(r.Context(), id)
	if s.readFailed(w, id, err) {
		return
	}
	resp := contentResponse{ContentID: id, Reactions: counts}
	for _, c := range counts {
		resp.Total += c.Count
	}
	writeJSON(w, http.StatusOK, resp)
}

// Paging limits of the members and contents routes.
const (
	defaultMembersLimit = 100
	maxMembersLimit     = 1000
)

// pageLimit reads ?limit= (default defaultMembersLimit, at most maxMembersLimit),
// answering a bad value itself; ok is false then.
func pageLimit(w http.ResponseWriter, r *http.Request) (limit int, ok bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultMembersLimit, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxMembersLimit {
		writeError(w, http.StatusBadRequest, string(ingest.CodeInvalidField), fmt.Sprintf("limit must be 1 to %d", maxMembersLimit))
		return 0, false
	}
	return n, true
}

// contentsResponse is one page of GET /api/v1/contents, with each content's counts.
type contentsResponse struct {
	Contents  []contentResponse `json:"contents"`
	NextAfter string            `json:"next_after,omitempty"` // pass as ?after= for the next page
}

func (s *Server) contents(w http.ResponseWriter, r *http.Request) {
	limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	ids, err := s.reader.Contents(r.Context(), q.Get("prefix"), q.Get("after"), limit)
	if err != nil {
		s.writeReadError(w, err)
		return
	}
	resp := contentsResponse{Contents: make([]contentResponse, 0, len(ids))}
	for _, id := range ids {
		counts, err := s.reader.Counts(r.Context(), id)
		if err != nil {
			continue // gone meanwhile
		}
		c := contentResponse{ContentID: id, Reactions: counts}
		for _, rc := range counts {
			c.Total += rc.Count
		}
		resp.Contents = append(resp.Contents, c)
	}
	if len(ids) == limit {
		resp.NextAfter = ids[len(ids)-1]
	}
	writeJSON(w, http.StatusOK, resp)
}

// membershipJSON is one (content, reaction) a user holds.
type membershipJSON struct {
	ContentID    string     `json:"content_id"`
	ReactionType string     `json:"reaction_type"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
}

// userMemberships serves GET /api/v1/users/{user_id}/memberships: where one user is
// engaged right now.
func (s *Server) userMemberships(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user_id")
	ms, err := s.reader.UserMemberships(r.Context(), user)
	if err != nil {
		s.writeReadError(w, err)
		return
	}
	out := make([]membershipJSON, len(ms))
	for i, m := range ms {
		out[i] = membershipJSON{ContentID: m.ContentID, ReactionType: m.ReactionType}
		if m.ExpiresAt != 0 {
			exp := time.UnixMilli(m.ExpiresAt).UTC()
			out[i].ExpiresAt = &exp
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "memberships": out})
}

type memberJSON struct {
	UserID      string     `json:"user_id"`
	RefreshedAt *time.Time `json:"refreshed_at,omitempty"` // last add; only for reactions with a TTL
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`   // when it ends unless refreshed
}

// membersResponse is one page of GET /api/v1/contents/{content_id}/reactions/{reaction_type}/members.
type membersResponse struct {
	ContentID    string       `json:"content_id"`
	ReactionType string       `json:"reaction_type"`
	Members      []memberJSON `json:"members"`
	NextAfter    string       `json:"next_after,omitempty"` // pass as ?after= for the next page
}

func (s *Server) members(w http.ResponseWriter, r *http.Request) {
	id, reaction := r.PathValue("content_id"), r.PathValue("reaction_type")
	q := r.URL.Query()
	limit, ok := pageLimit(w, r)
	if !ok {
		return
	}
	ms, err := s.reader.Members(r.Context(), id, reaction, q.Get("after"), limit)
	if s.readFailed(w, id, err) {
		return
	}
	var ttl time.Duration
	if s.opts.TTL != nil {
		ttl = s.opts.TTL(reaction)
	}
	resp := membersResponse{ContentID: id, ReactionType: reaction, Members: make([]memberJSON, len(ms))}
	for i, m := range ms {
		resp.Members[i].UserID = m.UserID
		if m.ExpiresAt != 0 {
			exp := time.UnixMilli(m.ExpiresAt).UTC()
			resp.Members[i].ExpiresAt = &exp
			if ttl > 0 {
				ref := exp.Add(-ttl)
				resp.Members[i].RefreshedAt = &ref
			}
		}
	}
	if len(ms) == limit {
		resp.NextAfter = ms[len(ms)-1].UserID
	}
	writeJSON(w, http.StatusOK, resp)
}

// readFailed answers a failed native read (404 for an unknown content) and reports
// whether it did.
func (s *Server) readFailed(w http.ResponseWriter, contentID string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("content %q has never held a reaction", contentID))
	default:
		s.writeReadError(w, err)
	}
	return true
}

func (s *Server) writeReadError(w http.ResponseWriter, err error) {
	s.log.Error("reading counts", "err", err)
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, "store_unavailable", "the store cannot answer right now")
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	checks := make(map[string]string, len(s.opts.Checks))
	ready, degraded := true, false
	for _, c := range s.opts.Checks {
		switch {
		case c.OK():
			checks[c.Name] = "ok"
		case c.Optional:
			checks[c.Name] = "down"
			degraded = true
		default:
			checks[c.Name] = "down"
			ready = false
		}
	}
	status, word := http.StatusOK, "ready"
	switch {
	case !ready:
		status, word = http.StatusServiceUnavailable, "not ready"
	case degraded:
		word = "degraded"
	}
	writeJSON(w, status, map[string]any{"status": word, "checks": checks})
}
