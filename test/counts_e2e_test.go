package test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
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
	got := countsSubscriber(t, d.MQTTAddr, "dashboard", "arina/counts/+")
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

	bin := testutil.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
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

// TestCountTopics_AfterRestart: count topics are served from the durable store, not
// kept in the broker's memory, so a subscriber to a restarted arina gets every
// content's counts at once, and the broker holds none of them as retained messages.
func TestCountTopics_AfterRestart(t *testing.T) {
	dir := t.TempDir()
	d := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts)
	MustPublish(t, MustConnect311(t, d.MQTTAddr, "p1"), "kitchen/Soup/yum", 1, "add sam")
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	d2 := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts)
	if n := metric(t, d2.HTTPURL, "arina_mqtt_retained_messages"); n != 0 {
		t.Fatalf("arina_mqtt_retained_messages = %v, want 0: count topics are not stored in the broker", n)
	}
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

// TestCountTopics_PerReaction: besides the JSON, each reaction that changed gets its
// count as a bare integer on the retained arina/counts/<content>/<reaction>, coalesced
// like the JSON; a reaction that did not change is not republished, and a late
// subscriber (the real mosquitto_sub) gets the number retained.
func TestCountTopics_PerReaction(t *testing.T) {
	d := arinatest.Start(t, withCounts)
	got := countsSubscriber(t, d.MQTTAddr, "gauge", "arina/counts/#")
	pub := MustConnect311(t, d.MQTTAddr, "badges")
	for _, m := range []string{"add sam", "add ann", "add kim", "remove ann"} {
		MustPublish(t, pub, "kitchen/Stew/fire", 1, m)
	}
	// waitFor reads messages until want arrives, returning those on the per-reaction
	// topics of Stew seen on the way.
	waitFor := func(want string) []string {
		t.Helper()
		var seen []string
		deadline := time.After(5 * time.Second)
		for {
			select {
			case m := <-got:
				if strings.HasPrefix(m, "arina/counts/Stew/") {
					seen = append(seen, m)
				}
				if m == want {
					return seen
				}
			case <-deadline:
				t.Fatalf("no %q; per-reaction messages seen: %q", want, seen)
			}
		}
	}
	if seen := waitFor("arina/counts/Stew/fire 2"); len(seen) > 4 {
		t.Fatalf("%d per-reaction messages for 4 quick changes: not coalesced (%q)", len(seen), seen)
	}
	MustPublish(t, pub, "kitchen/Stew/yum", 1, "add sam")
	if seen := waitFor(`arina/counts/Stew {"content_id":"Stew","reaction_count":{"fire":2,"yum":1}}`); len(seen) != 0 {
		t.Fatalf("per-reaction message before the JSON: %q", seen)
	}
	// The content's per-reaction messages follow its JSON: then the next JSON (of
	// another content) comes after every one of them.
	MustPublish(t, pub, "kitchen/Soup/fire", 1, "add sam")
	if seen := waitFor(`arina/counts/Soup {"content_id":"Soup","reaction_count":{"fire":1}}`); !slices.Equal(seen, []string{"arina/counts/Stew/yum 1"}) {
		t.Fatalf("per-reaction messages after a change of yum only: %q, want only Stew/yum", seen)
	}

	bin := testutil.NeedProgram(t, "mosquitto_sub", "mosquitto-clients")
	host, port, _ := strings.Cut(d.MQTTAddr, ":")
	out, err := exec.Command(bin, "-h", host, "-p", port, "-t", "arina/counts/Stew/fire", "-C", "1", "-W", "5").Output()
	if err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	if got := string(out); got != "2\n" {
		t.Fatalf("retained arina/counts/Stew/fire for a late subscriber: %q, want \"2\\n\"", got)
	}
}

