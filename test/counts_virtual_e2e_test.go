package test

// Count topics are served from the store, not kept as retained messages in mochi
// (mochi patch 31): these check, with real clients, that subscribers get what a
// retained message in the broker would give them, under every MQTT rule for retained
// messages, and that live updates and late subscribers never leave a stale value.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

// virtualStart starts a daemon with count topics (50 ms interval) and Stew/fire at 1.
func virtualStart(t *testing.T, opts ...func(*daemon.Options)) (*arinatest.Daemon, pahomqtt.Client) {
	t.Helper()
	d := arinatest.Start(t, append([]func(*daemon.Options){withCounts}, opts...)...)
	pub := MustConnect311(t, d.MQTTAddr, "virtual-pub")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	return d, pub
}

// virtualBeforeSync subscribes c with opts and returns the messages the subscription
// got before the echo of a publish made after it (its retained messages).
func virtualBeforeSync(t *testing.T, c *compat5, opts paho.SubscribeOptions) []*paho.Publish {
	t.Helper()
	compatSubscribe5(t, c, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{opts}})
	compatPublish5(t, c, &paho.Publish{Topic: "marker/" + c.syncTopic, QoS: 1, Payload: []byte("marker")})
	got := compatCollect(t, c.msgs, "marker", compatIsPayload5("marker"))
	return got[:len(got)-1]
}

// TestCountTopicsVirtual_RetainHandling: MQTT 5 retain handling (3.8.3.1) as for a
// retained message in the broker: 0 sends the current counts, 1 only for a new
// subscription, 2 never; the messages keep their retain flag, QoS is that of the
// subscription (0 here), and the JSON carries its content type and payload format.
func TestCountTopicsVirtual_RetainHandling(t *testing.T) {
	d, _ := virtualStart(t)
	c := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "rh", CleanStart: true}, nil)
	compatSub5(t, c, "marker/#", 1)
	sub := func(rh byte) []*paho.Publish {
		return virtualBeforeSync(t, c, paho.SubscribeOptions{Topic: "arina/counts/Stew/#", QoS: 0, RetainHandling: rh})
	}
	got := sub(1)
	if len(got) != 2 {
		t.Fatalf("retain handling 1, new subscription: %d messages, want 2 (JSON, fire)", len(got))
	}
	for _, p := range got {
		if !p.Retain || p.QoS != 0 || p.Properties == nil || p.Properties.PayloadFormat == nil || *p.Properties.PayloadFormat != 1 {
			t.Fatalf("retained %s: retain %v, QoS %d, properties %+v; want retain, QoS 0, payload format 1", p.Topic, p.Retain, p.QoS, p.Properties)
		}
		switch p.Topic {
		case "arina/counts/Stew":
			if string(p.Payload) != `{"content_id":"Stew","reaction_count":{"fire":1}}` || p.Properties.ContentType != "application/json" {
				t.Fatalf("JSON %q, content type %q", p.Payload, p.Properties.ContentType)
			}
		case "arina/counts/Stew/fire":
			if string(p.Payload) != "1" {
				t.Fatalf("fire %q, want 1", p.Payload)
			}
		default:
			t.Fatalf("unexpected topic %s", p.Topic)
		}
	}
	if got := sub(1); len(got) != 0 {
		t.Fatalf("retain handling 1, existing subscription: %d messages, want 0", len(got))
	}
	if got := sub(0); len(got) != 2 {
		t.Fatalf("retain handling 0: %d messages, want 2", len(got))
	}
	if got := sub(2); len(got) != 0 {
		t.Fatalf("retain handling 2: %d messages, want 0", len(got))
	}
}

// TestCountTopicsVirtual_LiveWithoutRetained: a subscription that gets no retained
// messages, with retain handling 2 or shared (MQTT 5 4.8.2), and is the only one on
// count topics, still gets the live updates: the count goroutine watches the feed
// from the SUBSCRIBE on, though no retained message was asked for.
func TestCountTopicsVirtual_LiveWithoutRetained(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts paho.SubscribeOptions
	}{
		{"RetainHandling2", paho.SubscribeOptions{Topic: "arina/counts/#", QoS: 1, RetainHandling: 2}},
		{"Shared", paho.SubscribeOptions{Topic: "$share/g/arina/counts/#", QoS: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, pub := virtualStart(t)
			c := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "live", CleanStart: true}, nil)
			compatSub5(t, c, "marker/#", 1)
			if got := virtualBeforeSync(t, c, tc.opts); len(got) != 0 {
				t.Fatalf("%d retained messages, want none", len(got))
			}
			MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
			for {
				p := compatNext(t, c.msgs, "live update")
				if p.Topic == "arina/counts/Stew/fire" {
					if string(p.Payload) != "2" {
						t.Fatalf("live update %q, want 2", p.Payload)
					}
					return
				}
			}
		})
	}
}

