package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/arina-dev/arina/ingest"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestHistogram_Quantile(t *testing.T) {
	t.Run("Uniform", func(t *testing.T) {
		h := newHistogram()
		for i := 1; i <= 10000; i++ { // 1µs .. 10ms
			h.record(time.Duration(i) * time.Microsecond)
		}
		for _, tt := range []struct {
			q    float64
			want time.Duration
		}{
			{0.5, 5000 * time.Microsecond},
			{0.99, 9900 * time.Microsecond},
			{0.999, 9990 * time.Microsecond},
			{1, 10000 * time.Microsecond},
			{0, 1 * time.Microsecond},
		} {
			got := h.quantile(tt.q)
			if got < tt.want || float64(got) > float64(tt.want)*(1+1.0/histSub) {
				t.Errorf("quantile(%v) = %v, want %v (+0.8%%)", tt.q, got, tt.want)
			}
		}
		l := h.latency()
		if l.Count != 10000 || l.MinMS != 0.001 || l.MaxMS != 10 || l.MeanMS < 5 || l.MeanMS > 5.001 {
			t.Errorf("latency() = %+v, want count 10000, min 0.001, max 10, mean 5.0005", l)
		}
	})
	t.Run("SmallValuesExact", func(t *testing.T) {
		h := newHistogram()
		for _, v := range []time.Duration{3, 7, 7, 9, 200} {
			h.record(v)
		}
		for q, want := range map[float64]time.Duration{0.2: 3, 0.4: 7, 0.6: 7, 0.8: 9, 1: 200} {
			if got := h.quantile(q); got != want {
				t.Errorf("quantile(%v) = %v, want %v", q, got, want)
			}
		}
	})
	t.Run("Empty", func(t *testing.T) {
		h := newHistogram()
		if got := h.quantile(0.5); got != 0 {
			t.Errorf("quantile of empty = %v, want 0", got)
		}
		if l := h.latency(); l != nil {
			t.Errorf("latency of empty = %+v, want nil", l)
		}
	})
	t.Run("Skewed", func(t *testing.T) {
		h := newHistogram()
		for range 990 {
			h.record(time.Millisecond)
		}
		for range 9 {
			h.record(50 * time.Millisecond)
		}
		h.record(time.Second)
		if got := h.quantile(0.5); got < time.Millisecond || got > time.Millisecond*1008/1000 {
			t.Errorf("p50 = %v, want 1ms", got)
		}
		if got := h.quantile(0.99); got < time.Millisecond || got > time.Millisecond*1008/1000 {
			t.Errorf("p99 = %v, want 1ms (990 of 1000 values)", got)
		}
		if got := h.quantile(0.995); got < 50*time.Millisecond || got > 50*time.Millisecond*1008/1000 {
			t.Errorf("p99.5 = %v, want 50ms", got)
		}
		if got := h.quantile(0.999); got < 50*time.Millisecond || got > 50*time.Millisecond*1008/1000 {
			t.Errorf("p99.9 = %v, want 50ms (the 999th value)", got)
		}
		if got := h.quantile(1); got != time.Second {
			t.Errorf("p100 = %v, want 1s", got)
		}
	})
	t.Run("Clamped", func(t *testing.T) {
		h := newHistogram()
		h.record(-time.Second)
		h.record(24 * time.Hour)
		if got := h.quantile(0); got != 0 {
			t.Errorf("min = %v, want 0 (negative clamps)", got)
		}
		if got := h.quantile(1); got != 24*time.Hour {
			t.Errorf("max = %v, want 24h (exact maximum kept)", got)
		}
	})
}

// TestHistogram_Buckets checks the bucket layout: every value lands in a bucket whose
// upper bound is at most 1/128 above it, and buckets are contiguous and in order.
func TestHistogram_Buckets(t *testing.T) {
	prev := -1
	check := func(v uint64) {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d after %d (of %d)", v, i, prev, histBuckets)
		}
		prev = i
		up := histUpper(i)
		if up < v || float64(up-v) > float64(v)/histSub {
			t.Fatalf("histUpper(histIndex(%d)) = %d: not within 1/%d above", v, up, histSub)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d (upper %d)", v, i-1, histUpper(i-1))
		}
	}
	for v := uint64(0); v < 1<<16; v++ {
		check(v)
	}
	for v := uint64(1 << 16); v < histMaxValue; v += v/997 + 1 {
		check(v)
	}
	check(histMaxValue)
	if got := histIndex(histMaxValue); got != histBuckets-1 {
		t.Errorf("histIndex(max) = %d, want the last bucket %d", got, histBuckets-1)
	}
}

