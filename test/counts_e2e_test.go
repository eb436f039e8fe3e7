package test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
)

func withCounts(o *daemon.Options) {
	o.MQTT.CountsPrefix = "arina/counts"
	o.MQTT.CountsInterval = 50 * time.Millisecond
}

// TestCountTopics: changes reach the retained topic arina/counts/<content> as the
// seed's count JSON, coalesced, and a subscriber arriving later gets the latest counts
// retained (checked with the real mosquitto_sub).
func TestCountTopics(t *testing.T) {
	d := arinatest.Start(t, withCounts)
	sub := MustConnect311(t, d.MQTTAddr, "dashboard")
	got := make(chan string, 100)
	if tok := sub.Subscribe("arina/counts/#", 1, func(_ pahomqtt.Client, m pahomqtt.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := MustConnect311(t, d.MQTTAddr, "badges")
	for _, m := range []string{"add sam", "add ann", "add kim", "remove ann"} {
		MustPublish(t, pub, "kitchen/Stew/fire", 1, m)
	}
	want := `arina/counts/Stew {"content_id":"Stew","reaction_count":{"fire":2}}`
	deadline := time.After(5 * time.Second)
	var last string
	for n := 0; last != want; n++ {
		select {
		case last = <-got:
			if n > 4 {
				t.Fatalf("%d count messages for 4 quick changes: not coalesced (last %s)", n+1, last)
			}
		case <-deadline:
			t.Fatalf("last count message %q, want %q", last, want)
		}
	}

	bin := arinatest.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := strings.Cut(d.MQTTAddr, ":")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "arina/counts/Stew", "-C", "1", "-W", "5", "-v").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if line := strings.TrimSpace(string(out)); line != want {
		t.Fatalf("retained for a late subscriber: %q, want %q", line, want)
	}
	var msg struct {
		ContentID     string           `json:"content_id"`
		ReactionCount map[string]int64 `json:"reaction_count"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(want, "arina/counts/Stew ")), &msg); err != nil || msg.ReactionCount["fire"] != 2 {
		t.Fatal(fmt.Sprint("bad seed JSON: ", err))
	}
}

// TestCountTopics_AfterRestart: retained messages live in the broker's memory, so a
// restarted arina republishes every content's counts from its durable store.
func TestCountTopics_AfterRestart(t *testing.T) {
	dir := t.TempDir()
	d := arinatest.Start(t, durable(dir, daemon.DurabilitySync), withCounts)
	MustPublish(t, MustConnect311(t, d.MQTTAddr, "p1"), "kitchen/Soup/yum", 1, "add sam")
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	d2 := arinatest.Start(t, durable(dir, daemon.DurabilitySync), withCounts)
	// Subscribe only once the republish is done: mochi v2.7.9 scans retained messages
	// for a new subscription without the lock their writers take (mochi-mqtt/server#200).
	arinatest.WaitFor(t, 5*time.Second, func() error {
		if n := metric(t, d2.HTTPURL, "arina_mqtt_retained_messages"); n < 1 {
			return fmt.Errorf("%v retained messages, want the republished count", n)
		}
		return nil
	})
	sub := MustConnect311(t, d2.MQTTAddr, "late")
	got := make(chan string, 10)
	sub.Subscribe("arina/counts/Soup", 1, func(_ pahomqtt.Client, m pahomqtt.Message) { got <- string(m.Payload()) })
	select {
	case m := <-got:
		if m != `{"content_id":"Soup","reaction_count":{"yum":1}}` {
			t.Fatalf("retained after restart = %s", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained count message after restart")
	}
}
