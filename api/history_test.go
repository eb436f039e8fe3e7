package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/arina-dev/arina/feed"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/testutil"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// mustHistory starts a History following a feed the writer publishes to (as the
// daemon wires them), stopped at cleanup.
func mustHistory(tb testing.TB, io *ingest.Options, ho history.Options) (*feed.Hub, *history.History) {
	tb.Helper()
	hub := feed.New(0)
	io.OnChanges = hub.Publish
	h := history.New(ho)
	h.Start(hub)
	tb.Cleanup(func() { hub.Close(); h.Close() })
	return hub, h
}

// t0 is on a 10s step boundary.
var t0 = time.UnixMilli(1_800_000_000_000)

func startWithHistory(t *testing.T) (*harness, *fakeClock) {
	clk := &fakeClock{t: t0}
	h := MustStart(t, harnessOptions{history: &history.Options{Resolution: 10 * time.Second, Window: time.Minute, Now: clk.Now}})
	return h, clk
}

// waitJSON polls GET path until its 200 body equals want (as JSON).
func (h *harness) waitJSON(t *testing.T, path, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		r := h.do(t, http.MethodGet, path, "", "")
		var got any
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
		if a, b := mustJSON(got), mustJSON(w); a != b {
			return fmt.Errorf("GET %s = %s, want %s", path, a, b)
		}
		return nil
	})
}