func TestHistogram_Merge(t *testing.T) {
	a, b := newHistogram(), newHistogram()
	for i := 1; i <= 100; i++ {
		a.record(time.Duration(i) * time.Millisecond)
		b.record(time.Duration(100+i) * time.Millisecond)
	}
	m := newHistogram()
	m.merge(a)
	m.merge(b)
	m.merge(newHistogram())
	if m.count() != 200 || m.quantile(0) != time.Millisecond || m.quantile(1) != 200*time.Millisecond {
		t.Fatalf("merged count %d min %v max %v, want 200 1ms 200ms", m.count(), m.quantile(0), m.quantile(1))
	}
	if got := m.quantile(0.5); got < 100*time.Millisecond || got > 101*time.Millisecond {
		t.Errorf("merged p50 = %v, want 100ms", got)
	}
}

func TestAppendPayload(t *testing.T) {
	for _, tt := range []struct {
		json, remove bool
		want         string
	}{
		{false, false, "add u42"},
		{false, true, "remove u42"},
		{true, false, `{"user_id":"u42","action":"add"}`},
		{true, true, `{"user_id":"u42","action":"remove"}`},
	} {
		if got := string(appendPayload(nil, tt.json, tt.remove, 42, 0)); got != tt.want {
			t.Errorf("appendPayload(json=%v, remove=%v) = %q, want %q", tt.json, tt.remove, got, tt.want)
		}
	}
	if got := string(appendPayload(nil, true, true, 42, 1780000000123)); got != `{"user_id":"u42","action":"remove","ts":1780000000123}` {
		t.Errorf("appendPayload with ts = %q", got)
	}
	if got := string(appendTopic(nil, "plant1/kitchen", "", 7, 3)); got != "plant1/kitchen/c7/r3" {
		t.Errorf("appendTopic = %q", got)
	}
	if got := string(appendTopic(nil, "kitchen", "bench-", 7, 3)); got != "kitchen/bench-c7/r3" {
		t.Errorf("appendTopic with a content prefix = %q", got)
	}
}

func TestEvent_NoAllocs(t *testing.T) {
	for _, n := range []int{10, topicTableMax + 1} { // precomputed topics, formatted topics
		o := Options{Contents: n, Reactions: 1, Users: 100, RemoveRatio: 0.5, Zipf: 1.1}
		o.setDefaults()
		r := &runner{o: o}
		if n <= topicTableMax {
			r.topics = make([]string, n)
		}
		w := r.newWorker(0, 0)
		allocs := testing.AllocsPerRun(1000, func() { r.event(w) })
		want := 0.0
		if r.topics == nil {
			want = 1 // the topic string
		}
		if allocs > want {
			t.Errorf("contents %d: event() allocates %v times, want %v", n, allocs, want)
		}
	}
}

func TestRun_InvalidOptions(t *testing.T) {
	_, err := Run(context.Background(), Options{
		Protocol: 3, Client: "mqttjs", QoS: 2, Publishers: -1, InFlight: 70000, Zipf: 0.5, RemoveRatio: 2,
		TopicPrefix: "a/#", Payload: "xml", HTTPURL: "localhost:4000", TS: true,
	})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("Run = %v, want ErrInvalidOptions", err)
	}
	for _, field := range []string{"protocol", "client", "qos", "publishers", "inflight", "zipf", "remove_ratio", "topic_prefix", "payload", "http_url", "ts"} {
		if !strings.Contains(err.Error(), field+" ") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

// TestRun_TS: with TS every event carries the generator's clock as "ts", which arina
// accepts (none rejected) and remembers: a remove with an older ts is then stale.
func TestRun_TS(t *testing.T) {
	d := arinatest.Start(t)
	before := time.Now().UnixMilli()
	rep, err := Run(context.Background(), Options{Broker: d.MQTTAddr, QoS: 1, Payload: PayloadJSON, TS: true,
		Publishers: 2, InFlight: 4, Events: 200, Contents: 1, Reactions: 1, Users: 1000})
	if err != nil || rep.Acked != 200 || rep.Errors != 0 || !rep.TS {
		t.Fatalf("Run = %+v, %v; want 200 acked, no errors, ts reported", rep, err)
	}
	// u0..u999 of c0/r0: remove every one with a ts before the run; those added
	// during the run stay (their ts is newer), and the count does not move.
	counts, _ := arinatest.Counts(t, d.HTTPURL, "c0")
	if counts["r0"] == 0 {
		t.Fatalf("counts after the run = %v, want members", counts)
	}
	for from := 0; from < 1000; from += 250 { // a request body holds at most 64 KiB
		var body strings.Builder
		for u := from; u < from+250; u++ {
			fmt.Fprintf(&body, `{"type":"reaction","action":"remove","content_id":"c0","reaction_type":"r0","user_id":"u%d","ts":%d}`+"\n", u, before-1)
		}
		resp, err := http.Post(d.HTTPURL+"/api/v1/reactions", "application/x-ndjson", strings.NewReader(body.String()))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/v1/reactions: %s", resp.Status)
		}
	}
	if got, _ := arinatest.Counts(t, d.HTTPURL, "c0"); got["r0"] != counts["r0"] {
		t.Fatalf("after removes older than the run: counts %v, want %v (the run's ts are newer)", got, counts)
	}
}

