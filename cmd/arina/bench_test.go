package main

import (
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/arina-dev/arina/internal/testutil"
)

// benchContents lists every content id of the daemon's store, through its API.
func benchContents(tb testing.TB, httpAddr string) []string {
	tb.Helper()
	resp, body, err := apiGet(tb.Context(), "http://"+httpAddr+"/api/v1/contents?limit=1000", 16<<20)
	if err != nil || resp.StatusCode != 200 {
		tb.Fatalf("GET contents = %v, %v", resp, err)
	}
	var page struct {
		Contents []struct {
			ContentID string `json:"content_id"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		tb.Fatal(err)
	}
	var ids []string
	for _, c := range page.Contents {
		ids = append(ids, c.ContentID)
	}
	return ids
}

// TestRun_BenchStoreCheck checks that arina bench cannot put its fake events into a
// store that holds real data by accident: it asks the daemon's API first and refuses,
// publishing nothing, unless --no-store-check says so; against a daemon of its own it
// runs, again and again, and writes only contents starting with --content-prefix.
func TestRun_BenchStoreCheck(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ARINA_MQTT_LISTEN": "127.0.0.1:0", "ARINA_HTTP_LISTEN": "127.0.0.1:0", "ARINA_STORE_DURABILITY": "none"}
	bench := func(extra ...string) (string, error) {
		args := append([]string{"bench", "--events", "50", "--publishers", "2", "--contents", "5", "--users", "5"}, extra...)
		stdout, _, err := MustRun(t, nil, args...)
		return stdout, err
	}

	t.Run("RealData", func(t *testing.T) {
		t.Parallel()
		s := MustServe(t, env, "serve")
		if out, _, err := MustRun(t, nil, "pub", "--broker", s.MQTTAddr, "--content", "Stew", "--reaction", "fire", "--user", "Sam"); err != nil {
			t.Fatalf("pub = %q, %v", out, err)
		}
		_, err := bench("--broker", s.MQTTAddr, "--http", s.HTTPAddr)
		if !errors.Is(err, errStoreCheck) || !strings.Contains(err.Error(), `"Stew"`) || !strings.Contains(err.Error(), "--no-store-check") {
			t.Fatalf("bench = %v, want a refusal naming Stew and --no-store-check", err)
		}
		// The configuration's own daemon (no --broker, no --http) is checked too.
		clientEnv := map[string]string{"ARINA_MQTT_LISTEN": s.MQTTAddr, "ARINA_HTTP_LISTEN": s.HTTPAddr}
		if _, _, err := MustRun(t, clientEnv, "bench", "--events", "50"); !errors.Is(err, errStoreCheck) {
			t.Fatalf("bench with the configuration's addresses = %v, want a refusal", err)
		}
		if got := benchContents(t, s.HTTPAddr); len(got) != 1 || got[0] != "Stew" {
			t.Fatalf("contents after refused benches = %q, want only Stew: bench published", got)
		}
		if out, err := bench("--broker", s.MQTTAddr, "--http", s.HTTPAddr, "--no-store-check"); err != nil {
			t.Fatalf("bench --no-store-check = %q, %v", out, err)
		}
		if got := benchContents(t, s.HTTPAddr); len(got) < 2 {
			t.Fatalf("contents after bench --no-store-check = %q, want bench's too", got)
		}
	})

	t.Run("OwnDaemon", func(t *testing.T) {
		t.Parallel()
		s := MustServe(t, env, "serve")
		for range 2 { // the second run finds only the first one's contents
			if out, err := bench("--broker", s.MQTTAddr, "--http", s.HTTPAddr); err != nil {
				t.Fatalf("bench = %q, %v", out, err)
			}
		}
		if _, err := bench("--broker", s.MQTTAddr, "--http", s.HTTPAddr, "--content-prefix", "load-"); !errors.Is(err, errStoreCheck) {
			t.Fatalf("bench --content-prefix load- over bench- contents = %v, want a refusal", err)
		}
		got := benchContents(t, s.HTTPAddr)
		if len(got) == 0 {
			t.Fatal("no contents after bench")
		}
		for _, id := range got {
			if !strings.HasPrefix(id, "bench-") {
				t.Errorf("content %q does not start with bench-", id)
			}
		}
	})

	t.Run("UnknownAPI", func(t *testing.T) {
		t.Parallel()
		addr, accepted := countingListener(t)
		// Another broker than the configuration's, no --http: its store cannot be asked.
		if _, err := bench("--broker", addr); !errors.Is(err, errStoreCheck) || !strings.Contains(err.Error(), "--http") {
			t.Fatalf("bench --broker without --http = %v, want a refusal naming --http", err)
		}
		// An API that does not answer.
		closed := testutil.FreePort(t)
		_, err := bench("--broker", addr, "--http", net.JoinHostPort("127.0.0.1", strconv.Itoa(closed)))
		if !errors.Is(err, errStoreCheck) || !strings.Contains(err.Error(), "cannot ask") {
			t.Fatalf("bench with an API that does not answer = %v, want a refusal", err)
		}
		if n := accepted.Load(); n != 0 {
			t.Errorf("bench connected to the broker %d times before refusing, want 0", n)
		}
	})
}
