package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/arina-dev/arina/internal/daemon"
)

// The log's first line, /metrics and `arina version` say which build runs.
func TestRun_ServeSaysItsBuild(t *testing.T) {
	t.Parallel()
	s := MustServe(t, map[string]string{
		"ARINA_MQTT_LISTEN":      "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":      "127.0.0.1:0",
		"ARINA_STORE_DURABILITY": "none",
		"ARINA_LOG_FORMAT":       "json",
	}, "serve")
	want := currentBuild()

	first, _, _ := strings.Cut(s.Stderr.String(), "\n")
	var line struct {
		Msg, Version, Go string
	}
	if err := json.Unmarshal([]byte(first), &line); err != nil || line.Msg != "arina starting" ||
		line.Version != want.Version || line.Go != want.GoVersion {
		t.Fatalf("first log line = %s (%v); want msg %q with version %q and go %q", first, err, "arina starting", want.Version, want.GoVersion)
	}

	resp, err := http.Get("http://" + s.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^arina_build_info\{(.*)\} 1$`).FindSubmatch(body)
	if m == nil || !strings.Contains(string(m[1]), `version="`+want.Version+`"`) ||
		!strings.Contains(string(m[1]), `goversion="`+want.GoVersion+`"`) {
		t.Fatalf("/metrics arina_build_info = %q, want labels version=%q goversion=%q", m, want.Version, want.GoVersion)
	}
}

func TestBuildLine(t *testing.T) {
	for _, tc := range []struct {
		b    daemon.Build
		want string
	}{
		{daemon.Build{Version: "v0.3.0", Commit: "0123456789ab", Date: "2026-12-06T23:00:00Z", GoVersion: "go1.26.8"},
			"v0.3.0, commit 0123456789ab, built 2026-12-06T23:00:00Z, go1.26.8"},
		{daemon.Build{Version: "(devel)", Commit: "0123456789ab", Modified: true, GoVersion: "go1.26.8"},
			"(devel), commit 0123456789ab-dirty, go1.26.8"},
		{daemon.Build{Version: "(devel)", GoVersion: "go1.26.8"}, "(devel), go1.26.8"},
	} {
		if got := buildLine(tc.b); got != tc.want {
			t.Errorf("buildLine(%+v) = %q, want %q", tc.b, got, tc.want)
		}
	}
}