func TestRun_BrokerDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, proto := range []Protocol{MQTT311, MQTT5} {
		_, err := Run(context.Background(), Options{Broker: addr, Protocol: proto, Events: 1, AckTimeout: 2 * time.Second})
		if err == nil || !strings.Contains(err.Error(), "connecting publisher 1 of 16 to "+addr) {
			t.Errorf("%v: Run = %v, want a connection error naming the broker", proto, err)
		}
	}
}

// TestRun_Arina drives an embedded Arina with both protocols and QoS levels, and checks
// the report's counts against the daemon's state.
func TestRun_Arina(t *testing.T) {
	const (
		events    = 600
		contents  = 5
		reactions = 2
		users     = 2
	)
	// "wire" pipelines the QoS 1 windows of the two publishers that send no probes;
	// "wire-workers" runs a goroutine per in-flight publish, as "paho" does.
	for _, client := range []string{ClientWire, "wire-workers", ClientPaho} {
		for _, proto := range []Protocol{MQTT311, MQTT5} {
			for _, qos := range []byte{0, 1} {
				for _, payload := range []string{PayloadText, PayloadJSON} {
					t.Run(fmt.Sprintf("%s/MQTT%v/QoS%d/%s", client, proto, qos, payload), func(t *testing.T) {
						d := arinatest.Start(t)
						rep, err := Run(context.Background(), Options{
							Broker: d.MQTTAddr, Client: strings.TrimSuffix(client, "-workers"), NoPipeline: strings.HasSuffix(client, "-workers"),
							Protocol: proto, QoS: qos, Payload: payload,
							Publishers: 3, InFlight: 8, Events: events,
							Contents: contents, Reactions: reactions, Users: users, RemoveRatio: 0,
							HTTPURL: d.HTTPURL, SampleEvery: 10, Subscribe: true,
						})
						if err != nil {
							t.Fatalf("Run: %v", err)
						}
						if rep.Sent != events || rep.Errors != 0 || len(rep.ErrorsByKind) != 0 || rep.ConnectionsLost != 0 {
							t.Fatalf("sent %d errors %d %v lost %d, want %d sent and no errors (first: %s)",
								rep.Sent, rep.Errors, rep.ErrorsByKind, rep.ConnectionsLost, events, rep.FirstError)
						}
						if rep.PublishRate <= 0 || rep.DurationSeconds <= 0 {
							t.Errorf("publish rate %v duration %v, want > 0", rep.PublishRate, rep.DurationSeconds)
						}
						if qos == 1 {
							if rep.Acked != events || rep.AckRate <= 0 || rep.AckLatency == nil || rep.AckLatency.Count != events {
								t.Errorf("acked %d rate %v latency %+v, want %d acks with latencies", rep.Acked, rep.AckRate, rep.AckLatency, events)
							}
							if rep.Subscriber == nil || rep.Subscriber.Received != events {
								t.Errorf("subscriber %+v, want %d received", rep.Subscriber, events)
							}
						} else if rep.Acked != 0 || rep.AckLatency != nil {
							t.Errorf("QoS 0: acked %d latency %+v, want none", rep.Acked, rep.AckLatency)
						}
						// QoS 0 over the wire client: with no warm-up, the barriers confirm
						// every publish of the run as read by the broker.
						if qos == 0 && strings.HasPrefix(client, ClientWire) {
							if rep.Confirmed != rep.Sent || rep.ConfirmedRate <= 0 {
								t.Errorf("confirmed %d at %v/s, want all %d sent", rep.Confirmed, rep.ConfirmedRate, rep.Sent)
							}
						} else if rep.Confirmed != 0 || rep.ConfirmedRate != 0 {
							t.Errorf("confirmed %d at %v/s, want none (QoS 1 or paho)", rep.Confirmed, rep.ConfirmedRate)
						}
						if want := client == ClientWire && qos == 1; rep.Pipelined != want {
							t.Errorf("pipelined %v, want %v", rep.Pipelined, want)
						}
						if rep.InFlightEffective != 8 {
							t.Errorf("effective in-flight window %d, want 8", rep.InFlightEffective)
						}
						if proto == MQTT5 && rep.ServerReceiveMaximum != 1024 {
							t.Errorf("server receive maximum %d, want mochi's 1024", rep.ServerReceiveMaximum)
						}
						// At QoS 0 the other publishers may send all events before the
						// sampler's first one; at QoS 1 the window makes that impossible.
						if v := rep.Visibility; v == nil {
							t.Errorf("no visibility report")
						} else if (qos == 1 && v.Probes < 1) || v.Lost != 0 || v.HTTPErrors != 0 ||
							(v.Probes > 0 && (v.Latency == nil || v.Count != v.Probes || v.P50MS <= 0)) {
							t.Errorf("visibility %+v (latency %+v), want every probe visible", v, v.Latency)
						}

						// With no removes and 600 draws over 20 (content, reaction, user)
						// triples, every triple was added (a miss has probability ~1e-11).
						want := map[string]int64{}
						for re := range reactions {
							want["r"+strconv.Itoa(re)] = users
						}
						for c := range contents {
							content := "c" + strconv.Itoa(c)
							testutil.WaitFor(t, 5*time.Second, func() error { // QoS 0 is not acked after apply
								got, status := arinatest.Counts(t, d.HTTPURL, content)
								if !maps.Equal(got, want) {
									return fmt.Errorf("counts of %s = %v (HTTP %d), want %v", content, got, status, want)
								}
								return nil
							})
						}
					})
				}
			}
		}
	}
}