func TestServer_ContentHistory(t *testing.T) {
	h, clk := startWithHistory(t)
	h.mustPost(t, "add", "Stew", "fire", "sam")
	h.mustPost(t, "add", "Stew", "fire", "ann")
	h.mustPost(t, "add", "Stew", "yum", "kim")
	h.mustPost(t, "remove", "Stew", "yum", "kim")
	const at0 int64 = 1_800_000_000_000
	h.waitJSON(t, "/api/v1/contents/Stew/history", fmt.Sprintf(`{"content_id":"Stew","resolution_ms":10000,"window_ms":60000,"reactions":[
		{"reaction_type":"fire","count":2,"start_count":0,"samples":[{"at":%d,"count":2}]},
		{"reaction_type":"yum","count":0,"start_count":0,"samples":[{"at":%[1]d,"count":0}]}]}`, at0))

	clk.Add(10 * time.Second)
	h.mustPost(t, "remove", "Stew", "fire", "sam")
	h.waitJSON(t, "/api/v1/contents/Stew/history", fmt.Sprintf(`{"content_id":"Stew","resolution_ms":10000,"window_ms":60000,"reactions":[
		{"reaction_type":"fire","count":1,"start_count":0,"samples":[{"at":%d,"count":2},{"at":%d,"count":1}]},
		{"reaction_type":"yum","count":0,"start_count":0,"samples":[{"at":%[1]d,"count":0}]}]}`, at0, at0+10000))

	// A minute on, nothing changed within the window: the reactions are still listed,
	// with their counts and no samples.
	clk.Add(time.Minute)
	h.waitJSON(t, "/api/v1/contents/Stew/history", `{"content_id":"Stew","resolution_ms":10000,"window_ms":60000,"reactions":[
		{"reaction_type":"fire","count":1,"start_count":1,"samples":[]},
		{"reaction_type":"yum","count":0,"start_count":0,"samples":[]}]}`)

	r := h.do(t, http.MethodGet, "/api/v1/contents/Nope/history", "", "")
	checkError(t, r, http.StatusNotFound, "not_found")
	r = h.do(t, http.MethodPost, "/api/v1/contents/Stew/history", "application/json", "{}")
	checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestServer_Activity(t *testing.T) {
	h, clk := startWithHistory(t)
	const at0 = 1_800_000_000_000
	samples := func(counts ...int) string {
		s := ""
		for i, n := range counts {
			if i > 0 {
				s += ","
			}
			s += fmt.Sprintf(`{"at":%d,"changes":%d}`, at0+int64(i-5)*10000+clkOffset(clk), n)
		}
		return s
	}
	h.waitJSON(t, "/api/v1/activity", `{"resolution_ms":10000,"window_ms":60000,"total":0,"samples":[`+samples(0, 0, 0, 0, 0, 0)+`]}`)
	h.mustPost(t, "add", "Stew", "fire", "sam")
	h.mustPost(t, "add", "Stew", "fire", "sam") // changes nothing: not counted
	h.mustPost(t, "add", "Soup", "yum", "ann")
	h.waitJSON(t, "/api/v1/activity", `{"resolution_ms":10000,"window_ms":60000,"total":2,"samples":[`+samples(0, 0, 0, 0, 0, 2)+`]}`)
	clk.Add(20 * time.Second)
	h.mustPost(t, "remove", "Soup", "yum", "ann")
	h.waitJSON(t, "/api/v1/activity", `{"resolution_ms":10000,"window_ms":60000,"total":3,"samples":[`+samples(0, 0, 0, 2, 0, 1)+`]}`)

	r := h.do(t, http.MethodDelete, "/api/v1/activity", "", "")
	checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
}

// clkOffset is how far the clock moved from t0, in ms.
func clkOffset(c *fakeClock) int64 { return c.Now().Sub(t0).Milliseconds() }

func TestServer_History_Disabled(t *testing.T) {
	h := MustStart(t, harnessOptions{})
	h.mustPost(t, "add", "Stew", "fire", "sam")
	for _, path := range []string{"/api/v1/contents/Stew/history", "/api/v1/activity"} {
		checkError(t, h.do(t, http.MethodGet, path, "", ""), http.StatusNotFound, "not_found")
	}
}

// TestServer_History_Scopes: the history routes need the read scope, as the counts do.
func TestServer_History_Scopes(t *testing.T) {
	h := MustStartWithTokens(t)
	for _, path := range []string{"/api/v1/contents/Stew/history", "/api/v1/activity"} {
		checkError(t, h.request(t, http.MethodGet, path, "", ""), http.StatusUnauthorized, "unauthorized")
		checkError(t, h.request(t, http.MethodGet, path, "Bearer "+tokWrite, ""), http.StatusForbidden, "forbidden")
		// Past authentication: this harness has no history, so the route's own 404.
		checkError(t, h.request(t, http.MethodGet, path, "Bearer "+tokRead, ""), http.StatusNotFound, "not_found")
	}
}

// TestServer_Stream_Batch: with ?batch=1 the stream sends one "changes" event, a JSON
// array, per writer batch (the page asks for it to keep up with busy floors).
func TestServer_Stream_Batch(t *testing.T) {
	h, _ := startWithHistory(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.ts.URL+"/api/v1/stream?batch=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	next := func(event string) string { // the data of the next event of that name
		t.Helper()
		for name := ""; sc.Scan(); {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && name == event:
				return strings.TrimPrefix(line, "data: ")
			}
		}
		t.Fatalf("stream ended before a %q event: %v", event, sc.Err())
		return ""
	}
	next("ready")
	body := `[` + eventJSON("add", "Stew", "fire", "sam") + `,` + eventJSON("add", "Soup", "yum", "ann") + `]`
	if r := h.do(t, http.MethodPost, "/api/v1/reactions", "application/json", body); r.status != http.StatusOK {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	var got []map[string]any
	for len(got) < 2 { // the two may come in one writer batch or two
		var evs []map[string]any
		if err := json.Unmarshal([]byte(next("changes")), &evs); err != nil || len(evs) == 0 {
			t.Fatalf("changes event: %v %v", evs, err)
		}
		got = append(got, evs...)
	}
	if got[0]["content_id"] != "Stew" || got[0]["action"] != "add" || got[1]["content_id"] != "Soup" || got[1]["count"] != 1.0 {
		t.Fatalf("changes %v", got)
	}
}