// TestCountTopicsVirtual_Filters: every filter matching count topics gets them, '#'
// and '+' at any level included, and only the ones it matches; $SYS/# gets none.
func TestCountTopicsVirtual_Filters(t *testing.T) {
	d, pub := virtualStart(t)
	MustPublish(t, pub, "kitchen/Soup/yum", 1, "add sam")
	c := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "filters", CleanStart: true}, nil)
	compatSub5(t, c, "marker/#", 1)
	for filter, want := range map[string][]string{
		"#":                      {"arina/counts/Soup", "arina/counts/Soup/yum", "arina/counts/Stew", "arina/counts/Stew/fire"},
		"+/counts/#":             {"arina/counts/Soup", "arina/counts/Soup/yum", "arina/counts/Stew", "arina/counts/Stew/fire"},
		"arina/+/+":              {"arina/counts/Soup", "arina/counts/Stew"},
		"arina/counts/+/fire":    {"arina/counts/Stew/fire"},
		"arina/counts/Soup/+":    {"arina/counts/Soup/yum"},
		"arina/counts/Stew/fire": {"arina/counts/Stew/fire"},
		"arina/counts/Ghost/#":   nil,
		"arina/counts":           nil,
		"$SYS/#":                 nil,
	} {
		var topics []string
		for _, p := range virtualBeforeSync(t, c, paho.SubscribeOptions{Topic: filter, QoS: 1}) {
			if !strings.HasPrefix(p.Topic, "$SYS/") { // mochi's own, retained
				topics = append(topics, p.Topic)
			}
		}
		slices.Sort(topics)
		if strings.Join(topics, " ") != strings.Join(want, " ") {
			t.Errorf("filter %s: retained %q, want %q", filter, topics, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), compatTimeout)
		if _, err := c.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}}); err != nil {
			t.Fatal(err)
		}
		cancel()
		for len(c.msgs) > 0 { // live messages of the filter just left
			<-c.msgs
		}
	}
}

// TestCountTopicsVirtual_RetainAsPublished: a live update keeps its retain flag for a
// subscription with retain as published and loses it for another (MQTT-3.3.1-12/13).
func TestCountTopicsVirtual_RetainAsPublished(t *testing.T) {
	d, pub := virtualStart(t)
	rap := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "rap", CleanStart: true}, nil)
	compatSubscribe5(t, rap, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "arina/counts/Stew/fire", QoS: 1, RetainAsPublished: true, RetainHandling: 2}}})
	plain := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "plain", CleanStart: true}, nil)
	compatSubscribe5(t, plain, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "arina/counts/Stew/fire", QoS: 1, RetainHandling: 2}}})
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
	if p := compatNext(t, rap.msgs, "live update"); !p.Retain || string(p.Payload) != "2" {
		t.Errorf("retain as published: %q retain %v, want 2 with retain", p.Payload, p.Retain)
	}
	if p := compatNext(t, plain.msgs, "live update"); p.Retain || string(p.Payload) != "2" {
		t.Errorf("ordinary: %q retain %v, want 2 without retain", p.Payload, p.Retain)
	}
}

