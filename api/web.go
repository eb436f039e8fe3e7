package api

import (
	_ "embed"
	"net/http"
)

// indexHTML is the live floor board: contents × reactions with counts, recent
// activity and event rate, fed by GET /api/v1/stream. Everything is in this one file
// (no CDN), so it works on a floor without internet access.
//
//go:embed web/index.html
var indexHTML []byte

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(indexHTML)
}