// slowStore is a memory store whose batches take delay to apply, to overload the queue.
type slowStore struct {
	*store.Memory
	delay time.Duration
}

func (s slowStore) Apply(ctx context.Context, ops []store.Op, out []store.Result) error {
	time.Sleep(s.delay) // simulates a slow disk; not synchronisation
	return s.Memory.Apply(ctx, ops, out)
}

// TestRun_Overload checks that refusals are reported by kind: MQTT 5 gets PUBACK 0x97;
// MQTT 3.1.1 gets no PUBACK and its connection is closed (so a real client reconnects
// and resends), which the load generator reports as connection_lost and stops.
func TestRun_Overload(t *testing.T) {
	if testing.Short() {
		t.Skip("overload runs take a few seconds")
	}
	for _, tt := range []struct {
		client string
		proto  Protocol
		kind   string
	}{
		{ClientWire, MQTT5, "puback_0x97_quota_exceeded"},
		{ClientWire, MQTT311, "connection_lost"},
		{ClientPaho, MQTT5, "puback_0x97_quota_exceeded"},
		{ClientPaho, MQTT311, "connection_lost"},
	} {
		t.Run(tt.client+"/MQTT"+tt.proto.String(), func(t *testing.T) {
			d := arinatest.Start(t, func(o *daemon.Options) {
				o.Store = slowStore{Memory: store.NewMemory(), delay: 50 * time.Millisecond}
				o.Ingest = ingest.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: 5 * time.Millisecond}
			})
			rep, err := Run(context.Background(), Options{
				Broker: d.MQTTAddr, Client: tt.client, Protocol: tt.proto, QoS: 1, Publishers: 2, InFlight: 4, Events: 40,
				AckTimeout: 500 * time.Millisecond,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if (tt.proto == MQTT5 && rep.Sent != 40) || rep.Sent == 0 || rep.Acked+rep.Errors != rep.Sent {
				t.Errorf("sent %d acked %d errors %d, want 40 = acked + errors", rep.Sent, rep.Acked, rep.Errors)
			}
			if rep.ErrorsByKind[tt.kind] == 0 || rep.ErrorsByKind[tt.kind] != rep.Errors || rep.FirstError == "" {
				t.Errorf("errors by kind %v (first %q), want only %s", rep.ErrorsByKind, rep.FirstError, tt.kind)
			}
			if rep.Acked > 0 && (rep.AckLatency == nil || rep.AckLatency.Count != rep.Acked) {
				t.Errorf("ack latency %+v, want one sample per ack (%d)", rep.AckLatency, rep.Acked)
			}
		})
	}
}

func TestRun_WarmupAndDuration(t *testing.T) {
	if testing.Short() {
		t.Skip("timed run")
	}
	d := arinatest.Start(t)
	var sawWarmup, sawMeasured atomic.Bool
	rep, err := Run(context.Background(), Options{
		Broker: d.MQTTAddr, QoS: 1, Publishers: 2, InFlight: 4,
		Warmup: 300 * time.Millisecond, Duration: 500 * time.Millisecond,
		ProgressInterval: 50 * time.Millisecond,
		Progress: func(p Progress) {
			if p.Warmup {
				sawWarmup.Store(true)
			} else {
				sawMeasured.Store(true)
			}
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.WarmupSent == 0 || rep.Sent == 0 || rep.Errors != 0 || rep.Acked != rep.Sent {
		t.Errorf("warmup %d sent %d acked %d errors %d, want warm-up events, then sent == acked", rep.WarmupSent, rep.Sent, rep.Acked, rep.Errors)
	}
	if rep.PublishSeconds < 0.45 || rep.PublishSeconds > 0.5+rep.DurationSeconds || rep.DurationSeconds < rep.PublishSeconds {
		t.Errorf("publish %vs, duration %vs, want about 0.5s", rep.PublishSeconds, rep.DurationSeconds)
	}
	if !sawWarmup.Load() || !sawMeasured.Load() {
		t.Errorf("progress saw warm-up %v, measured %v; want both", sawWarmup.Load(), sawMeasured.Load())
	}
}

// TestRun_Rate: a paced run never publishes faster than Options.Rate (plus a burst of
// one event per publisher), however fast the broker acks, whether the connections'
// pipelines pace themselves or worker goroutines share a limiter; and it keeps up
// with the rate it was asked.
func TestRun_Rate(t *testing.T) {
	if testing.Short() {
		t.Skip("timed run")
	}
	d := arinatest.Start(t)
	const rate, publishers = 400.0, 4
	for _, noPipeline := range []bool{false, true} {
		start := time.Now() // the pace is set up after this
		rep, err := Run(context.Background(), Options{
			Broker: d.MQTTAddr, QoS: 1, Publishers: publishers, InFlight: 50, NoPipeline: noPipeline,
			Warmup: 200 * time.Millisecond, Duration: time.Second, Rate: rate,
		})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if rep.Pipelined == noPipeline {
			t.Errorf("NoPipeline %v: report says pipelined %v", noPipeline, rep.Pipelined)
		}
		if rep.Sent == 0 || rep.Errors != 0 || rep.Acked != rep.Sent {
			t.Fatalf("sent %d acked %d errors %d", rep.Sent, rep.Acked, rep.Errors)
		}
		// 200 slots could publish thousands of events in 0.7 s against an in-process
		// broker; paced, they publish at most the burst plus Rate per second of the
		// whole run.
		elapsed := time.Since(start).Seconds()
		budget := int64(rate*elapsed) + publishers + 1
		if total := rep.WarmupSent + rep.Sent; total > budget {
			t.Errorf("NoPipeline %v: published %d events (%d in warm-up) in %.2fs at --rate %v: over the budget of %d",
				noPipeline, total, rep.WarmupSent, elapsed, rate, budget)
		}
		// And not far below it: the measured phase alone is 1 s at 400/s. Half is the
		// bound, not more: under -race on a loaded 2-core machine the broker itself
		// answered only 55% of the pace in 0.5 s, and a pacer off by a factor (per
		// publisher instead of in all, ms for s) still falls well below it.
		if rep.Sent < rate*0.5 {
			t.Errorf("NoPipeline %v: published %d events in the measured 1 s at --rate %v, want at least half of %v",
				noPipeline, rep.Sent, rate, rate)
		}
	}
	if _, err := Run(context.Background(), Options{Broker: d.MQTTAddr, Rate: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("Rate -1: err %v, want ErrInvalidOptions", err)
	}
}

func TestRun_Interrupted(t *testing.T) {
	d := arinatest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rep, err := Run(ctx, Options{
		Broker: d.MQTTAddr, QoS: 1, Publishers: 2, InFlight: 4, Duration: time.Hour,
		ProgressInterval: 20 * time.Millisecond,
		Progress: func(p Progress) {
			if p.Completed > 0 {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !rep.Interrupted || rep.Sent == 0 || rep.Acked != rep.Sent || rep.Errors != 0 {
		t.Errorf("interrupted %v sent %d acked %d errors %d, want an interrupted run with every publish acked",
			rep.Interrupted, rep.Sent, rep.Acked, rep.Errors)
	}
}

func TestReport_JSON(t *testing.T) {
	d := arinatest.Start(t)
	rep, err := Run(context.Background(), Options{
		Broker: d.MQTTAddr, QoS: 1, Publishers: 1, InFlight: 2, Events: 50, HTTPURL: d.HTTPURL, SampleEvery: 5, Subscribe: true,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"broker", "protocol", "qos", "publishers", "inflight", "sent", "acked", "errors",
		"errors_by_kind", "publish_rate", "ack_rate", "duration_s", "ack_latency", "visibility_latency", "subscriber"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON has no %q: %s", k, b)
		}
	}
	vis, _ := m["visibility_latency"].(map[string]any)
	for _, k := range []string{"p50_ms", "p99_ms", "p99_9_ms", "probes", "lost", "http_errors"} {
		if _, ok := vis[k]; !ok {
			t.Errorf("visibility_latency has no %q: %s", k, b)
		}
	}
}

// TestRun_Mosquitto drives a real mosquitto, as `arina bench` does to compare brokers.
func TestRun_Mosquitto(t *testing.T) {
	bin := testutil.NeedProgram(t, "mosquitto", "mosquitto")
	addr := startMosquitto(t, bin)
	for _, tc := range []struct {
		client string
		proto  Protocol
	}{{ClientWire, MQTT311}, {ClientWire, MQTT5}, {ClientPaho, MQTT311}, {ClientPaho, MQTT5}} {
		proto := tc.proto
		t.Run(tc.client+"/MQTT"+proto.String(), func(t *testing.T) {
			rep, err := Run(context.Background(), Options{
				Broker: addr, Client: tc.client, Protocol: proto, QoS: 1, Publishers: 2, InFlight: 30, Events: 400, Subscribe: true,
			})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.Sent != 400 || rep.Acked != 400 || rep.Errors != 0 || rep.Subscriber == nil || rep.Subscriber.Received != 400 {
				t.Errorf("sent %d acked %d errors %d %v subscriber %+v, want 400 of each", rep.Sent, rep.Acked, rep.Errors, rep.ErrorsByKind, rep.Subscriber)
			}
			if rep.Visibility != nil {
				t.Errorf("visibility %+v without an HTTP URL", rep.Visibility)
			}
			// mosquitto announces a Receive Maximum of 20 to MQTT 5 clients.
			if want := map[Protocol]int{MQTT311: 30, MQTT5: 20}[proto]; rep.InFlightEffective != want {
				t.Errorf("effective in-flight window %d (receive maximum %d), want %d", rep.InFlightEffective, rep.ServerReceiveMaximum, want)
			}
		})
	}
}

// startMosquitto runs mosquitto on a free loopback port until the test ends and
// returns its address once it accepts connections.
func startMosquitto(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-p", strconv.Itoa(port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting mosquitto: %v", err)
	}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		for s := bufio.NewScanner(stderr); s.Scan(); {
			t.Log("mosquitto:", s.Text())
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-logDone
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testutil.WaitFor(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
	return addr
}

// TestRunQueries reads counts from a real daemon and reports the rate and latency.
func TestRunQueries(t *testing.T) {
	d := arinatest.Start(t)
	rep, err := RunQueries(context.Background(), QueryOptions{URL: d.HTTPURL, Workers: 4, Duration: 300 * time.Millisecond, Contents: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Errors != 0 || rep.Rate <= 0 || rep.Latency == nil || rep.Latency.Count != rep.Requests {
		t.Fatalf("report %+v", rep)
	}
	if _, err := RunQueries(context.Background(), QueryOptions{URL: "127.0.0.1:1"}); err == nil {
		t.Fatal("a URL without a scheme was accepted")
	}
}
