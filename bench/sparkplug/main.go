// Command sparkplug drives a running `arina serve` the way a Sparkplug B plant does and
// measures issue #18's targets. It starts nothing itself.
//
// E edge nodes (--nodes, one paho MQTT 3.1.1 connection each, QoS 1, an NDEATH will)
// with D devices each (--devices in all) send NBIRTH and a DBIRTH per device (one
// Boolean metric, --metric, alias 1, false), then DDATA paced at --rate metrics/s in
// all: one Boolean metric per DDATA by alias, toggling, with the payload's seq (0..255
// per node, as Tahu counts) and timestamps, each node going round its devices in turn.
// With --mode json the same connections publish the same memberships as JSON events
// ({"user_id","action","ts"} on <topic-prefix>/<content>/<metric>) instead: the
// comparison through the same daemon.
//
// Measured over --duration after --warmup:
//   - publish → PUBACK latency (arina acks QoS 1 once the event is committed);
//   - publish → visible: the change seen on GET /api/v1/stream?batch=1 (SSE), matched by
//     content, user and action;
//   - the daemon's CPU (user + system, /proc/<pid>/stat of --pid) per metric acked.
//
// At the end it waits for every PUBACK and every change to show, then reads each
// node's members over HTTP and checks they are exactly the devices whose last value
// sent was true. It exits 1 if any change was not applied, acked or seen.
//
//	go run ./bench/sparkplug --broker 127.0.0.1:1883 --http 127.0.0.1:4000 --pid $(pidof arina)
//
// The content ids are the edge node ids, <content-prefix>e<i> (json mode: with "json-"
// before), the users d<i>: benchmark a daemon of its own (bench/sparkplug-fleet does).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	"github.com/arina-dev/arina/sparkplug/pb"
)

type config struct {
	broker, httpAddr, mode, group, metric, prefix, topicPrefix string
	nodes, devices, pid                                        int
	rate                                                       float64
	duration, warmup, timeout                                  time.Duration
	asJSON                                                     bool
}

func main() {
	var c config
	flag.StringVar(&c.broker, "broker", "127.0.0.1:1883", "arina's MQTT listener (host:port)")
	flag.StringVar(&c.httpAddr, "http", "127.0.0.1:4000", "arina's HTTP API (host:port)")
	flag.IntVar(&c.pid, "pid", 0, "process id of `arina serve`: report its CPU per metric (from /proc/<pid>/stat)")
	flag.StringVar(&c.mode, "mode", "sparkplug", "sparkplug (DDATA protobuf on spBv1.0/...) or json (the same memberships as JSON events)")
	flag.IntVar(&c.nodes, "nodes", 50, "edge nodes, one MQTT connection each")
	flag.IntVar(&c.devices, "devices", 5000, "devices in all, spread over the nodes")
	flag.Float64Var(&c.rate, "rate", 10000, "DDATA metrics (json: events) per second over all nodes")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "measured phase")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "paced publishing before the measured phase, left out of the figures")
	flag.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait at the end for PUBACKs and changes still outstanding")
	flag.StringVar(&c.group, "group", "plant", "Sparkplug group id")
	flag.StringVar(&c.metric, "metric", "on", "the Boolean metric's name (the reaction type)")
	flag.StringVar(&c.prefix, "content-prefix", "spb-", "start of the edge node ids (the content ids)")
	flag.StringVar(&c.topicPrefix, "topic-prefix", "kitchen", "arina's ingest topic prefix (json mode)")
	flag.BoolVar(&c.asJSON, "json", false, "print the report as one JSON object")
	flag.Parse()
	if c.mode != "sparkplug" && c.mode != "json" {
		fail(fmt.Errorf("--mode must be sparkplug or json, not %q", c.mode))
	}
	if c.nodes < 1 || c.devices < c.nodes || c.rate <= 0 {
		fail(errors.New("need --nodes ≥ 1, --devices ≥ --nodes and --rate > 0"))
	}
	if c.mode == "json" {
		c.prefix = "json-" + c.prefix
	}
	r, err := run(c)
	if r != nil {
		if c.asJSON {
			_ = json.NewEncoder(os.Stdout).Encode(r)
		} else {
			r.print(os.Stdout)
		}
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sparkplug bench:", err)
	os.Exit(1)
}

