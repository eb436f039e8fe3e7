// Package arinatest starts a whole Arina daemon on loopback for end-to-end tests and
// reads its HTTP API. Helpers that need no daemon (waiting, certificates, ports,
// programs such as mosquitto, tmpfs) are in internal/testutil, so that tests of
// lower packages do not compile the whole daemon.
package arinatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/broker"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
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
			// What held the shutdown up is in the goroutines still running: say so
			// with the error, or a rare hang cannot be told from the next.
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Errorf("closing daemon: %v\ngoroutines:\n%s", err, buf)
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

// WaitFor is testutil.WaitFor.
//
// Deprecated: use testutil.WaitFor.
func WaitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	testutil.WaitFor(tb, timeout, fn)
}

// RequireToolsEnv is testutil.RequireToolsEnv.
//
// Deprecated: use testutil.RequireToolsEnv.
const RequireToolsEnv = testutil.RequireToolsEnv

// NeedProgram is testutil.NeedProgram.
//
// Deprecated: use testutil.NeedProgram.
func NeedProgram(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	return testutil.NeedProgram(tb, name, debianPackage)
}

// FreePort is testutil.FreePort.
//
// Deprecated: use testutil.FreePort.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return testutil.FreePort(tb)
}

// Certs is testutil.Certs.
//
// Deprecated: use testutil.Certs.
type Certs = testutil.Certs

// MakeCerts is testutil.MakeCerts.
//
// Deprecated: use testutil.MakeCerts.
func MakeCerts(tb testing.TB) *Certs {
	tb.Helper()
	return testutil.MakeCerts(tb)
}

// Mosquitto is testutil.Mosquitto.
//
// Deprecated: use testutil.Mosquitto.
type Mosquitto = testutil.Mosquitto

// StartMosquitto is testutil.StartMosquitto.
//
// Deprecated: use testutil.StartMosquitto.
func StartMosquitto(tb testing.TB, extraConf ...string) *Mosquitto {
	tb.Helper()
	return testutil.StartMosquitto(tb, extraConf...)
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