// TestCountTopicsVirtual_ClientPublishRefused: only arina publishes count topics. A
// client's publish there is refused (MQTT 5: PUBACK 0x87; 3.1.1: acknowledged and
// dropped), a will there is not published, each is counted, and none of them reaches
// a subscriber or replaces the counts a later subscriber gets.
func TestCountTopicsVirtual_ClientPublishRefused(t *testing.T) {
	d, _ := virtualStart(t)
	watcher := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "watcher", CleanStart: true}, nil)
	compatSubscribe5(t, watcher, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "arina/counts/#", QoS: 1, RetainHandling: 2}}})

	v5 := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "forger5", CleanStart: true}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), compatTimeout)
	defer cancel()
	pr, err := v5.Publish(ctx, &paho.Publish{Topic: "arina/counts/Stew", QoS: 1, Retain: true, Payload: []byte("forged5")})
	if pr == nil || pr.ReasonCode != 0x87 {
		t.Fatalf("MQTT 5 publish to a count topic: %+v, %v; want reason 0x87", pr, err)
	}
	v3 := MustConnect311(t, d.MQTTAddr, "forger3")
	MustPublish(t, v3, "arina/counts/Stew/fire", 1, "forged3") // acked (3.1.1 has no negative ack)
	if tok := v3.Publish("arina/counts/Stew/fire", 1, true, "forged3r"); !tok.WaitTimeout(compatTimeout) || tok.Error() != nil {
		t.Fatalf("retained 3.1.1 publish: %v", tok.Error())
	}
	// A will on a count topic, left by a connection that drops.
	conn, err := net.DialTimeout("tcp", d.MQTTAddr, compatTimeout)
	if err != nil {
		t.Fatal(err)
	}
	wc := paho.NewClient(paho.ClientConfig{Conn: conn})
	if _, err := wc.Connect(ctx, &paho.Connect{ClientID: "will", CleanStart: true, KeepAlive: 30, WillMessage: &paho.WillMessage{
		Topic: "arina/counts/Stew", Payload: []byte("forged-will"), Retain: true, QoS: 1}}); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	compatClientsConnected(t, d, 4) // the will's client is gone: its will was dealt with
	testutil.WaitFor(t, compatTimeout, func() error {
		if n := metric(t, d.HTTPURL, `arina_mqtt_publishes_refused_total{reason="count_topic"}`); n != 4 {
			return fmt.Errorf("refused count_topic = %v, want 4", n)
		}
		return nil
	})
	late := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "late", CleanStart: true}, nil)
	compatSub5(t, late, "marker/#", 1)
	got := virtualBeforeSync(t, late, paho.SubscribeOptions{Topic: "arina/counts/#", QoS: 1})
	if len(got) != 2 || string(got[0].Payload) != `{"content_id":"Stew","reaction_count":{"fire":1}}` || string(got[1].Payload) != "1" {
		var s []string
		for _, p := range got {
			s = append(s, p.Topic+" "+string(p.Payload))
		}
		t.Fatalf("late subscriber got %q, want Stew's counts", s)
	}
	// The watcher may get Stew's real counts live: the count goroutine publishes the
	// change virtualStart made whenever it gets to it, perhaps after the watcher
	// subscribed. Nothing else.
	for {
		select {
		case p := <-watcher.msgs:
			if real := (p.Topic == "arina/counts/Stew" && string(p.Payload) == `{"content_id":"Stew","reaction_count":{"fire":1}}`) ||
				(p.Topic == "arina/counts/Stew/fire" && string(p.Payload) == "1"); !real {
				t.Fatalf("subscriber got %s %q", p.Topic, p.Payload)
			}
		default:
			return
		}
	}
}