// TestCountTopics_PerReactionOff: with NoReactionCountTopics (mqtt.counts_per_reaction
// false) only the JSON topics are published.
func TestCountTopics_PerReactionOff(t *testing.T) {
	d := arinatest.Start(t, withCounts, func(o *daemon.Options) { o.MQTT.NoReactionCountTopics = true })
	sub := MustConnect311(t, d.MQTTAddr, "gauge")
	got := make(chan string, 100)
	if tok := sub.Subscribe("arina/counts/#", 1, func(_ pahomqtt.Client, m pahomqtt.Message) {
		got <- m.Topic()
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := MustConnect311(t, d.MQTTAddr, "badges")
	// A content's per-reaction messages follow its JSON: once Soup's JSON, published
	// after Stew's arrived, is here, any of Stew's would be too.
	var topics []string
	for _, content := range []string{"Stew", "Soup"} {
		MustPublish(t, pub, "kitchen/"+content+"/fire", 1, "add sam")
		for !slices.Contains(topics, "arina/counts/"+content) {
			select {
			case tp := <-got:
				topics = append(topics, tp)
			case <-time.After(5 * time.Second):
				t.Fatalf("no count JSON for %s; got %q", content, topics)
			}
		}
	}
	for _, tp := range topics {
		if strings.Count(tp, "/") > 2 {
			t.Fatalf("per-reaction topic %s published though turned off (all: %q)", tp, topics)
		}
	}
}

// countsSubscriber subscribes a new MQTT 3.1.1 client to filter (QoS 1) and returns
// what it receives, each message as "<topic> <payload>". It returns once the broker
// has queued the retained messages of the subscription: they come before the echo of
// the client's own publish, which mochi handles after the SUBSCRIBE (the SUBACK is
// written before them, and a count change published meanwhile would come first).
func countsSubscriber(t *testing.T, addr, clientID, filter string) <-chan string {
	t.Helper()
	sub := MustConnect311(t, addr, clientID)
	got := make(chan string, 100)
	echo := make(chan struct{}, 1)
	syncTopic := "sync/" + clientID
	if tok := sub.Subscribe(syncTopic, 0, func(pahomqtt.Client, pahomqtt.Message) { echo <- struct{}{} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", syncTopic, tok.Error())
	}
	if tok := sub.Subscribe(filter, 1, func(_ pahomqtt.Client, m pahomqtt.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	MustPublish(t, sub, syncTopic, 0, "sync")
	select {
	case <-echo:
	case <-time.After(5 * time.Second):
		t.Fatal("no echo of the sync publish")
	}
	return got
}

// TestCountTopics_UnchangedNotRepublished: changes that cancel out between two
// publishes of the count topics (a member added and removed again) leave the counts as
// they were, and the topics are not published again with the value a subscriber
// already has. Each round adds and removes bob on Stew/fire in one batch message, then
// marks its end with two changes of Soup in turn: once the second Soup count arrives,
// everything Stew's round caused has been published. A round whose changes were
// published apart (fire 2, then 1) is fine, but at least one must have been coalesced.
func TestCountTopics_UnchangedNotRepublished(t *testing.T) {
	d := arinatest.Start(t, withCounts, func(o *daemon.Options) { o.MQTT.CountsInterval = 200 * time.Millisecond })
	got := countsSubscriber(t, d.MQTTAddr, "gauge", "arina/counts/#")
	pub := MustConnect311(t, d.MQTTAddr, "badges")
	last := map[string]string{} // topic -> the payload it last had
	var msgs []string
	// await reads messages until want arrives, failing on a message that repeats the
	// last payload of its topic; it returns the messages on Stew's topics.
	await := func(want string) (stew []string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case m := <-got:
				msgs = append(msgs, m)
				topic, payload, _ := strings.Cut(m, " ")
				if prev, ok := last[topic]; ok && prev == payload {
					t.Fatalf("%s published again with its unchanged value %q; messages: %q", topic, payload, msgs)
				}
				last[topic] = payload
				if strings.HasPrefix(topic, "arina/counts/Stew") {
					stew = append(stew, m)
				}
				if m == want {
					return stew
				}
			case <-deadline:
				t.Fatalf("no %q; messages: %q", want, msgs)
			}
		}
	}
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	await("arina/counts/Stew/fire 1")
	coalesced := 0
	for round := range 5 {
		batch := `{"type":"reaction","action":"add","content_id":"Stew","user_id":"bob","reaction_type":"fire"}` + "\n" +
			`{"type":"reaction","action":"remove","content_id":"Stew","user_id":"bob","reaction_type":"fire"}`
		MustPublish(t, pub, "kitchen/batch", 1, batch)
		for i, action := range []string{"add", "remove"} {
			MustPublish(t, pub, "kitchen/Soup/yum", 1, fmt.Sprintf("%s r%d", action, round))
			await(fmt.Sprintf("arina/counts/Soup/yum %d", 1-i))
		}
		if stew := msgsSince(msgs, "arina/counts/Stew"); len(stew) == 0 {
			coalesced++
		}
		msgs = msgs[:0]
	}
	if coalesced == 0 {
		t.Fatal("no round had its add and remove published together; the test proved nothing")
	}
}

// msgsSince returns the messages on topics under prefix.
func msgsSince(msgs []string, prefix string) []string {
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}
