package test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
)

type sseEvent struct {
	name string
	data map[string]any
}

// mustStream opens GET path on the API and returns a channel of its events.
func mustStream(t *testing.T, baseURL, path string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		cancel()
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, ct)
	}
	events := make(chan sseEvent, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.data)
			case line == "" && ev.name != "":
				events <- ev
				ev = sseEvent{}
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return events
}

func nextEvent(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

// TestStream_SnapshotThenChanges: the stream starts with the watched contents' counts,
// then sends every change of them, and nothing of other contents.
func TestStream_SnapshotThenChanges(t *testing.T) {
	d := arinatest.Start(t)
	c := MustConnect311(t, d.MQTTAddr, "stream-pub")
	MustPublish(t, c, "kitchen/Stew/fire", 1, "add sam")
	MustPublish(t, c, "kitchen/Stew/fire", 1, "add ann")

	events := mustStream(t, d.HTTPURL, "/api/v1/stream?content=Stew&content=Soup")
	ev := nextEvent(t, events)
	if ev.name != "snapshot" || ev.data["content_id"] != "Stew" || ev.data["reaction_count"].(map[string]any)["fire"] != 2.0 {
		t.Fatalf("first event = %+v, want Stew's snapshot with fire 2", ev)
	}
	if ev := nextEvent(t, events); ev.name != "ready" { // Soup was never seen: no snapshot
		t.Fatalf("event = %+v, want ready", ev)
	}
	MustPublish(t, c, "kitchen/Pie/fire", 1, "add sam") // not watched
	MustPublish(t, c, "kitchen/Stew/fire", 1, "remove ann")
	MustPublish(t, c, "kitchen/Stew/fire", 1, "remove ann") // no change: no event
	MustPublish(t, c, "kitchen/Soup/yum", 1, "add kim")
	for _, want := range []struct {
		content, action, user string
		count                 float64
	}{{"Stew", "remove", "ann", 1}, {"Soup", "add", "kim", 1}} {
		ev := nextEvent(t, events)
		if ev.name != "change" || ev.data["content_id"] != want.content || ev.data["action"] != want.action ||
			ev.data["user_id"] != want.user || ev.data["count"] != want.count {
			t.Fatalf("event = %+v, want %s %s on %s, count %v", ev, want.action, want.user, want.content, want.count)
		}
	}
}

// TestStream_EndsAtShutdown: an open stream does not hold the daemon's shutdown.
func TestStream_EndsAtShutdown(t *testing.T) {
	d := arinatest.Start(t)
	events := mustStream(t, d.HTTPURL, "/api/v1/stream")
	if ev := nextEvent(t, events); ev.name != "ready" {
		t.Fatalf("event = %+v, want ready (no contents yet)", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := d.Close(ctx); err != nil {
		t.Fatalf("Close with an open stream: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v with an open stream", took)
	}
	for range events { // the stream ends
	}
}

// TestQueries_ContentsAndUser: the contents page with a prefix, and where a user is.
func TestQueries_ContentsAndUser(t *testing.T) {
	d := arinatest.Start(t)
	c := MustConnect311(t, d.MQTTAddr, "queries")
	for _, p := range [][2]string{{"kitchen/line-1/busy", "add sam"}, {"kitchen/line-2/busy", "add sam"},
		{"kitchen/line-3/busy", "add ann"}, {"kitchen/oven/hot", "add sam"}, {"kitchen/line-2/busy", "remove sam"}} {
		MustPublish(t, c, p[0], 1, p[1])
	}
	get := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(d.HTTPURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var page struct {
		Contents []struct {
			ContentID string `json:"content_id"`
			Total     int64  `json:"total"`
		} `json:"contents"`
		NextAfter string `json:"next_after"`
	}
	get("/api/v1/contents?prefix=line-&limit=2", &page)
	if len(page.Contents) != 2 || page.Contents[0].ContentID != "line-1" || page.Contents[1].ContentID != "line-2" ||
		page.Contents[1].Total != 0 || page.NextAfter != "line-2" {
		t.Fatalf("first page = %+v", page)
	}
	page.Contents, page.NextAfter = nil, ""
	get("/api/v1/contents?prefix=line-&limit=2&after=line-2", &page)
	if len(page.Contents) != 1 || page.Contents[0].ContentID != "line-3" || page.NextAfter != "" {
		t.Fatalf("second page = %+v", page)
	}
	var user struct {
		Memberships []struct {
			ContentID    string `json:"content_id"`
			ReactionType string `json:"reaction_type"`
		} `json:"memberships"`
	}
	get("/api/v1/users/sam/memberships", &user)
	var got []string
	for _, m := range user.Memberships {
		got = append(got, m.ContentID+"/"+m.ReactionType)
	}
	if strings.Join(got, ",") != "line-1/busy,oven/hot" {
		t.Fatalf("sam is at %v, want line-1/busy and oven/hot", got)
	}
}