// Latencies are percentiles in ms.
type Latencies struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

func percentiles(d []time.Duration) Latencies {
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		i := int(q * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return Latencies{N: len(d), P50: at(.5), P90: at(.9), P99: at(.99), P999: at(.999), Max: at(1)}
}

// Report is what a run found.
type Report struct {
	Mode           string    `json:"mode"`
	Nodes          int       `json:"nodes"`
	Devices        int       `json:"devices"`
	TargetRate     float64   `json:"target_rate"`
	DurationS      float64   `json:"duration_s"`
	Sent           int64     `json:"sent"`        // metrics (events) published in the measured phase
	Rate           float64   `json:"rate"`        // of those, per second
	SentTotal      int64     `json:"sent_total"`  // messages, births and warm-up included
	Acked          int64     `json:"acked_total"` // PUBACKs of all publishes
	AckErrors      int64     `json:"ack_errors"`
	Seen           int64     `json:"seen"`       // changes matched on the stream (measured phase)
	Unmatched      int64     `json:"unmatched"`  // changes on the stream for our contents that matched no publish
	NotSeen        int64     `json:"not_seen"`   // data publishes whose change never showed
	Mismatches     int       `json:"mismatches"` // devices whose membership over HTTP differs from the last value sent
	Stale          int64     `json:"stale"`      // events the daemon found stale (arina_events_stale_total) during the run
	PubAck         Latencies `json:"publish_to_puback"`
	Visible        Latencies `json:"publish_to_visible"`
	DaemonCPUS     float64   `json:"daemon_cpu_s,omitempty"`
	DaemonCPUUS    float64   `json:"daemon_cpu_per_metric_us,omitempty"`
	DaemonCores    float64   `json:"daemon_cores,omitempty"`
	GeneratorCPUS  float64   `json:"generator_cpu_s"`
	LoadAvg        string    `json:"loadavg"`
	StreamFailures string    `json:"stream_error,omitempty"`
}

func (r *Report) print(w io.Writer) {
	fmt.Fprintf(w, "mode %s: %d nodes x %d devices, %.0f metrics/s target, %.1fs measured (load %s)\n",
		r.Mode, r.Nodes, r.Devices/r.Nodes, r.TargetRate, r.DurationS, r.LoadAvg)
	fmt.Fprintf(w, "sent %d in the measured phase (%.0f/s), %d in all; acked %d, ack errors %d\n", r.Sent, r.Rate, r.SentTotal, r.Acked, r.AckErrors)
	fmt.Fprintf(w, "changes seen %d, not seen %d, unmatched %d, stale %d; HTTP members differing from the last value sent: %d\n", r.Seen, r.NotSeen, r.Unmatched, r.Stale, r.Mismatches)
	l := func(name string, x Latencies) {
		fmt.Fprintf(w, "%-20s n=%d p50 %.2f ms, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n", name, x.N, x.P50, x.P90, x.P99, x.P999, x.Max)
	}
	l("publish → PUBACK", r.PubAck)
	l("publish → visible", r.Visible)
	if r.DaemonCPUS > 0 {
		fmt.Fprintf(w, "daemon CPU %.2fs (%.2f cores): %.1f µs per metric; generator CPU %.2fs\n", r.DaemonCPUS, r.DaemonCores, r.DaemonCPUUS, r.GeneratorCPUS)
	}
	if r.StreamFailures != "" {
		fmt.Fprintln(w, "stream:", r.StreamFailures)
	}
}

// pending is one published change of a device, awaiting its stream event.
type pending struct {
	at       time.Time
	add      bool
	measured bool
}

// tracker matches stream changes to publishes: per (content, user) a FIFO of the
// changes published and not yet seen (a device's changes show in order).
type tracker struct {
	mu        sync.Mutex
	wait      map[string][]pending
	visible   []time.Duration
	seen      int64
	unmatched int64
	prefix    string
	outstand  int
	counting  bool // after the births: a change that matches no publish is counted
}

func key(content, user string) string { return content + "\x00" + user }

func (t *tracker) published(k string, p pending) {
	t.mu.Lock()
	t.wait[k] = append(t.wait[k], p)
	t.outstand++
	t.mu.Unlock()
}

func (t *tracker) change(content, user, action string, now time.Time) {
	if !strings.HasPrefix(content, t.prefix) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key(content, user)
	q := t.wait[k]
	if len(q) == 0 || q[0].add != (action == "add") {
		if t.counting {
			t.unmatched++
		}
		return
	}
	p := q[0]
	if len(q) == 1 {
		delete(t.wait, k)
	} else {
		t.wait[k] = q[1:]
	}
	t.outstand--
	if p.measured {
		t.seen++
		t.visible = append(t.visible, now.Sub(p.at))
	}
}

func (t *tracker) outstanding() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outstand
}

