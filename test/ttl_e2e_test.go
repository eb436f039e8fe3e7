package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// TestTTL_DoneScenario: with reactions [{type: active, ttl: 2s}], `add sam` on
// kitchen/stove-3/active counts 1, and about 2s later 0 with nothing published; the
// members route shows when the membership was refreshed and when it expires.
func TestTTL_DoneScenario(t *testing.T) {
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.Ingest.TTL = func(r string) time.Duration {
			if r == "active" {
				return 2 * time.Second
			}
			return 0
		}
	})
	c := MustConnect311(t, d.MQTTAddr, "badge-reader")
	before := time.Now()
	MustPublish(t, c, "kitchen/stove-3/active", 1, "add sam")
	if got, _ := arinatest.Counts(t, d.HTTPURL, "stove-3"); got["active"] != 1 {
		t.Fatalf("active = %d right after the PUBACK, want 1", got["active"])
	}

	resp, err := http.Get(d.HTTPURL + "/api/v1/contents/stove-3/reactions/active/members")
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Members []struct {
			UserID      string    `json:"user_id"`
			RefreshedAt time.Time `json:"refreshed_at"`
			ExpiresAt   time.Time `json:"expires_at"`
		} `json:"members"`
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	resp.Body.Close()
	if err != nil || len(page.Members) != 1 || page.Members[0].UserID != "sam" {
		t.Fatalf("members = %+v, %v; want sam", page, err)
	}
	m := page.Members[0]
	if m.ExpiresAt.Sub(m.RefreshedAt) != 2*time.Second || m.RefreshedAt.Before(before.Add(-time.Second)) || m.RefreshedAt.After(time.Now()) {
		t.Fatalf("sam refreshed %v, expires %v; want refreshed now and expiring 2s later", m.RefreshedAt, m.ExpiresAt)
	}

	testutil.WaitFor(t, 5*time.Second, func() error {
		if got, _ := arinatest.Counts(t, d.HTTPURL, "stove-3"); got["active"] != 0 {
			return fmt.Errorf("active = %d, want 0 once the TTL passed", got["active"])
		}
		return nil
	})
	if elapsed := time.Since(before); elapsed < 2*time.Second {
		t.Fatalf("expired after %v, before its 2s TTL", elapsed)
	}
	// The writer counts an expiry after the store applied it, and a count query does
	// not wait for that: the count may show 0 before the metric moves.
	testutil.WaitFor(t, 5*time.Second, func() error {
		if got := metric(t, d.HTTPURL, `arina_memberships_expired_total{reaction="active"}`); got != 1 {
			return fmt.Errorf("arina_memberships_expired_total{reaction=\"active\"} = %v, want 1", got)
		}
		return nil
	})
}
