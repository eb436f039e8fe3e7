package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/api"
	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/store"
)

// The tokens of the auth tests; the file holds only their hashes.
const (
	tokRead  = "read-token"
	tokWrite = "write-token"
	tokBoth  = "both-token"
)

// authTokensYAML is a tokens file with tokRead, tokWrite and tokBoth.
var authTokensYAML = fmt.Sprintf(`tokens:
  - {name: board, sha256: %s, scopes: [read]}
  - {name: line-app, sha256: %s, scopes: [write]}
  - {name: ops, sha256: %s, scopes: [write, read]}
`, auth.HashToken(tokRead), auth.HashToken(tokWrite), auth.HashToken(tokBoth))

// authHarness is the API with a tokens file, in front of a writer and a memory store.
type authHarness struct {
	*harness
	tokens *auth.TokensFile
	path   string
}

// MustStartWithTokens is MustStart with a tokens file holding authTokensYAML.
func MustStartWithTokens(tb testing.TB) *authHarness {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte(authTokensYAML), 0o600); err != nil {
		tb.Fatal(err)
	}
	tokens, err := auth.OpenTokensFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h := &harness{mem: store.NewMemory(), reg: prometheus.NewRegistry()}
	tb.Cleanup(func() {
		if err := h.mem.Close(); err != nil {
			tb.Errorf("closing store: %v", err)
		}
	})
	w, err := ingest.NewWriter(h.mem, ingest.Options{}, logger, h.reg)
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
	srv, err := api.New(api.Options{Gatherer: h.reg, Registerer: h.reg, Tokens: tokens,
		Checks: []api.Check{{Name: "writer", OK: w.Running}}}, h.mem, w, logger)
	if err != nil {
		tb.Fatalf("api.New: %v", err)
	}
	h.ts = httptest.NewServer(srv.Handler())
	tb.Cleanup(h.ts.Close)
	return &authHarness{harness: h, tokens: tokens, path: path}
}

