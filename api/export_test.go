package api

// Patterns returns the mux patterns of s's routes, for openapi_test.go.
func Patterns(s *Server) []string { return append([]string(nil), s.patterns...) }
