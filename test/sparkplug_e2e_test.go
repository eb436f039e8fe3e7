package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/bridge"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/sparkplug"
	"github.com/arina-dev/arina/sparkplug/pb"
)

func spBool(name string, alias uint64, v bool) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Alias: proto.Uint64(alias), Datatype: proto.Uint32(uint32(pb.DataType_Boolean)),
		Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}
	if name != "" {
		m.Name = proto.String(name)
	}
	return m
}

func spBdSeq(v uint64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String("bdSeq"), Datatype: proto.Uint32(uint32(pb.DataType_Int64)),
		Value: &pb.Payload_Metric_LongValue{LongValue: v}}
}

// spClock is the last payload timestamp handed out: each payload gets a later one,
// as a node's messages in a row do (with equal timestamps, last-writer-wins would let
// a birth's remove win over the next message's add of the same membership).
var spClock atomic.Int64

func spNow() uint64 {
	for {
		last := spClock.Load()
		next := max(time.Now().UnixMilli(), last+1)
		if spClock.CompareAndSwap(last, next) {
			return uint64(next)
		}
	}
}

func spPayload(tb testing.TB, seq int64, ms ...*pb.Payload_Metric) []byte {
	tb.Helper()
	p := &pb.Payload{Timestamp: proto.Uint64(spNow()), Metrics: ms}
	if seq >= 0 {
		p.Seq = proto.Uint64(uint64(seq))
	}
	b, err := proto.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func startSparkplug(tb testing.TB, opts sparkplug.Options) *arinatest.Daemon {
	return arinatest.Start(tb, func(o *daemon.Options) { o.MQTT.Sparkplug = &opts })
}

// wantMembers polls the members of (content, reaction) until they are want.
func wantMembers(tb testing.TB, d *arinatest.Daemon, content, reaction string, want ...string) {
	tb.Helper()
	slices.Sort(want)
	arinatest.WaitFor(tb, 5*time.Second, func() error {
		if _, status := arinatest.Counts(tb, d.HTTPURL, content); status != 200 {
			return fmt.Errorf("counts of %s: status %d", content, status)
		}
		got := arinatest.Members(tb, d.HTTPURL, content, reaction)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("members of %s/%s = %q, want %q", content, reaction, got, want)
		}
		return nil
	})
}

// TestSparkplug_EdgeNode: an edge node (paho, MQTT 5) publishes NBIRTH, DBIRTH, DDATA
// by alias, DDEATH and NDEATH protobufs; every QoS 1 PUBACK comes once the
// memberships are applied, a SCADA subscriber still gets the messages, and a payload
// that is not Sparkplug B gets 0x99.
func TestSparkplug_EdgeNode(t *testing.T) {
	d := startSparkplug(t, sparkplug.Options{})
	scada := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "scada", CleanStart: true}, nil)
	compatSub5(t, scada, "spBv1.0/#", 1)
	node := compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: "range-2", CleanStart: true}, nil)
	publish := func(topic string, payload []byte) byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pr, err := node.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload})
		if err != nil && pr == nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		return pr.ReasonCode
	}
	members := func(reaction string) []string {
		m := arinatest.Members(t, d.HTTPURL, "range-2", reaction)
		slices.Sort(m)
		return m
	}
	check := func(step, reaction string, want ...string) {
		t.Helper()
		if got := members(reaction); !slices.Equal(got, want) {
			t.Errorf("after %s: members of range-2/%s = %q, want %q", step, reaction, got, want)
		}
	}

	if rc := publish("spBv1.0/plant/NBIRTH/range-2", spPayload(t, 0, spBdSeq(0), spBool("Node Control/Rebirth", 1, false))); rc != 0 {
		t.Fatalf("NBIRTH: reason %#x", rc)
	}
	for i, dev := range []string{"v7", "v8", "v9"} {
		publish("spBv1.0/plant/DBIRTH/range-2/"+dev, spPayload(t, int64(i+1), spBool("gas_on", 10, dev != "v9"), spBool("fault", 11, false)))
	}
	// Acked: applied, nothing to poll.
	check("DBIRTH", "gas_on", "v7", "v8")
	if m := compatNext(t, scada.msgs, "relayed NBIRTH"); m.Topic != "spBv1.0/plant/NBIRTH/range-2" {
		t.Errorf("SCADA got %s first, want the NBIRTH", m.Topic)
	}

	publish("spBv1.0/plant/DDATA/range-2/v9", spPayload(t, 4, spBool("", 10, true)))
	publish("spBv1.0/plant/DDATA/range-2/v7", spPayload(t, 5, spBool("", 10, false), spBool("", 11, true)))
	check("DDATA", "gas_on", "v8", "v9")
	check("DDATA", "fault", "v7")
	counts, _ := arinatest.Counts(t, d.HTTPURL, "range-2")
	if counts["gas_on"] != 2 || counts["fault"] != 1 {
		t.Errorf("counts %v, want gas_on 2, fault 1", counts)
	}

	publish("spBv1.0/plant/DDEATH/range-2/v7", spPayload(t, 6))
	check("DDEATH v7", "fault")

	// Not Sparkplug B: refused, never applied.
	if rc := publish("spBv1.0/plant/DDATA/range-2/v8", []byte("remove v8")); rc != 0x99 {
		t.Errorf("garbage DDATA: reason %#x, want 0x99", rc)
	}
	if got := metric(t, d.HTTPURL, `arina_events_rejected_total{reason="bad_payload",source="mqtt"}`); got != 1 {
		t.Errorf("bad_payload rejects = %v, want 1", got)
	}
	// A sequence gap (7 expected) is counted.
	publish("spBv1.0/plant/DDATA/range-2/v8", spPayload(t, 9, spBool("", 10, true)))
	if got := metric(t, d.HTTPURL, `arina_sparkplug_seq_gaps_total`); got != 1 {
		t.Errorf("seq gaps = %v, want 1", got)
	}

	// NDEATH (published here, as a node that disconnects cleanly does) empties the node.
	publish("spBv1.0/plant/NDEATH/range-2", spPayload(t, -1, spBdSeq(0)))
	check("NDEATH", "gas_on")
	if counts, _ := arinatest.Counts(t, d.HTTPURL, "range-2"); counts["gas_on"] != 0 || counts["fault"] != 0 {
		t.Errorf("counts after NDEATH %v, want all 0", counts)
	}
}

