package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/arina-dev/arina/auth"
)

// Reasons a request is refused, the label values of arina_http_auth_failures_total
// and the stable error codes of the answers.
const (
	authMissing   = "missing"   // no bearer token: 401
	authInvalid   = "invalid"   // a token in no entry of the tokens file: 401
	authForbidden = "forbidden" // a valid token without the scope the route needs: 403

	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
)

// openPaths answer without a token: probes must work without credentials, and the
// board page and the OpenAPI document hold no data (the page asks for a token and
// sends it with its requests).
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/": true, "/api/v1/openapi.json": true}

// streamPath may carry its token as ?access_token= (RFC 6750 2.3): a browser's
// EventSource cannot send an Authorization header.
const streamPath = "/api/v1/stream"

// initAuth creates (and registers, with a Registerer) the auth failure counter when a
// tokens file is configured.
func (s *Server) initAuth() error {
	if s.opts.Tokens == nil {
		return nil
	}
	s.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "arina_http_auth_failures_total",
		Help: "HTTP requests refused for want of a valid bearer token (missing, invalid) or of its scope (forbidden).",
	}, []string{"reason"})
	for _, r := range []string{authMissing, authInvalid, authForbidden} {
		s.authFailures.WithLabelValues(r)
	}
	if s.opts.Registerer != nil {
		if err := s.opts.Registerer.Register(s.authFailures); err != nil {
			return fmt.Errorf("registering http auth metrics: %w", err)
		}
	}
	return nil
}

// requiredScope returns the scope a request needs: none for openPaths (GET, HEAD),
// read for GET and HEAD (the API, the stream, /metrics), write for anything else
// (POST routes). Routes added later need a token too: the default is
// closed.
func requiredScope(r *http.Request) (need auth.Scopes, open bool) {
	if openPaths[r.URL.Path] && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		return 0, true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return auth.ScopeRead, false
	}
	return auth.ScopeWrite, false
}

// bearerToken returns the token of an "Authorization: Bearer <token>" header (the
// scheme in any case, RFC 6750).
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

// authenticate wraps the routes with bearer token checks when a tokens file is
// configured (see requiredScope). The token is hashed and compared with every entry
// in constant time (auth.Tokens.Check), against the file version in force, so a
// reload applies to the next request. A refusal is a JSON error with code
// unauthorized (401, with WWW-Authenticate: Bearer) or forbidden (403).
func (s *Server) authenticate(mux *http.ServeMux) http.Handler {
	if s.opts.Tokens == nil {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need, open := requiredScope(r)
		if open {
			mux.ServeHTTP(w, r)
			return
		}
		bearer, ok := bearerToken(r)
		if !ok && r.URL.Path == streamPath && r.Method == http.MethodGet {
			bearer = r.URL.Query().Get("access_token")
			ok = bearer != ""
		}
		if !ok {
			s.refuseAuth(w, r, mux, authMissing, need, "")
			return
		}
		name, scopes, ok := s.opts.Tokens.Check(bearer)
		switch {
		case !ok:
			s.refuseAuth(w, r, mux, authInvalid, need, "")
		case !scopes.Has(need):
			s.refuseAuth(w, r, mux, authForbidden, need, name)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// refuseAuth answers a request refused by authenticate and counts it.
func (s *Server) refuseAuth(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, reason string, need auth.Scopes, tokenName string) {
	_, r.Pattern = mux.Handler(r) // for the route label of arina_http_requests_total
	s.authFailures.WithLabelValues(reason).Inc()
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("http request refused", "reason", reason, "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "token", tokenName, "scope", need.String())
	}
	switch reason {
	case authForbidden:
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="arina", error="insufficient_scope", scope=%q`, need.String()))
		writeError(w, http.StatusForbidden, codeForbidden, fmt.Sprintf("this token does not have the %s scope, which %s %s needs", need, r.Method, r.URL.Path))
	case authInvalid:
		w.Header().Set("WWW-Authenticate", `Bearer realm="arina", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, "the bearer token is not valid")
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="arina"`)
		writeError(w, http.StatusUnauthorized, codeUnauthorized, fmt.Sprintf("a bearer token with the %s scope is required (Authorization: Bearer <token>)", need))
	}
}
