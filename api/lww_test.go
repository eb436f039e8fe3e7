package api_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestServer_StaleEvents: with ts, the newest event per user wins; an older one is
// accepted (201) but changes nothing and says "stale": true, as does one older than
// the tombstone TTL.
func TestServer_StaleEvents(t *testing.T) {
	t.Parallel()
	h := MustStart(t, harnessOptions{})
	now := time.Now().UnixMilli()
	post := func(action string, ts int64) (changed, stale bool, count int64) {
		t.Helper()
		r := h.do(t, "POST", "/api/v1/reaction", "application/json",
			fmt.Sprintf(`{"type":"reaction","action":%q,"content_id":"Line","reaction_type":"busy","user_id":"s1","ts":%d}`, action, ts))
		if r.status != 201 {
			t.Fatalf("POST %s ts %d: %d %s", action, ts, r.status, r.body)
		}
		var out struct {
			Changed bool  `json:"changed"`
			Stale   bool  `json:"stale"`
			Count   int64 `json:"count"`
		}
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out.Changed, out.Stale, out.Count
	}
	if changed, stale, count := post("add", now); !changed || stale || count != 1 {
		t.Fatalf("add at now: changed %v stale %v count %d", changed, stale, count)
	}
	if changed, stale, count := post("remove", now-1000); changed || !stale || count != 1 {
		t.Fatalf("remove older than the add: changed %v stale %v count %d, want stale and count 1", changed, stale, count)
	}
	if changed, stale, _ := post("remove", now-48*time.Hour.Milliseconds()); changed || !stale {
		t.Fatalf("remove older than the tombstone TTL: changed %v stale %v, want stale", changed, stale)
	}
	if changed, stale, count := post("remove", now+1); !changed || stale || count != 0 {
		t.Fatalf("remove newer than the add: changed %v stale %v count %d", changed, stale, count)
	}
	if changed, stale, count := post("add", now); changed || !stale || count != 0 {
		t.Fatalf("late add older than the removal: changed %v stale %v count %d, want stale: a removal is not resurrected", changed, stale, count)
	}
	if got := h.metric(t, "arina_events_stale_total", "source", "http"); got != 3 {
		t.Errorf("arina_events_stale_total{source=http} = %v, want 3", got)
	}
}
