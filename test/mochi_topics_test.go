package test

// mochi patch 11 (third_party/mochi-mqtt-server/PATCHES.md): the topic index counts its
// subscriptions, and a publish skips the subscriber scan while it holds none. A count
// that went wrong would either drop relayed messages (too low) or quietly bring the
// scan back (too high), so it is checked on the index and through the broker.

import (
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/arina-dev/arina/internal/arinatest"
)

func TestTopicsIndex_Empty(t *testing.T) {
	x := mqtt.NewTopicsIndex()
	want := func(step string, empty bool) {
		t.Helper()
		if got := x.Empty(); got != empty {
			t.Fatalf("after %s: Empty() = %v, want %v", step, got, empty)
		}
	}
	want("nothing", true)
	if x.Unsubscribe("kitchen/#", "nobody") {
		t.Fatal("unsubscribing a filter nobody has reported success")
	}
	want("unsubscribing a filter nobody has", true)

	x.Subscribe("a", packets.Subscription{Filter: "kitchen/#", Qos: 0})
	want("a subscribes", false)
	x.Subscribe("a", packets.Subscription{Filter: "kitchen/#", Qos: 1}) // same filter, new options
	x.Subscribe("b", packets.Subscription{Filter: "kitchen/#"})
	x.Unsubscribe("kitchen/#", "c") // a client without that subscription
	x.Unsubscribe("kitchen/#", "a")
	want("a leaves, b stays", false)
	x.Unsubscribe("kitchen/#", "a") // again
	x.Unsubscribe("kitchen/#", "b")
	want("a and b left", true)

	x.Subscribe("a", packets.Subscription{Filter: "$SHARE/g/kitchen/+/fire"})
	x.Subscribe("b", packets.Subscription{Filter: "$SHARE/g/kitchen/+/fire"})
	x.Subscribe("a", packets.Subscription{Filter: "$SHARE/g/kitchen/+/fire"})
	x.Unsubscribe("$SHARE/g/kitchen/+/fire", "a")
	want("one of two shared subscribers left", false)
	x.Unsubscribe("$SHARE/g/kitchen/+/fire", "b")
	x.Unsubscribe("$SHARE/other/kitchen/+/fire", "b")
	want("both shared subscribers left", true)

	noop := func(*mqtt.Client, packets.Subscription, packets.Packet) {}
	x.InlineSubscribe(mqtt.InlineSubscription{Handler: noop, Subscription: packets.Subscription{Filter: "kitchen/#", Identifier: 1}})
	x.InlineSubscribe(mqtt.InlineSubscription{Handler: noop, Subscription: packets.Subscription{Filter: "kitchen/#", Identifier: 1}})
	want("an inline subscription", false)
	x.InlineUnsubscribe(2, "kitchen/#")
	want("removing another inline id", false)
	x.InlineUnsubscribe(1, "kitchen/#")
	x.InlineUnsubscribe(1, "kitchen/#")
	want("the inline subscription left", true)

	x.Subscribe("a", packets.Subscription{Filter: "kitchen/#"})
	if s := x.Subscribers("kitchen/Stew/fire"); len(s.Subscriptions) != 1 {
		t.Fatalf("after the index was empty, Subscribers found %d subscriptions, want 1", len(s.Subscriptions))
	}
}

func TestCompat_RelayAcrossEmptyIndex(t *testing.T) {
	// Ingest events published while nobody subscribes skip the scan; subscribers that
	// come later get what follows, and one leaving does not cut off another.
	t.Parallel()
	d := arinatest.Start(t)
	pub := MustConnect311(t, d.MQTTAddr, "empty-pub")
	MustPublish(t, pub, "kitchen/Stew/fire", 0, "add Ann")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add Bob") // after Ann: the same connection

	sub := func(id, filter string) (pahomqtt.Client, <-chan string) {
		msgs := make(chan string, 16)
		c := MustConnect311(t, d.MQTTAddr, id)
		tok := c.Subscribe(filter, 1, func(_ pahomqtt.Client, m pahomqtt.Message) { msgs <- string(m.Payload()) })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribing %s to %s: %v", id, filter, tok.Error())
		}
		return c, msgs
	}
	next := func(who string, msgs <-chan string, want string) {
		t.Helper()
		for {
			select {
			case got := <-msgs:
				if got == "add Bob" && want != got {
					// A QoS 1 event is relayed by its client's acker just after its
					// PUBACK: a subscriber arriving right then may still get it.
					continue
				}
				if got != want {
					t.Fatalf("%s got %q, want %q", who, got, want)
				}
				return
			case <-time.After(10 * time.Second):
				t.Fatalf("%s got nothing, want %q", who, want)
			}
		}
	}
	first, firstMsgs := sub("empty-sub1", "kitchen/#")
	MustPublish(t, pub, "kitchen/Stew/fire", 0, "add Cid")
	next("first subscriber", firstMsgs, "add Cid")

	_, secondMsgs := sub("empty-sub2", "kitchen/Stew/+")
	first.Disconnect(100)
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add Dee")
	next("second subscriber", secondMsgs, "add Dee")

	if got, _ := arinatest.Counts(t, d.HTTPURL, "Stew"); got["fire"] != 4 {
		t.Fatalf("fire = %d, want 4: every event is applied, subscribed or not", got["fire"])
	}
}
