package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"go.yaml.in/yaml/v3"
)

// openapiYAML is the hand-written OpenAPI 3 description of every route (openapi.yaml).
// openapi_test.go checks real responses against it and that it names every route.
//
//go:embed openapi.yaml
var openapiYAML []byte

// openapiDoc converts openapiYAML to JSON once.
var openapiDoc = sync.OnceValues(func() ([]byte, error) {
	var v any
	if err := yaml.Unmarshal(openapiYAML, &v); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	v, err := jsonValue(v)
	if err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	return json.Marshal(v)
})

// jsonValue makes a decoded YAML value encodable as JSON: mappings with keys that
// are not all strings (a status code written bare, 200:) become string-keyed objects.
func jsonValue(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range t {
			c, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	case string, bool, int, int64, uint64, float64, nil:
		return t, nil
	}
	return nil, fmt.Errorf("a %T value has no JSON form; quote it", v)
}

// openapi serves GET /api/v1/openapi.json. It needs no token (openPaths): the
// document holds no data, only what the README says, and tools fetch it unattended.
func (s *Server) openapi(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.openapiJSON)
}
