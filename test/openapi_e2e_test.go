package test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/testutil"
)

// TestOpenAPI_Daemon checks the answers of a whole daemon (broker, writer, store,
// change feed and history wired as arina runs) against the OpenAPI document it serves,
// after an event over MQTT and one over HTTP. api/openapi_test.go drives every route
// and error of the API package; this checks the daemon's own wiring (its readiness
// checks, its metrics, what MQTT ingest leaves behind) against the same document.
func TestOpenAPI_Daemon(t *testing.T) {
	pub := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	d := arinatest.Start(t)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	get := func(method, path, ctype, body string) (*http.Request, *http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, d.HTTPURL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return req, resp, b
	}
	_, resp, body := get(http.MethodGet, "/api/v1/openapi.json", "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", resp.StatusCode, body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	// The page is checked as a string (api/openapi_test.go registers the same).
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	router, err := legacy.NewRouter(doc) // validates the document
	if err != nil {
		t.Fatal(err)
	}

	host, port, _ := strings.Cut(d.MQTTAddr, ":")
	if out, err := exec.Command(pub, "-h", host, "-p", port, "-q", "1", "-t", "kitchen/Stew/fire", "-m", "add Sam").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	// A QoS 1 PUBACK comes once the event is applied.
	if m := arinatest.Members(t, d.HTTPURL, "Stew", "fire"); len(m) != 1 || m[0] != "Sam" {
		t.Fatalf("members after the MQTT publish: %v", m)
	}
	for _, c := range []struct {
		method, path, ctype, body string
		want                      int
	}{
		{"POST", "/api/v1/reaction", "application/json", `{"type":"reaction","action":"add","content_id":"Stew","reaction_type":"yum","user_id":"Bo"}`, 201},
		{"POST", "/api/v1/reaction", "application/json", `{"type":"reaction","action":"like"}`, 400},
		{"POST", "/api/v1/reactions", "application/x-ndjson", `{"type":"reaction","action":"add","content_id":"Soup","reaction_type":"fire","user_id":"Sam"}` + "\n", 200},
		{"GET", "/api/v1/reaction/reaction_counts/Stew", "", "", 200},
		{"GET", "/api/v1/reaction/reactions_count/Nope", "", "", 404},
		{"GET", "/reaction/reactions_count/Stew", "", "", 200},
		{"GET", "/api/v1/contents", "", "", 200},
		{"GET", "/api/v1/contents/Stew", "", "", 200},
		{"GET", "/api/v1/users/Sam/memberships", "", "", 200},
		{"GET", "/api/v1/contents/Stew/reactions/fire/members", "", "", 200},
		{"GET", "/api/v1/contents/Stew/history", "", "", 200},
		{"GET", "/api/v1/activity", "", "", 200},
		{"GET", "/", "", "", 200},
		{"GET", "/healthz", "", "", 200},
		{"GET", "/readyz", "", "", 200},
		{"GET", "/metrics", "", "", 200},
	} {
		req, resp, body := get(c.method, c.path, c.ctype, c.body)
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d %.300s, want %d", c.method, c.path, resp.StatusCode, body, c.want)
			continue
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: %v", c.method, c.path, err)
			continue
		}
		err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Body:                   io.NopCloser(bytes.NewReader(body)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		})
		if err != nil {
			t.Errorf("%s %s: %d %.300s: not as documented: %v", c.method, c.path, resp.StatusCode, body, err)
		}
	}
}
