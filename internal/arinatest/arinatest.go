// Package arinatest starts a whole Arina daemon on loopback for end-to-end tests, and
// holds the helpers those tests share.
package arinatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/daemon"
)

// Daemon is a running daemon and the addresses it is bound to.
type Daemon struct {
	*daemon.Daemon
	MQTTAddr string // host:port of the MQTT listener
	HTTPURL  string // http://host:port of the API
}

// Start starts a daemon with the broker and API on 127.0.0.1:0 and a memory store,
// after letting each option function adjust the options. The daemon is shut down by
// t.Cleanup (tests may Close it earlier themselves).
func Start(tb testing.TB, opts ...func(*daemon.Options)) *Daemon {
	tb.Helper()
	o := daemon.Options{
		MQTT: broker.Options{Listen: "127.0.0.1:0", TopicPrefix: "kitchen"},
	}
	o.HTTP.Listen = "127.0.0.1:0"
	for _, f := range opts {
		f(&o)
	}
	tw := &testWriter{tb: tb}
	logger := slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := daemon.Start(o, logger)
	if err != nil {
		tw.stop()
		tb.Fatalf("starting daemon: %v", err)
	}
	tb.Cleanup(func() {
		defer tw.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			tb.Errorf("closing daemon: %v", err)
		}
	})
	return &Daemon{Daemon: d, MQTTAddr: d.MQTTAddr(), HTTPURL: "http://" + d.HTTPAddr()}
}

// testWriter sends log lines to t.Log until stop: mochi may log from goroutines its
// Close does not wait for, and t.Log after the test ended is a race (and a panic).
type testWriter struct {
	tb      testing.TB
	mu      sync.Mutex
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.tb.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// WaitFor calls fn until it returns nil, failing the test with fn's last error if that
// does not happen within timeout.
func WaitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	interval := time.Millisecond
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(interval)
		interval = min(interval*2, 50*time.Millisecond)
	}
}

// RequireToolsEnv is the environment variable that turns skips for missing programs
// into failures; .ci/run sets it.
const RequireToolsEnv = "ARINA_REQUIRE_TOOLS"

// NeedProgram returns the path of an external program the test needs. When it is not
// installed the test is skipped with a message saying how to install it, or fails when
// ARINA_REQUIRE_TOOLS is set.
func NeedProgram(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not installed (apt-get install %s)", name, debianPackage)
	if os.Getenv(RequireToolsEnv) != "" {
		tb.Fatalf("%s, and %s is set", msg, RequireToolsEnv)
	}
	tb.Skip(msg)
	return ""
}

// Counts fetches the seed's count route for content and returns its reaction_count
// map and the HTTP status.
func Counts(tb testing.TB, baseURL, content string) (map[string]int64, int) {
	tb.Helper()
	resp, err := http.Get(baseURL + "/api/v1/reaction/reaction_counts/" + url.PathEscape(content))
	if err != nil {
		tb.Fatalf("GET counts: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var out struct {
		ContentID     string           `json:"content_id"`
		ReactionCount map[string]int64 `json:"reaction_count"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		tb.Fatalf("decoding counts %s: %v", body, err)
	}
	if out.ContentID != content {
		tb.Fatalf("counts content_id = %q, want %q", out.ContentID, content)
	}
	return out.ReactionCount, resp.StatusCode
}

// Members fetches every member of (content, reaction), following the pages of the
// members route, and returns their user ids in order.
func Members(tb testing.TB, baseURL, content, reaction string) []string {
	tb.Helper()
	var users []string
	after := ""
	for {
		u := fmt.Sprintf("%s/api/v1/contents/%s/reactions/%s/members?limit=1000&after=%s",
			baseURL, url.PathEscape(content), url.PathEscape(reaction), url.QueryEscape(after))
		resp, err := http.Get(u)
		if err != nil {
			tb.Fatalf("GET members: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			tb.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		var page struct {
			Members []struct {
				UserID string `json:"user_id"`
			} `json:"members"`
			NextAfter string `json:"next_after"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			tb.Fatalf("decoding members %s: %v", body, err)
		}
		for _, m := range page.Members {
			users = append(users, m.UserID)
		}
		if page.NextAfter == "" {
			return users
		}
		after = page.NextAfter
	}
}