// TestSparkplug_NodeKilled: a node that dies without DISCONNECT has its NDEATH will
// published by the broker, which removes every membership of its devices; an NDEATH
// will of an earlier session (another bdSeq) does not touch the node reborn since.
func TestSparkplug_NodeKilled(t *testing.T) {
	d := startSparkplug(t, sparkplug.Options{Content: sparkplug.ContentEdgeDevice})
	connect := func(id string, bdSeq uint64) *compat5 {
		return compatConnect5(t, d.MQTTAddr, &paho.Connect{ClientID: id, CleanStart: true,
			WillMessage: &paho.WillMessage{Topic: "spBv1.0/plant/NDEATH/line-1", QoS: 1, Payload: spPayload(t, -1, spBdSeq(bdSeq))}}, nil)
	}
	birth := func(c *compat5, bdSeq uint64) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i, p := range []*paho.Publish{
			{Topic: "spBv1.0/plant/NBIRTH/line-1", Payload: spPayload(t, 0, spBdSeq(bdSeq))},
			{Topic: "spBv1.0/plant/DBIRTH/line-1/press", Payload: spPayload(t, 1, spBool("running", 1, true))},
			{Topic: "spBv1.0/plant/DBIRTH/line-1/saw", Payload: spPayload(t, 2, spBool("running", 2, true))},
		} {
			p.QoS = 1
			if pr, err := c.Publish(ctx, p); err != nil || pr.ReasonCode != 0 {
				t.Fatalf("birth %d: %v %+v", i, err, pr)
			}
		}
	}
	old := connect("line-1-old", 1)
	birth(old, 1)
	wantMembers(t, d, "line-1:press", "running", "press")
	wantMembers(t, d, "line-1:saw", "running", "saw")

	old.conn.Close() // killed: the broker publishes its will
	wantMembers(t, d, "line-1:press", "running")
	wantMembers(t, d, "line-1:saw", "running")

	// Reborn as bdSeq 2 on one connection while a stale connection with bdSeq 1's will dies.
	stale := connect("line-1-stale", 1)
	reborn := connect("line-1-new", 2)
	birth(reborn, 2)
	stale.conn.Close()
	arinatest.WaitFor(t, 5*time.Second, func() error {
		if got := metric(t, d.HTTPURL, `arina_sparkplug_stale_deaths_total`); got != 1 {
			return fmt.Errorf("stale deaths = %v, want 1", got)
		}
		return nil
	})
	wantMembers(t, d, "line-1:press", "running", "press")
	reborn.conn.Close()
	wantMembers(t, d, "line-1:press", "running")
	wantMembers(t, d, "line-1:saw", "running")
}

