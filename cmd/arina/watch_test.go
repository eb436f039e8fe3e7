package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/testutil"
)

// TestRun_Watch: `arina watch CONTENT` prints the snapshot, then a line per change of
// that content, and ends when its context does.
func TestRun_Watch(t *testing.T) {
	t.Parallel()
	s := MustServe(t, map[string]string{
		"ARINA_MQTT_LISTEN":      "127.0.0.1:0",
		"ARINA_HTTP_LISTEN":      "127.0.0.1:0",
		"ARINA_STORE_DURABILITY": "none",
		"ARINA_LOG_FORMAT":       "json",
	}, "serve")
	pub := func(content, user string) {
		t.Helper()
		if _, errOut, err := MustRun(t, nil, "pub", "--broker", s.MQTTAddr, "--content", content, "--reaction", "fire", "--user", user); err != nil {
			t.Fatalf("pub: %v %s", err, errOut)
		}
	}
	pub("Stew", "sam")

	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"watch", "--server", s.HTTPAddr, "Stew"}, &out, &out, mapEnv(nil)) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "-- live --") {
			return errNotLive
		}
		return nil
	})
	pub("Soup", "ann") // not watched
	pub("Stew", "ann")
	testutil.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), "Stew\tfire\t2\tadd ann") {
			return errNotLive
		}
		return nil
	})
	got := out.String()
	if !strings.HasPrefix(got, "Stew\tfire\t1\n-- live --\n") || strings.Contains(got, "Soup") {
		t.Fatalf("watch printed:\n%s", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch returned %v after its context ended", err)
	}
	done <- nil
}

var errNotLive = errors.New("not printed yet")