// TestCountTopicsVirtual_NoStaleValue: subscribers arriving at any moment while a
// count goes up and down (the same values again and again, which the count goroutine
// does not republish unchanged) each end up with the last value: what a subscription
// is served from the store is never older than what it was subscribed after, and no
// change after it is lost to the "unchanged" check.
func TestCountTopicsVirtual_NoStaleValue(t *testing.T) {
	d := arinatest.Start(t, withCounts, func(o *daemon.Options) { o.MQTT.CountsInterval = 5 * time.Millisecond })
	pub := MustConnect311(t, d.MQTTAddr, "toggler")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			action := "add"
			if i%2 == 1 {
				action = "remove"
			}
			if tok := pub.Publish("kitchen/Stew/fire", 1, false, action+" ann"); !tok.WaitTimeout(compatTimeout) {
				return
			}
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
	}()
	type last struct {
		sync.Mutex
		v map[string]string
	}
	var subs []*last
	for i := range 40 {
		l := &last{v: map[string]string{}}
		subs = append(subs, l)
		c := MustConnect311(t, d.MQTTAddr, fmt.Sprintf("sub%d", i))
		filter := []string{"arina/counts/#", "arina/counts/Stew/fire", "arina/counts/+"}[i%3]
		if tok := c.Subscribe(filter, byte(i%2), func(_ pahomqtt.Client, m pahomqtt.Message) {
			l.Lock()
			l.v[m.Topic()] = string(m.Payload())
			l.Unlock()
		}); !tok.WaitTimeout(compatTimeout) || tok.Error() != nil {
			t.Fatalf("subscribe: %v", tok.Error())
		}
		if i%4 == 3 { // some leave: the watch may stop and start again
			c.Disconnect(0)
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	want := map[string]string{}
	got, status := arinatest.Counts(t, d.HTTPURL, "Stew")
	if status != 200 {
		t.Fatalf("counts: %d", status)
	}
	want["arina/counts/Stew/fire"] = fmt.Sprint(got["fire"])
	want["arina/counts/Stew"] = fmt.Sprintf(`{"content_id":"Stew","reaction_count":{"fire":%d}}`, got["fire"])
	testutil.WaitFor(t, compatTimeout, func() error {
		for i, l := range subs {
			if i%4 == 3 {
				continue
			}
			l.Lock()
			for topic, v := range l.v {
				if v != want[topic] {
					l.Unlock()
					return fmt.Errorf("subscriber %d has %s = %q, want %q", i, topic, v, want[topic])
				}
			}
			n := len(l.v)
			l.Unlock()
			if n == 0 {
				return fmt.Errorf("subscriber %d got nothing", i)
			}
		}
		return nil
	})
}

// TestCountTopicsVirtual_Mosquitto: the real mosquitto_sub gets the current counts of
// every content, after changes made while nobody subscribed (the count goroutine then
// does not even watch the feed) and after a restart.
func TestCountTopicsVirtual_Mosquitto(t *testing.T) {
	dir := t.TempDir()
	d := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts)
	pub := MustConnect311(t, d.MQTTAddr, "p")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	if d.Broker.CountsWatching() {
		t.Fatal("the count goroutine watches the feed with nobody subscribed")
	}
	// A subscriber comes and goes: the watch starts, then stops.
	sub := MustConnect311(t, d.MQTTAddr, "leaver")
	if tok := sub.Subscribe("arina/counts/#", 0, nil); !tok.WaitTimeout(compatTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if !d.Broker.CountsWatching() {
		t.Fatal("the count goroutine does not watch the feed while a count topic is subscribed")
	}
	sub.Disconnect(100)
	testutil.WaitFor(t, compatTimeout, func() error {
		if d.Broker.CountsWatching() {
			return fmt.Errorf("still watching the feed with no count subscriber")
		}
		return nil
	})
	// Changes while nobody subscribes.
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
	MustPublish(t, pub, "kitchen/Soup/yum", 1, "add sam")
	MustPublish(t, pub, "kitchen/Stew/yum", 1, "add kim")
	want := []string{
		`arina/counts/Soup {"content_id":"Soup","reaction_count":{"yum":1}}`,
		"arina/counts/Soup/yum 1",
		`arina/counts/Stew {"content_id":"Stew","reaction_count":{"fire":2,"yum":1}}`,
		"arina/counts/Stew/fire 2",
		"arina/counts/Stew/yum 1",
	}
	mosq := func(d *arinatest.Daemon) []string {
		t.Helper()
		out := compatMosquitto(t, d.MQTTAddr, "mosquitto_sub", "-t", "arina/counts/#", "-C", fmt.Sprint(len(want)), "-W", "5", "-v", "-i", "mosq")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		slices.Sort(lines)
		return lines
	}
	if got := mosq(d); !slices.Equal(got, want) {
		t.Fatalf("mosquitto_sub after changes nobody watched: %q, want %q", got, want)
	}
	if err := d.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	d2 := arinatest.Start(t, durable(dir, store.DurabilitySync), withCounts)
	if got := mosq(d2); !slices.Equal(got, want) {
		t.Fatalf("mosquitto_sub after a restart: %q, want %q", got, want)
	}
}

// TestCountTopicsVirtual_ChangeRevertedAroundSubscribe: a count changes, a new
// subscriber is served the new value from the store, and the change is undone, all
// within one interval. The goroutine last published the old value, which is again the
// current one; it must still publish it, or the new subscriber keeps the undone value
// for good.
func TestCountTopicsVirtual_ChangeRevertedAroundSubscribe(t *testing.T) {
	d := arinatest.Start(t, withCounts, func(o *daemon.Options) { o.MQTT.CountsInterval = 300 * time.Millisecond })
	pub := MustConnect311(t, d.MQTTAddr, "reverter")
	first := countsSubscriber(t, d.MQTTAddr, "first", "arina/counts/Stew/fire")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	if m := <-first; m != "arina/counts/Stew/fire 1" {
		t.Fatalf("first subscriber got %q", m)
	}
	for round := range 3 {
		MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
		late := countsSubscriber(t, d.MQTTAddr, fmt.Sprintf("late%d", round), "arina/counts/Stew/fire")
		MustPublish(t, pub, "kitchen/Stew/fire", 1, "remove ann")
		last := ""
		deadline := time.After(2 * time.Second) // several intervals
	read:
		for {
			select {
			case last = <-late:
			case <-deadline:
				break read
			}
		}
		if last != "arina/counts/Stew/fire 1" {
			t.Fatalf("round %d: the late subscriber's last value is %q, want 1", round, last)
		}
		for len(first) > 0 {
			<-first
		}
	}
}