// TestSparkplug_PrimaryHostState: with a host id, the broker publishes the primary
// host's retained STATE, online while it runs and offline when it shuts down.
func TestSparkplug_PrimaryHostState(t *testing.T) {
	d := startSparkplug(t, sparkplug.Options{HostID: "arina-1"})
	sub := MustConnect311(t, d.MQTTAddr, "edge-waits")
	msgs := make(chan pahomqtt.Message, 10)
	if tok := sub.Subscribe("spBv1.0/STATE/+", 1, func(_ pahomqtt.Client, m pahomqtt.Message) { msgs <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	state := func(what string) map[string]any {
		t.Helper()
		var m pahomqtt.Message
		select {
		case m = <-msgs:
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s within 5s", what)
		}
		var st map[string]any
		if m.Topic() != "spBv1.0/STATE/arina-1" || json.Unmarshal(m.Payload(), &st) != nil {
			t.Fatalf("%s: %s %q, want spBv1.0/STATE/arina-1 JSON", what, m.Topic(), m.Payload())
		}
		if ts, ok := st["timestamp"].(float64); !ok || math.Abs(ts-float64(time.Now().UnixMilli())) > 60_000 {
			t.Errorf("%s: timestamp %v, want now in unix ms", what, st["timestamp"])
		}
		return st
	}
	if st := state("retained state"); st["online"] != true {
		t.Fatalf("state %v, want online true", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := state("state at shutdown"); st["online"] != false {
		t.Fatalf("state at shutdown %v, want online false", st)
	}
}

// TestSparkplug_BridgedUpstream: edge nodes publish to a factory's own broker (Debian's
// mosquitto); an upstream with sparkplug: true takes their births, data and deaths,
// the NDEATH will of a node killed there included.
func TestSparkplug_BridgedUpstream(t *testing.T) {
	m := arinatest.StartMosquitto(t)
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.MQTT.Sparkplug = &sparkplug.Options{}
		o.Upstreams = []bridge.Upstream{{Name: "factory", URL: "tcp://" + m.Addr, ClientID: "arina-sp", Sparkplug: true,
			MaxReconnectInterval: 500 * time.Millisecond}}
	})
	arinatest.WaitFor(t, 10*time.Second, func() error {
		if st, _, _ := readyz(t, d.HTTPURL); st != 200 {
			return fmt.Errorf("readyz %d", st)
		}
		if got := metric(t, d.HTTPURL, `arina_bridge_up{upstream="factory"}`); got != 1 {
			return fmt.Errorf("bridge not up yet")
		}
		return nil
	})
	node := compatConnect311(t, m.Addr, "line-9", func(o *pahomqtt.ClientOptions) {
		o.SetBinaryWill("spBv1.0/plant/NDEATH/line-9", spPayload(t, -1, spBdSeq(4)), 1, false)
	})
	pub := func(topic string, payload []byte) {
		t.Helper()
		if tok := node.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	pub("spBv1.0/plant/NBIRTH/line-9", spPayload(t, 0, spBdSeq(4)))
	pub("spBv1.0/plant/DBIRTH/line-9/press", spPayload(t, 1, spBool("running", 1, true), spBool("jam", 2, false)))
	pub("spBv1.0/plant/DBIRTH/line-9/saw", spPayload(t, 2, spBool("running", 3, false)))
	pub("spBv1.0/plant/DDATA/line-9/saw", spPayload(t, 3, spBool("", 3, true)))
	pub("spBv1.0/plant/DDATA/line-9/press", spPayload(t, 4, spBool("", 2, true)))
	wantMembers(t, d, "line-9", "running", "press", "saw")
	wantMembers(t, d, "line-9", "jam", "press")

	node.conn.Close() // killed: mosquitto publishes the will, the bridge takes it
	wantMembers(t, d, "line-9", "running")
	wantMembers(t, d, "line-9", "jam")
	if got := metric(t, d.HTTPURL, `arina_bridge_messages_total{result="acked",upstream="factory"}`); got != 6 {
		t.Errorf("bridge acked %v messages, want 6 (5 publishes and the will)", got)
	}
}