// request sends one request with the Authorization header authz ("" for none).
func (h *authHarness) request(tb testing.TB, method, path, authz, body string) reply {
	tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestServer_Auth(t *testing.T) {
	t.Parallel()
	h := MustStartWithTokens(t)
	seed := eventJSON("add", "Stew", "fire", "Sam")
	batch := "[" + eventJSON("add", "Soup", "fire", "Ann") + "]"
	tests := []struct {
		name, method, path, authz, body string
		status                          int
		code                            string // error code, "" for a success
		challenge                       string // WWW-Authenticate, "" for none
	}{
		{"HealthzOpen", "GET", "/healthz", "", "", 200, "", ""},
		{"ReadyzOpen", "GET", "/readyz", "", "", 200, "", ""},
		{"HealthzBadTokenStillOpen", "GET", "/healthz", "Bearer nope", "", 200, "", ""},

		{"PostNoToken", "POST", "/api/v1/reaction", "", seed, 401, "unauthorized", `Bearer realm="arina"`},
		{"PostInvalidToken", "POST", "/api/v1/reaction", "Bearer nope", seed, 401, "unauthorized", `Bearer realm="arina", error="invalid_token"`},
		{"PostReadToken", "POST", "/api/v1/reaction", "Bearer " + tokRead, seed, 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="write"`},
		{"PostBasicAuth", "POST", "/api/v1/reaction", "Basic d3JpdGUtdG9rZW46", seed, 401, "unauthorized", `Bearer realm="arina"`},
		{"PostEmptyBearer", "POST", "/api/v1/reaction", "Bearer ", seed, 401, "unauthorized", `Bearer realm="arina"`},
		{"PostTokenWithSpace", "POST", "/api/v1/reaction", "Bearer " + tokWrite + " x", seed, 401, "unauthorized", `Bearer realm="arina"`},
		{"PostHashAsToken", "POST", "/api/v1/reaction", "Bearer " + auth.HashToken(tokWrite), seed, 401, "unauthorized", `Bearer realm="arina", error="invalid_token"`},
		{"BatchReadToken", "POST", "/api/v1/reactions", "Bearer " + tokRead, batch, 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="write"`},

		{"PostWriteToken", "POST", "/api/v1/reaction", "Bearer " + tokWrite, seed, 201, "", ""},
		{"PostLowercaseScheme", "POST", "/api/v1/reaction", "bearer " + tokBoth, seed, 201, "", ""},
		{"BatchWriteToken", "POST", "/api/v1/reactions", "Bearer " + tokWrite, batch, 200, "", ""},

		{"CountsNoToken", "GET", "/api/v1/reaction/reaction_counts/Stew", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"CountsWriteToken", "GET", "/api/v1/reaction/reaction_counts/Stew", "Bearer " + tokWrite, "", 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="read"`},
		{"CountsReadToken", "GET", "/api/v1/reaction/reaction_counts/Stew", "Bearer " + tokRead, "", 200, "", ""},
		{"SeedReadmeRoute", "GET", "/reaction/reactions_count/Stew", "Bearer " + tokBoth, "", 200, "", ""},
		{"NativeNoToken", "GET", "/api/v1/contents", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"NativeReadToken", "GET", "/api/v1/contents", "Bearer " + tokRead, "", 200, "", ""},
		// The board page holds no data: it asks for a token and sends it itself.
		{"PageNoToken", "GET", "/", "", "", 200, "", ""},
		{"PagePostNoToken", "POST", "/", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"StreamNoToken", "GET", "/api/v1/stream", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		// An EventSource cannot send headers: the stream alone takes ?access_token=.
		{"StreamInvalidQueryToken", "GET", "/api/v1/stream?access_token=nope", "", "", 401, "unauthorized", `Bearer realm="arina", error="invalid_token"`},
		{"StreamWriteQueryToken", "GET", "/api/v1/stream?access_token=" + tokWrite, "", "", 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="read"`},
		{"CountsQueryTokenIgnored", "GET", "/api/v1/reaction/reaction_counts/Stew?access_token=" + tokRead, "", "", 401, "unauthorized", `Bearer realm="arina"`},

		{"MetricsNoToken", "GET", "/metrics", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"MetricsWriteToken", "GET", "/metrics", "Bearer " + tokWrite, "", 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="read"`},
		{"MetricsReadToken", "GET", "/metrics", "Bearer " + tokRead, "", 200, "", ""},

		// Unknown routes and wrong methods need a token too: nothing is open by default.
		{"UnknownNoToken", "GET", "/nope", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"UnknownReadToken", "GET", "/nope", "Bearer " + tokRead, "", 404, "not_found", ""},
		{"WrongMethodNoToken", "DELETE", "/api/v1/reaction", "", "", 401, "unauthorized", `Bearer realm="arina"`},
		{"WrongMethodReadToken", "DELETE", "/api/v1/reaction", "Bearer " + tokRead, "", 403, "forbidden", `Bearer realm="arina", error="insufficient_scope", scope="write"`},
		{"WrongMethodWriteToken", "DELETE", "/api/v1/reaction", "Bearer " + tokWrite, "", 405, "method_not_allowed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.request(t, tt.method, tt.path, tt.authz, tt.body)
			if tt.code != "" {
				checkError(t, r, tt.status, tt.code)
			} else if r.status != tt.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tt.status, r.body)
			}
			if got := r.header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
		})
	}
}

// TestServer_AuthRefusedWriteNotApplied: a refused write is never applied, and every
// refusal is counted, with its route in arina_http_requests_total.
func TestServer_AuthRefusedWriteNotApplied(t *testing.T) {
	t.Parallel()
	h := MustStartWithTokens(t)
	body := eventJSON("add", "Stew", "fire", "Sam")
	for _, authz := range []string{"", "Bearer nope", "Bearer " + tokRead} {
		if r := h.request(t, "POST", "/api/v1/reaction", authz, body); r.status < 400 {
			t.Fatalf("POST with %q: %d", authz, r.status)
		}
	}
	if got := h.storeCounts(t, "Stew"); got != nil {
		t.Fatalf("a refused write was applied: %v", got)
	}
	for reason, want := range map[string]float64{"missing": 1, "invalid": 1, "forbidden": 1} {
		if got := h.metric(t, "arina_http_auth_failures_total", "reason", reason); got != want {
			t.Errorf("arina_http_auth_failures_total{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	if got := h.metric(t, "arina_http_requests_total", "route", "POST /api/v1/reaction", "code", "401"); got != 2 {
		t.Errorf("401s counted on route POST /api/v1/reaction: %v, want 2", got)
	}
	if got := h.metric(t, "arina_http_requests_total", "route", "POST /api/v1/reaction", "code", "403"); got != 1 {
		t.Errorf("403s counted on route POST /api/v1/reaction: %v, want 1", got)
	}
	if r := h.request(t, "POST", "/api/v1/reaction", "Bearer "+tokWrite, body); r.status != 201 {
		t.Fatalf("POST with the write token: %d %s", r.status, r.body)
	}
}

// TestServer_AuthReload: a reload of the tokens file applies to the next request; a
// broken file keeps the tokens in force.
func TestServer_AuthReload(t *testing.T) {
	t.Parallel()
	h := MustStartWithTokens(t)
	if r := h.request(t, "GET", "/api/v1/contents", "Bearer "+tokRead, ""); r.status != 200 {
		t.Fatalf("before reload: %d", r.status)
	}
	revoked := fmt.Sprintf("tokens:\n  - {name: ops, sha256: %s, scopes: [read]}\n", auth.HashToken(tokBoth))
	if err := os.WriteFile(h.path, []byte(revoked), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.tokens.Reload(); err != nil {
		t.Fatal(err)
	}
	checkError(t, h.request(t, "GET", "/api/v1/contents", "Bearer "+tokRead, ""), 401, "unauthorized")
	checkError(t, h.request(t, "POST", "/api/v1/reaction", "Bearer "+tokBoth, eventJSON("add", "a", "b", "c")), 403, "forbidden")

	if err := os.WriteFile(h.path, []byte("tokens: {"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.tokens.Reload(); err == nil {
		t.Fatal("a broken tokens file reloaded")
	}
	if r := h.request(t, "GET", "/api/v1/contents", "Bearer "+tokBoth, ""); r.status != 200 {
		t.Fatalf("after a failed reload: %d", r.status)
	}
}

// TestServer_NoTokensOpen: without a tokens file the API stays open and registers no
// auth metric.
func TestServer_NoTokensOpen(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	if r := h.do(t, "GET", "/metrics", "", ""); r.status != 200 || strings.Contains(string(r.body), "arina_http_auth_failures_total") {
		t.Fatalf("GET /metrics without tokens: %d", r.status)
	}
	h.mustPost(t, "add", "Stew", "fire", "Sam")
}
