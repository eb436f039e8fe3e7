package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

// TestDurable_DiskFull: while the data directory's disk is nearly full, nothing is
// acknowledged: MQTT 5 gets a failure reason code, HTTP a 503, /readyz fails; when the
// space returns, ingest resumes by itself.
func TestDurable_DiskFull(t *testing.T) {
	mnt := testutil.MustTmpfs(t, "64m")
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.Durability = store.DurabilitySync
		o.Durable.Dir = mnt + "/data"
		o.Durable.MinFreeBytes = 16 << 20
	})
	c := ingestMustConnectV5(t, d.MQTTAddr, "disk-v5")
	pub := func(user string) byte {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Publish(ctx, &paho.Publish{Topic: "kitchen/Stew/fire", QoS: 1, Payload: []byte("add " + user)})
		if resp == nil {
			t.Fatalf("publish %s: %v", user, err)
		}
		return resp.ReasonCode
	}
	post := func(user string) int {
		code, _, _ := ingestHTTP(t, "POST", d.HTTPURL+"/api/v1/reaction", "application/json",
			`{"type":"reaction","action":"add","content_id":"Stew","reaction_type":"fire","user_id":"`+user+`"}`)
		return code
	}
	ready := func() int { code, _, _ := ingestHTTP(t, "GET", d.HTTPURL+"/readyz", "", ""); return code }

	if rc := pub("before"); rc != 0 {
		t.Fatalf("publish before the disk filled: reason %#x", rc)
	}
	ballast := testutil.FillDisk(t, mnt, 8<<20)
	testutil.WaitFor(t, 5*time.Second, func() error {
		if code := ready(); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/readyz = %d, want 503 on a full disk", code)
		}
		return nil
	})
	if rc := pub("during-mqtt"); rc < 0x80 {
		t.Fatalf("publish on a full disk: reason %#x, want a failure code", rc)
	}
	if code := post("during-http"); code != http.StatusServiceUnavailable {
		t.Fatalf("POST on a full disk: %d, want 503", code)
	}
	if got, _ := arinatest.Counts(t, d.HTTPURL, "Stew"); got["fire"] != 1 {
		t.Fatalf("fire = %d on a full disk, want 1: a refused event was applied", got["fire"])
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if code := ready(); code != http.StatusOK {
			return fmt.Errorf("/readyz = %d after the disk was freed, want 200", code)
		}
		return nil
	})
	if rc := pub("after-mqtt"); rc != 0 {
		t.Fatalf("publish after the disk was freed: reason %#x", rc)
	}
	if code := post("after-http"); code != http.StatusCreated {
		t.Fatalf("POST after the disk was freed: %d, want 201", code)
	}
	if got, _ := arinatest.Counts(t, d.HTTPURL, "Stew"); got["fire"] != 3 {
		t.Fatalf("fire = %d, want 3 (before, after-mqtt, after-http)", got["fire"])
	}
}
