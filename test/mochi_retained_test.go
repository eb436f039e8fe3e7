package test

// mochi patch 25 (third_party/mochi-mqtt-server/PATCHES.md): the once-a-second sweep of
// expired retained messages finds them in place instead of copying every retained
// packet, which with Arina's count topics (one retained message per content and per
// reaction) was ~9 MB of garbage a second for 9000 retained messages.

import (
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/internal/arinatest"
)

func TestMochiRetained_SelectCopiesNothing(t *testing.T) {
	p := packets.NewPackets()
	for i := range 1000 {
		p.Add(fmt.Sprintf("arina/counts/c%d", i), packets.Packet{TopicName: fmt.Sprintf("arina/counts/c%d", i), Payload: []byte("1")})
	}
	if ids := p.Select(func(pk *packets.Packet) bool { return strings.HasSuffix(pk.TopicName, "/c7") }); len(ids) != 1 || ids[0] != "arina/counts/c7" {
		t.Fatalf("Select = %q, want [arina/counts/c7]", ids)
	}
	if n := testing.AllocsPerRun(10, func() { p.Select(func(*packets.Packet) bool { return false }) }); n > 1 {
		t.Fatalf("Select over 1000 packets allocates %v times, want at most 1", n)
	}
}

// TestMochiRetained_ExpirySweep: the sweep still removes what expired (an MQTT 5
// message expiry in the past) and only that.
func TestMochiRetained_ExpirySweep(t *testing.T) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0
	s := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = s.Close() })
	now := time.Now().Unix()
	keep := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "arina/counts/Stew",
		Payload: []byte("{}"), ProtocolVersion: 5, Created: now}
	gone := keep
	gone.TopicName, gone.Expiry = "sensors/old", now-1
	s.Topics.RetainMessage(keep)
	s.Topics.RetainMessage(gone)
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	arinatest.WaitFor(t, 5*time.Second, func() error {
		if _, ok := s.Topics.Retained.Get("sensors/old"); ok {
			return fmt.Errorf("expired retained message still there")
		}
		return nil
	})
	if _, ok := s.Topics.Retained.Get("arina/counts/Stew"); !ok {
		t.Fatal("a retained message without expiry was removed")
	}
}

// TestMochiRetained_Replace: mochi patch 28: a retained message replacing another on
// the same topic is stored without the index's tree walk. A new subscription still
// finds the latest message, a clear still removes it, and replacing, clearing and
// scanning at once (-race) leaves the index agreeing with the last operation.
func TestMochiRetained_Replace(t *testing.T) {
	x := mqtt.NewTopicsIndex()
	msg := func(topic, payload string) packets.Packet {
		return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: topic, Payload: []byte(payload)}
	}
	found := func(filter string) []string {
		var out []string
		for _, pk := range x.Messages(filter) {
			out = append(out, pk.TopicName+"="+string(pk.Payload))
		}
		return out
	}
	for _, v := range []string{"1", "2", "3"} {
		if r := x.RetainMessage(msg("arina/counts/Stew/fire", v)); r != 1 {
			t.Fatalf("RetainMessage(%s) = %d, want 1", v, r)
		}
	}
	if got := found("arina/counts/#"); len(got) != 1 || got[0] != "arina/counts/Stew/fire=3" {
		t.Fatalf("retained for arina/counts/# = %q, want the last one", got)
	}
	if r := x.RetainMessage(msg("arina/counts/Stew/fire", "")); r != -1 {
		t.Fatalf("clearing returned %d, want -1", r)
	}
	if got := found("arina/counts/#"); len(got) != 0 || x.Retained.Len() != 0 {
		t.Fatalf("after clearing: %q, %d retained", got, x.Retained.Len())
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			p := ""
			if i%3 != 2 {
				p = fmt.Sprint(i)
			}
			x.RetainMessage(msg("arina/counts/Soup/yum", p))
		}
	}()
	for range 200 {
		found("arina/counts/+/yum")
	}
	<-done
	x.RetainMessage(msg("arina/counts/Soup/yum", "last"))
	if got := found("arina/counts/+/yum"); len(got) != 1 || got[0] != "arina/counts/Soup/yum=last" {
		t.Fatalf("after the storm: %q", got)
	}
}

// TestMochiRetained_TopicLevelsCostLittle: every level of a retained topic is a node
// of the broker's topic tree, and each node made four maps (children, subscriptions,
// shared and inline subscriptions) whether it ever held anything or not, about 300
// bytes, for the count topics of 10k contents x 5 reactions 18 MB; they are made when
// first needed now (mochi patch 30): 1597 bytes allocated a retained topic here
// before, 1369 after. Subscribing, and so matching, still works.
func TestMochiRetained_TopicLevelsCostLittle(t *testing.T) {
	s := mqtt.New(&mqtt.Options{InlineClient: true})
	const n = 20_000
	topic := func(i int) string { return fmt.Sprintf("arina/counts/c%d/r%d", i/4, i%4) }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		s.Topics.RetainMessage(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
			TopicName:   topic(i), Payload: []byte("1"), ProtocolVersion: 4,
		})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 20k retained packets of 800 bytes each, and 25k topic levels; counted as
	// allocated (the retained map's growth included), which no other test's garbage
	// can make go backwards.
	perTopic := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per retained topic", perTopic)
	if perTopic > 1520 {
		t.Errorf("%.0f bytes allocated per retained topic, want under 1520 (a packet and a little over a level of the tree)", perTopic)
	}
	runtime.KeepAlive(s)

	got := make(chan string, 1)
	if err := s.Subscribe("arina/counts/+/r2", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if string(pk.Payload) == "2" { // not one of the retained messages
			got <- pk.TopicName
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish("arina/counts/c7/r2", []byte("2"), false, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case tp := <-got:
		if tp != "arina/counts/c7/r2" {
			t.Fatalf("inline subscriber got %q", tp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the inline subscriber got nothing")
	}
}