// stream reads the SSE change feed until ctx ends; ready is closed at its "ready" event.
func stream(ctx context.Context, base string, t *tracker, ready chan<- struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream?batch=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/v1/stream: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var event string
	var changes []struct {
		ContentID string `json:"content_id"`
		UserID    string `json:"user_id"`
		Action    string `json:"action"`
	}
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")):
			now := time.Now()
			switch event {
			case "ready":
				close(ready)
			case "changes":
				changes = changes[:0]
				if err := json.Unmarshal(line[6:], &changes); err != nil {
					return fmt.Errorf("stream: %v", err)
				}
				for _, c := range changes {
					t.change(c.ContentID, c.UserID, c.Action, now)
				}
			case "error":
				return fmt.Errorf("stream: the daemon cut the feed off: %s", line[6:])
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream: the daemon closed the feed")
}

// procCPU returns user + system CPU of pid, from /proc/<pid>/stat (clock ticks of 10 ms).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("unreadable /proc/pid/stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

func selfCPU() time.Duration {
	d, _ := procCPU(os.Getpid())
	return d
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// node is one edge node's connection and state; only its own goroutine publishes.
type node struct {
	id      string
	devices []string
	values  []bool   // last value sent per device
	stamps  []uint64 // timestamp of that value, unix ms
	seq     uint64
	client  pahomqtt.Client
	acks    chan ack
}

type ack struct {
	tok      pahomqtt.Token
	at       time.Time
	measured bool
}

func nowMS() uint64 { return uint64(time.Now().UnixMilli()) }

func (n *node) payload(c *config, ms ...*pb.Payload_Metric) []byte {
	p := &pb.Payload{Timestamp: proto.Uint64(nowMS()), Seq: proto.Uint64(n.seq), Metrics: ms}
	n.seq = (n.seq + 1) % 256
	b, err := proto.Marshal(p)
	if err != nil {
		panic(err) // a message built here always marshals
	}
	return b
}

func boolMetric(name string, alias uint64, v bool) *pb.Payload_Metric {
	return boolMetricAt(name, alias, v, nowMS())
}

func boolMetricAt(name string, alias uint64, v bool, ts uint64) *pb.Payload_Metric {
	m := &pb.Payload_Metric{Alias: proto.Uint64(alias), Timestamp: proto.Uint64(ts),
		Datatype: proto.Uint32(uint32(pb.DataType_Boolean)), Value: &pb.Payload_Metric_BooleanValue{BooleanValue: v}}
	if name != "" {
		m.Name = proto.String(name)
	}
	return m
}

func bdSeq(v uint64) *pb.Payload_Metric {
	return &pb.Payload_Metric{Name: proto.String("bdSeq"), Timestamp: proto.Uint64(nowMS()),
		Datatype: proto.Uint32(uint32(pb.DataType_Int64)), Value: &pb.Payload_Metric_LongValue{LongValue: v}}
}

func (n *node) topic(c *config, typ, device string) string {
	if c.mode == "json" {
		return c.topicPrefix + "/" + n.id + "/" + c.metric
	}
	t := "spBv1.0/" + c.group + "/" + typ + "/" + n.id
	if device != "" {
		t += "/" + device
	}
	return t
}

// publish sends one message at QoS 1 and queues its token for the ack waiter.
func (n *node) publish(topic string, payload []byte, measured bool) {
	at := time.Now()
	n.acks <- ack{tok: n.client.Publish(topic, 1, false, payload), at: at, measured: measured}
}

// change publishes device i's next value: a DDATA by alias, or a JSON event.
//
// Each of a device's changes gets a later timestamp than its last, as a device's own
// changes have: when a node catches up after a stall (a loaded machine) it may send
// one device twice within a millisecond, and with equal timestamps last-writer-wins
// keeps the remove (an add at the same ms as a remove is stale), which would count as
// a change never seen.
func (n *node) change(c *config, i int, v bool, t *tracker, measured bool) {
	n.values[i] = v
	ts := max(nowMS(), n.stamps[i]+1)
	n.stamps[i] = ts
	var payload []byte
	if c.mode == "json" {
		action := "remove"
		if v {
			action = "add"
		}
		payload = fmt.Appendf(nil, `{"user_id":%q,"action":%q,"ts":%d}`, n.devices[i], action, ts)
	} else {
		payload = n.payload(c, boolMetricAt("", 1, v, ts))
	}
	t.published(key(n.id, n.devices[i]), pending{at: time.Now(), add: v, measured: measured})
	n.publish(n.topic(c, "DDATA", n.devices[i]), payload, measured)
}

func run(c config) (*Report, error) {
	base := "http://" + c.httpAddr
	if _, err := url.Parse(base); err != nil {
		return nil, err
	}
	t := &tracker{wait: make(map[string][]pending), prefix: c.prefix}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	streamErr := make(chan error, 1)
	go func() { streamErr <- stream(ctx, base, t, ready) }()
	select {
	case <-ready:
	case err := <-streamErr:
		return nil, err
	case <-time.After(c.timeout):
		return nil, errors.New("no ready event on /api/v1/stream")
	}

	stale0, _ := metricSum(base, "arina_events_stale_total")

	// Connect the nodes, each with its NDEATH will.
	nodes := make([]*node, c.nodes)
	var acked, ackErrs atomic.Int64
	var ackMu sync.Mutex
	var ackLat []time.Duration
	var ackWG sync.WaitGroup
	closeAcks := sync.OnceFunc(func() {
		for _, n := range nodes {
			if n != nil {
				close(n.acks)
			}
		}
	})
	defer closeAcks()
	for e := range nodes {
		n := &node{id: fmt.Sprintf("%se%d", c.prefix, e), acks: make(chan ack, 1<<16)}
		for d := e; d < c.devices; d += c.nodes {
			n.devices = append(n.devices, fmt.Sprintf("d%d", d))
		}
		n.values = make([]bool, len(n.devices))
		n.stamps = make([]uint64, len(n.devices))
		const bd = 0
		o := pahomqtt.NewClientOptions().AddBroker("tcp://" + c.broker).SetClientID(n.id).
			SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
			SetKeepAlive(30 * time.Second).SetWriteTimeout(10 * time.Second)
		if c.mode == "sparkplug" {
			o.SetBinaryWill(n.topic(&c, "NDEATH", ""), mustMarshal(&pb.Payload{Timestamp: proto.Uint64(nowMS()), Metrics: []*pb.Payload_Metric{bdSeq(bd)}}), 1, false)
		}
		n.client = pahomqtt.NewClient(o)
		if tok := n.client.Connect(); !tok.WaitTimeout(c.timeout) || tok.Error() != nil {
			return nil, fmt.Errorf("connect %s: %v", n.id, tok.Error())
		}
		defer n.client.Disconnect(250)
		nodes[e] = n
		ackWG.Go(func() {
			var mine []time.Duration
			for a := range n.acks {
				if !a.tok.WaitTimeout(c.timeout) || a.tok.Error() != nil {
					ackErrs.Add(1)
					continue
				}
				acked.Add(1)
				if a.measured {
					mine = append(mine, time.Since(a.at))
				}
			}
			ackMu.Lock()
			ackLat = append(ackLat, mine...)
			ackMu.Unlock()
		})
	}

	// Births: NBIRTH then a DBIRTH per device, every device false (json: a remove).
	var sent atomic.Int64
	for _, n := range nodes {
		if c.mode == "sparkplug" {
			n.publish(n.topic(&c, "NBIRTH", ""), n.payload(&c, bdSeq(0), boolMetric("Node Control/Rebirth", 0, false)), false)
			sent.Add(1)
			for i, d := range n.devices {
				n.stamps[i] = nowMS()
				n.publish(n.topic(&c, "DBIRTH", d), n.payload(&c, boolMetricAt(c.metric, 1, false, n.stamps[i])), false)
			}
		} else {
			for i, d := range n.devices {
				n.stamps[i] = nowMS()
				n.publish(n.topic(&c, "DBIRTH", d), fmt.Appendf(nil, `{"user_id":%q,"action":"remove","ts":%d}`, d, n.stamps[i]), false)
			}
		}
		sent.Add(int64(len(n.devices)))
	}
	// Births are acked before the data starts (a node's DBIRTHs precede its DDATA anyway).
	// What the births removed (left by an earlier run) shows on the stream now, matching
	// no publish: count such changes only from here on.
	births := sent.Load()
	for limit := time.Now().Add(c.timeout); acked.Load()+ackErrs.Load() < births; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(limit) {
			return nil, fmt.Errorf("births: %d of %d acked after %v", acked.Load(), births, c.timeout)
		}
	}
	time.Sleep(500 * time.Millisecond)
	t.mu.Lock()
	t.counting = true
	t.mu.Unlock()

	// Paced data: each node sends its share, rate/nodes per second, on a 10 ms tick.
	start := time.Now()
	measureFrom := start.Add(c.warmup)
	end := measureFrom.Add(c.duration)
	per := c.rate / float64(c.nodes)
	var measuredSent atomic.Int64
	var cpu0, self0 time.Duration
	var cpuOnce sync.Once
	markStart := func() {
		cpuOnce.Do(func() {
			if c.pid > 0 {
				cpu0, _ = procCPU(c.pid)
			}
			self0 = selfCPU()
		})
	}
	var pubWG sync.WaitGroup
	for e, n := range nodes {
		pubWG.Go(func() {
			// Stagger the nodes over one tick.
			time.Sleep(time.Duration(e) * 10 * time.Millisecond / time.Duration(c.nodes))
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			t0, done, next := time.Now(), 0, 0
			for now := range tick.C {
				if now.After(end) {
					return
				}
				measured := now.After(measureFrom)
				if measured {
					markStart()
				}
				due := int(now.Sub(t0).Seconds() * per)
				for ; done < due; done++ {
					n.change(&c, next, !n.values[next], t, measured)
					next = (next + 1) % len(n.devices)
					sent.Add(1)
					if measured {
						measuredSent.Add(1)
					}
				}
			}
		})
	}
	pubWG.Wait()
	elapsed := time.Since(measureFrom)
	if elapsed > c.duration {
		elapsed = c.duration
	}
	// Wait for the acks, then for the changes still outstanding.
	closeAcks()
	ackWG.Wait()
	var cpu1 time.Duration
	if c.pid > 0 {
		cpu1, _ = procCPU(c.pid)
	}
	self1 := selfCPU()
	deadline := time.Now().Add(c.timeout)
	for t.outstanding() > 0 && time.Now().Before(deadline) {
		select {
		case err := <-streamErr:
			streamErr <- err
			deadline = time.Now()
		case <-time.After(20 * time.Millisecond):
		}
	}
	r := &Report{Mode: c.mode, Nodes: c.nodes, Devices: c.devices, TargetRate: c.rate, DurationS: elapsed.Seconds(),
		Sent: measuredSent.Load(), SentTotal: sent.Load(), Acked: acked.Load(), AckErrors: ackErrs.Load(),
		PubAck: percentiles(ackLat), GeneratorCPUS: (self1 - self0).Seconds(), LoadAvg: loadavg()}
	r.Rate = float64(r.Sent) / elapsed.Seconds()
	t.mu.Lock()
	r.Seen, r.Unmatched, r.NotSeen = t.seen, t.unmatched, int64(t.outstand)
	r.Visible = percentiles(t.visible)
	t.mu.Unlock()
	if c.pid > 0 && r.Sent > 0 {
		r.DaemonCPUS = (cpu1 - cpu0).Seconds()
		r.DaemonCPUUS = r.DaemonCPUS * 1e6 / float64(r.Sent)
		r.DaemonCores = r.DaemonCPUS / elapsed.Seconds()
	}
	select {
	case err := <-streamErr:
		if err != nil {
			r.StreamFailures = err.Error()
		}
	default:
	}
	if stale1, err := metricSum(base, "arina_events_stale_total"); err == nil {
		r.Stale = int64(stale1 - stale0)
	}

	// The end state over HTTP: each node's members are the devices last sent true.
	for _, n := range nodes {
		got, err := members(base, n.id, c.metric)
		if err != nil {
			return r, err
		}
		for i, d := range n.devices {
			if got[d] != n.values[i] {
				r.Mismatches++
			}
			delete(got, d)
		}
		r.Mismatches += len(got)
	}
	var bad []string
	if r.AckErrors > 0 {
		bad = append(bad, fmt.Sprintf("%d publishes not acked", r.AckErrors))
	}
	if r.NotSeen > 0 || r.Unmatched > 0 {
		bad = append(bad, fmt.Sprintf("%d changes not seen on the stream, %d unmatched", r.NotSeen, r.Unmatched))
	}
	if r.Stale > 0 {
		bad = append(bad, fmt.Sprintf("the daemon found %d events stale", r.Stale))
	}
	if r.Mismatches > 0 {
		bad = append(bad, fmt.Sprintf("%d devices' memberships differ from the last value sent", r.Mismatches))
	}
	if r.StreamFailures != "" {
		bad = append(bad, r.StreamFailures)
	}
	if len(bad) > 0 {
		return r, errors.New(strings.Join(bad, "; "))
	}
	return r, nil
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err) // a message built here always marshals
	}
	return b
}

// members reads every member of (content, reaction), page by page.
func members(base, content, reaction string) (map[string]bool, error) {
	got := map[string]bool{}
	after := ""
	for {
		u := fmt.Sprintf("%s/api/v1/contents/%s/reactions/%s/members?limit=1000&after=%s", base,
			url.PathEscape(content), url.PathEscape(reaction), url.QueryEscape(after))
		resp, err := http.Get(u)
		if err != nil {
			return nil, err
		}
		var page struct {
			Members []struct {
				UserID string `json:"user_id"`
			} `json:"members"`
			NextAfter string `json:"next_after"`
		}
		switch resp.StatusCode {
		case http.StatusOK:
			err = json.NewDecoder(resp.Body).Decode(&page)
		case http.StatusNotFound: // never held a member
		default:
			err = fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, m := range page.Members {
			got[m.UserID] = true
		}
		if page.NextAfter == "" {
			return got, nil
		}
		after = page.NextAfter
	}
}

// metricSum adds up every series of a counter on the daemon's /metrics.
func metricSum(base, name string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}
