package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pacing "golang.org/x/time/rate"
)

// Report is the outcome of a run. Counts, rates and latencies cover the measured phase
// only (after the warm-up). JSON keys are snake_case.
type Report struct {
	Broker               string  `json:"broker"`
	Protocol             string  `json:"protocol"`   // "3.1.1" or "5"
	Client               string  `json:"client"`     // ClientWire or ClientPaho
	Pipelined            bool    `json:"pipelined"`  // wire client, QoS 1: each connection's reader sends the next publishes (see pipeline)
	WriteEach            bool    `json:"write_each"` // wire client: a write per packet
	TS                   bool    `json:"ts"`         // events carry a "ts"
	QoS                  int     `json:"qos"`
	Publishers           int     `json:"publishers"`
	InFlight             int     `json:"inflight"`                         // per publisher, as asked
	InFlightEffective    int     `json:"inflight_effective"`               // per publisher, as run
	ServerReceiveMaximum int     `json:"server_receive_maximum,omitempty"` // MQTT 5: the broker's cap on the QoS 1 window
	Payload              string  `json:"payload"`
	Contents             int     `json:"contents"`
	ContentPrefix        string  `json:"content_prefix"`
	Reactions            int     `json:"reactions"`
	Users                int     `json:"users"`
	Zipf                 float64 `json:"zipf,omitempty"`
	RemoveRatio          float64 `json:"remove_ratio"`
	GoVersion            string  `json:"go_version"`
	NumCPU               int     `json:"num_cpu"`

	WarmupSeconds   float64 `json:"warmup_s"`
	WarmupSent      int64   `json:"warmup_sent"`
	DurationSeconds float64 `json:"duration_s"`         // measured phase, until the last publish completed (unrounded)
	PublishSeconds  float64 `json:"publish_duration_s"` // measured phase, until the last publish was sent
	Interrupted     bool    `json:"interrupted"`        // the context ended the run early

	Sent            int64            `json:"sent"`  // publishes issued
	Acked           int64            `json:"acked"` // QoS 1: successful PUBACKs; QoS 0: always 0
	Errors          int64            `json:"errors"`
	ErrorsByKind    map[string]int64 `json:"errors_by_kind"`
	FirstError      string           `json:"first_error,omitempty"`
	ConnectionsLost int              `json:"connections_lost"`
	PublishRate     float64          `json:"publish_rate"` // Sent / PublishSeconds, events/s
	AckRate         float64          `json:"ack_rate"`     // Acked / DurationSeconds, events/s

	// QoS 0 with the wire client: the PUBLISHes the broker read between two barriers
	// (PINGREQ/PINGRESP round trips, see wireConn.barrier) on every connection, one at
	// the start of the measured phase and one after its last publish, and their rate
	// between the first start barrier and the last end barrier. Unlike PublishRate it
	// does not count what still sat in socket buffers when the run ended, nor leave out
	// the warm-up's backlog read during the measured phase.
	Confirmed     int64   `json:"confirmed,omitempty"`
	ConfirmedRate float64 `json:"confirmed_rate,omitempty"`

	// With Options.BrokerPID: the broker's CPU time (user + system) from the start of
	// the measured phase until its last publish completed, and that per event
	// acknowledged (QoS 1) or confirmed read (QoS 0), in µs; and the generator's own.
	BrokerCPUSeconds    float64 `json:"broker_cpu_s,omitempty"`
	BrokerCPUPerEventUS float64 `json:"broker_cpu_per_event_us,omitempty"`
	GeneratorCPUSeconds float64 `json:"generator_cpu_s,omitempty"`

	AckLatency *Latency    `json:"ack_latency,omitempty"`        // QoS 1: publish to PUBACK
	Visibility *Visibility `json:"visibility_latency,omitempty"` // with Options.HTTPURL: publish to visible over HTTP
	Subscriber *Subscriber `json:"subscriber,omitempty"`         // with Options.Subscribe
}

// Latency summarises a latency histogram, in milliseconds. Percentiles are upper bounds
// within 0.8% of the true value.
type Latency struct {
	Count  int64   `json:"count"`
	MinMS  float64 `json:"min_ms"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p99_9_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Visibility is the latency from publishing a probe event to its count being visible
// over HTTP, and how many probes did not get there.
type Visibility struct {
	*Latency         // nil when no probe became visible
	Probes     int64 `json:"probes"`      // probes sent
	Lost       int64 `json:"lost"`        // probes refused, or not visible within the ack timeout
	HTTPErrors int64 `json:"http_errors"` // failed polls (transport errors, unexpected statuses)
}

// Subscriber counts what the broker relayed to one subscriber of <prefix>/#.
type Subscriber struct {
	Received int64   `json:"received"`
	Rate     float64 `json:"rate"` // Received / time to the last message, events/s
}

// Progress is a snapshot taken during a run; counts are of the current phase.
type Progress struct {
	Elapsed   time.Duration // since Run began (connecting and warm-up included)
	Warmup    bool          // still warming up
	Sent      int64
	Completed int64 // acknowledged (QoS 1) or written (QoS 0)
	Errors    int64
	InFlight  int64
	Received  int64   // by the subscriber, if any
	SentRate  float64 // events/s over the last interval, of either phase
	DoneRate  float64 // completions/s over the last interval, of either phase
}

const (
	phaseWarmup int32 = iota
	phaseMeasured
	phaseStopped
)

// topicTableMax bounds the precomputed topic strings (contents x reactions); beyond it
// each event formats its topic, one allocation.
const topicTableMax = 1 << 18

// runner is the state of one run.
type runner struct {
	o     Options
	runID string
	start time.Time // when Run began; every time.Duration below is since start

	phase      atomic.Int32
	remaining  atomic.Int64 // events left in the measured phase, when Options.Events > 0
	measuring  atomic.Bool  // the measured phase has begun
	measuredAt atomic.Int64 // time.Duration when the measured phase began
	topics     []string     // prefix/c<i>/r<j> at i*Reactions+j, or nil

	pubs       []*publisher
	startMarks []<-chan mark // QoS 0, wire client: the barriers at the start of the measured phase
	confirmed  int64
	confirmDur time.Duration
	window     int             // workers per publisher: Options.InFlight, capped at the broker's Receive Maximum (MQTT 5, QoS 1)
	pace       *pacing.Limiter // the workers' share of Options.Rate; nil: unpaced, or no workers
	pubRate    float64         // Options.Rate / Publishers: each pipeline's share; 0: unpaced

	errMu    sync.Mutex
	errKinds map[string]int64
	firstErr string

	// HTTP visibility probes (Options.HTTPURL).
	http       *http.Client
	probes     chan *probe // capacity 1; at most one probe is outstanding
	probeBusy  atomic.Bool
	sampleN    atomic.Int64
	probeSeq   atomic.Int64
	vis        *histogram
	probesLost atomic.Int64
	httpErrs   atomic.Int64

	// Subscriber (Options.Subscribe).
	sub      conn
	received atomic.Int64
	recvBase atomic.Int64 // received when the measured phase began
	lastRecv atomic.Int64 // time.Duration of the last message

	// CPU time (Options.BrokerPID) at the start and the end of the measured phase.
	brokerCPU0, brokerCPU1 time.Duration
	genCPU0, genCPU1       time.Duration
	cpuErr                 error
}

// publisher is one connection and its counters. The counters are shared by its workers.
type publisher struct {
	c       conn
	sampler bool // sends the HTTP probes

	sent, ok, errs    atomic.Int64 // measured phase; ok: acknowledged (QoS 1) or written (QoS 0)
	wSent, wOK, wErrs atomic.Int64 // warm-up
	ack               *histogram

	mu               sync.Mutex
	lastPub, lastEnd time.Duration // measured phase, merged from the workers as they end
}

// worker is one goroutine of a publisher, with one publish outstanding at a time; a
// publisher has runner.window of them. Everything here is reused from event to event.
type worker struct {
	slot    int // index among the publisher's workers
	rng     *rand.Rand
	zc, zr  *rand.Zipf // nil when uniform
	payload []byte
	topic   []byte
	timer   *time.Timer  // ack timeout (MQTT 3.1.1 paho client)
	pub5    paho.Publish // MQTT 5 packet

	lastPub, lastEnd time.Duration
}

// probe is one visibility sample: an add on a content nobody else writes to.
type probe struct {
	content string
	t0      time.Time
	failed  atomic.Bool // the publish was refused or timed out; it will not become visible
}

// Run connects Options.Publishers clients to the broker, publishes generated add and
// remove events until Options.Events were sent or Options.Duration passed (after the
// warm-up), waits for the outstanding acknowledgements, disconnects and reports. When
// ctx ends, it stops publishing, waits for what is outstanding (at most
// Options.AckTimeout) and reports what it measured, with Report.Interrupted set. It
// returns an error only when the run could not start: bad options, a broker or HTTP
// API that cannot be reached.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return nil, err
	}
	r := &runner{
		o:        o,
		start:    time.Now(),
		runID:    strconv.FormatUint(rand.Uint64()>>32, 36),
		errKinds: make(map[string]int64),
		vis:      newHistogram(),
		probes:   make(chan *probe, 1),
	}
	if n := o.Contents * o.Reactions; n <= topicTableMax {
		r.topics = make([]string, 0, n)
		for c := range o.Contents {
			for re := range o.Reactions {
				r.topics = append(r.topics, string(appendTopic(nil, o.TopicPrefix, o.ContentPrefix, c, re)))
			}
		}
	}
	if o.HTTPURL != "" {
		r.http = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, TLSClientConfig: o.HTTPTLS}, Timeout: o.AckTimeout}
		defer r.http.CloseIdleConnections()
		if err := r.checkHTTP(ctx); err != nil {
			return nil, err
		}
	}

	receiveMax, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	// More workers than the broker's Receive Maximum would only queue in the client
	// for a send quota, and that wait would count as ack latency.
	r.window = o.InFlight
	if o.Rate > 0 && len(r.pubs) > 0 {
		// Each publisher gets an equal share: a pipeline paces itself (pipeline.pace),
		// the other publishers' workers share a limiter with a burst of one event per
		// publisher, so that the pace is even, not lumpy.
		r.pubRate = o.Rate / float64(len(r.pubs))
		if n := len(r.pubs) - r.countPipelined(); n > 0 {
			r.pace = pacing.NewLimiter(pacing.Limit(r.pubRate*float64(n)), n)
		}
	}
	if o.QoS > 0 && receiveMax > 0 && int(receiveMax) < r.window {
		r.window = int(receiveMax)
	}
	defer r.disconnect()

	interrupted := r.drive(ctx)
	r.confirm()
	r.drainSubscriber()
	return r.report(receiveMax, interrupted), nil
}

// connect dials the publishers and the subscriber; on failure it closes what it opened.
// It returns the smallest Receive Maximum the broker announced (MQTT 5).
func (r *runner) connect(ctx context.Context) (uint16, error) {
	var receiveMax uint16
	d := dialOptions{addr: r.o.Broker, login: r.o.Login, protocol: r.o.Protocol, qos: r.o.QoS, ackTimeout: r.o.AckTimeout, client: r.o.Client, writeEach: r.o.WriteEach}
	prefix := r.o.ClientIDPrefix
	if prefix == "" {
		prefix = "arina-bench-" + r.runID + "-"
	}
	if r.o.Subscribe {
		sd := d
		sd.clientID = prefix + "sub"
		sd.subscribe = r.o.TopicPrefix + "/#"
		sd.onMessage = func() {
			r.received.Add(1)
			r.lastRecv.Store(int64(time.Since(r.start)))
		}
		c, _, err := dial(ctx, sd)
		if err != nil {
			return 0, fmt.Errorf("connecting the subscriber to %s: %w", r.o.Broker, err)
		}
		r.sub = c
	}
	d.window = r.o.InFlight
	for i := range r.o.Publishers {
		d.clientID = prefix + strconv.Itoa(i)
		c, rm, err := dial(ctx, d)
		if err != nil {
			r.disconnect()
			return 0, fmt.Errorf("connecting publisher %d of %d to %s: %w", i+1, r.o.Publishers, r.o.Broker, err)
		}
		if rm != 0 && (receiveMax == 0 || rm < receiveMax) {
			receiveMax = rm
		}
		r.pubs = append(r.pubs, &publisher{c: c, sampler: i == 0 && r.o.HTTPURL != "", ack: newHistogram()})
	}
	return receiveMax, nil
}

// disconnect closes every connection, in parallel; it may be called more than once.
func (r *runner) disconnect() {
	var wg sync.WaitGroup
	for _, p := range r.pubs {
		wg.Go(p.c.close)
	}
	if r.sub != nil {
		wg.Go(r.sub.close)
	}
	wg.Wait()
	r.pubs, r.sub = nil, nil
}

// drive runs the workers and the probe poller until the run ends, reporting progress,
// and returns whether ctx ended it.
func (r *runner) drive(ctx context.Context) (interrupted bool) {
	r.remaining.Store(r.o.Events)
	var warmupC, endC <-chan time.Time
	r.phase.Store(phaseWarmup)
	if r.o.Warmup > 0 {
		t := time.NewTimer(r.o.Warmup)
		defer t.Stop()
		warmupC = t.C
	} else {
		endC = r.beginMeasured()
	}

	// The worker context ends only after the workers have returned: publishes
	// outstanding when the run stops are waited for (up to AckTimeout), not abandoned.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var workers sync.WaitGroup
	for i, p := range r.pubs {
		if r.pipelined(p) {
			workers.Go(func() { p.c.(*wireConn).runPipeline(r, p, i, r.window) })
			continue
		}
		for j := range r.window {
			w := r.newWorker(i, j)
			workers.Go(func() { r.work(wctx, p, w) })
		}
	}
	var poller sync.WaitGroup
	if r.o.HTTPURL != "" {
		poller.Go(func() { r.poll(wctx) })
	}
	workersDone := make(chan struct{})
	go func() { // ends with the workers; drive waits for workersDone
		workers.Wait()
		close(workersDone)
	}()

	tick := time.NewTicker(r.o.ProgressInterval)
	defer tick.Stop()
	done := ctx.Done()
	last := progressTotals{at: time.Now()}
	for running := true; running; {
		select {
		case <-workersDone:
			running = false
		case <-done:
			interrupted = true
			done = nil
			r.phase.Store(phaseStopped)
		case <-warmupC:
			endC = r.beginMeasured()
		case <-endC:
			r.phase.Store(phaseStopped)
		case now := <-tick.C:
			if r.o.Progress != nil {
				r.o.Progress(r.progress(now, &last))
			}
		}
	}
	r.readCPU(&r.brokerCPU1, &r.genCPU1)
	close(r.probes) // every sender (worker) has returned
	poller.Wait()
	return interrupted
}

// barriers sends a barrier on every publisher's connection, at QoS 0 with the wire
// client; it returns nil otherwise (a PUBACK already says what the broker took in).
func (r *runner) barriers() []<-chan mark {
	if r.o.QoS != 0 || r.o.Client != ClientWire {
		return nil
	}
	marks := make([]<-chan mark, len(r.pubs))
	for i, p := range r.pubs {
		marks[i] = p.c.(*wireConn).barrier()
	}
	return marks
}

// confirm ends the measured phase's barriers and waits, at most AckTimeout, for both
// of every connection's; connections lost before either answered are left out.
func (r *runner) confirm() {
	if r.startMarks == nil {
		return
	}
	ends := r.barriers()
	ctx, cancel := context.WithTimeout(context.Background(), r.o.AckTimeout)
	defer cancel()
	wait := func(ch <-chan mark) (mark, bool) {
		select {
		case m := <-ch:
			return m, true
		case <-ctx.Done():
			return mark{}, false
		}
	}
	var first, last time.Time
	for i := range r.pubs {
		m0, ok0 := wait(r.startMarks[i])
		m1, ok1 := wait(ends[i])
		if !ok0 || !ok1 {
			continue
		}
		r.confirmed += m1.queued - m0.queued
		if first.IsZero() || m0.at.Before(first) {
			first = m0.at
		}
		if m1.at.After(last) {
			last = m1.at
		}
	}
	r.confirmDur = last.Sub(first)
}

// beginMeasured starts the measured phase and returns the channel that ends it, if
// Options.Duration is set.
func (r *runner) beginMeasured() <-chan time.Time {
	if r.phase.Load() != phaseWarmup {
		return nil // stopped during the warm-up
	}
	r.readCPU(&r.brokerCPU0, &r.genCPU0)
	r.measuredAt.Store(int64(time.Since(r.start)))
	r.recvBase.Store(r.received.Load())
	r.startMarks = r.barriers()
	r.measuring.Store(true)
	r.phase.Store(phaseMeasured)
	if r.o.Duration > 0 {
		return time.After(r.o.Duration)
	}
	return nil
}

func (r *runner) newWorker(pub, idx int) *worker {
	rng := rand.New(rand.NewPCG(r.o.Seed, uint64(pub)<<32|uint64(idx)))
	w := &worker{slot: idx, rng: rng, payload: make([]byte, 0, 64), topic: make([]byte, 0, 64)}
	if r.o.Zipf > 0 {
		w.zc = rand.NewZipf(rng, r.o.Zipf, 1, uint64(r.o.Contents-1))
		w.zr = rand.NewZipf(rng, r.o.Zipf, 1, uint64(r.o.Reactions-1))
	}
	if r.o.Protocol == MQTT311 && r.o.Client == ClientPaho {
		w.timer = time.NewTimer(time.Hour)
		w.timer.Stop()
	}
	return w
}

// work publishes events on p, one at a time, until the run stops, the event budget is
// spent or the connection is lost.
func (r *runner) work(ctx context.Context, p *publisher, w *worker) {
	defer r.retire(p, w)
	for {
		measured, ok := r.next(p)
		if !ok {
			return
		}
		if r.pace != nil && r.pace.Wait(ctx) != nil {
			return
		}
		var pr *probe
		var topic string
		if p.sampler && measured {
			pr = r.maybeProbe(w)
		}
		if pr != nil {
			topic = r.o.TopicPrefix + "/" + pr.content + "/probe"
		} else {
			topic = r.event(w)
		}
		t0 := r.sending(p, w, measured)
		if pr != nil {
			pr.t0 = t0
			r.probes <- pr // never blocks: the slot is free while probeBusy was false
		}
		kind, err := p.c.publish(ctx, w, topic, w.payload)
		if kind != "" {
			w.payload = make([]byte, 0, 64) // the client may still hold the old one
			if pr != nil {
				pr.failed.Store(true)
			}
		}
		r.completed(p, w, measured, kind, err, t0, time.Now())
	}
}

// pipelined reports whether p's window is driven by its connection's reader (see
// pipeline) rather than by a goroutine per in-flight publish: for the wire client at
// QoS 1, on a publisher that sends no HTTP probes.
func (r *runner) pipelined(p *publisher) bool {
	_, wire := p.c.(*wireConn)
	return wire && !r.o.NoPipeline && r.o.QoS == 1 && !p.sampler
}

// countPipelined returns how many publishers are pipelined.
func (r *runner) countPipelined() int {
	n := 0
	for _, p := range r.pubs {
		if r.pipelined(p) {
			n++
		}
	}
	return n
}

// next reports whether a worker of p publishes another event, and whether that event
// is in the measured phase; it takes the event from the budget.
func (r *runner) next(p *publisher) (measured, ok bool) {
	ph := r.phase.Load()
	if ph == phaseStopped || p.c.lost() {
		return false, false
	}
	measured = ph == phaseMeasured
	if measured && r.o.Events > 0 && r.remaining.Add(-1) < 0 {
		return false, false
	}
	return measured, true
}

// sending counts a publish of w going out now, and returns now.
func (r *runner) sending(p *publisher, w *worker, measured bool) time.Time {
	t0 := time.Now()
	if measured {
		p.sent.Add(1)
		w.lastPub = t0.Sub(r.start)
	} else {
		p.wSent.Add(1)
	}
	return t0
}

// completed counts the outcome of a publish of w sent at t0 and completed at t1: kind
// "" for success, else the error kind.
func (r *runner) completed(p *publisher, w *worker, measured bool, kind string, err error, t0, t1 time.Time) {
	if !measured {
		if kind == "" {
			p.wOK.Add(1)
		} else {
			p.wErrs.Add(1)
		}
		return
	}
	w.lastEnd = t1.Sub(r.start)
	if kind != "" {
		p.errs.Add(1)
		r.countError(kind, err)
		return
	}
	p.ok.Add(1)
	if r.o.QoS > 0 {
		p.ack.record(t1.Sub(t0))
	}
}

// retire merges the times of a worker that has stopped publishing into p.
func (r *runner) retire(p *publisher, w *worker) {
	p.mu.Lock()
	p.lastPub = max(p.lastPub, w.lastPub)
	p.lastEnd = max(p.lastEnd, w.lastEnd)
	p.mu.Unlock()
}

// event draws the next event into w.payload and returns its topic.
func (r *runner) event(w *worker) string {
	c := pick(w.rng, w.zc, r.o.Contents)
	re := pick(w.rng, w.zr, r.o.Reactions)
	u := w.rng.IntN(r.o.Users)
	remove := r.o.RemoveRatio > 0 && w.rng.Float64() < r.o.RemoveRatio
	var ts int64
	if r.o.TS {
		ts = time.Now().UnixMilli()
	}
	w.payload = appendPayload(w.payload[:0], r.o.Payload == PayloadJSON, remove, u, ts)
	if r.topics != nil {
		return r.topics[c*r.o.Reactions+re]
	}
	w.topic = appendTopic(w.topic[:0], r.o.TopicPrefix, r.o.ContentPrefix, c, re)
	return string(w.topic)
}

func pick(rng *rand.Rand, z *rand.Zipf, n int) int {
	if z != nil {
		return int(z.Uint64())
	}
	return rng.IntN(n)
}

func appendTopic(b []byte, prefix, contentPrefix string, content, reaction int) []byte {
	b = append(b, prefix...)
	b = append(b, '/')
	b = append(b, contentPrefix...)
	b = append(b, 'c')
	b = strconv.AppendInt(b, int64(content), 10)
	b = append(b, "/r"...)
	return strconv.AppendInt(b, int64(reaction), 10)
}

// appendPayload appends an event's payload; ts (unix ms, JSON only) 0: none.
func appendPayload(b []byte, asJSON, remove bool, user int, ts int64) []byte {
	action := "add"
	if remove {
		action = "remove"
	}
	if !asJSON {
		b = append(b, action...)
		b = append(b, " u"...)
		return strconv.AppendInt(b, int64(user), 10)
	}
	b = append(b, `{"user_id":"u`...)
	b = strconv.AppendInt(b, int64(user), 10)
	b = append(b, `","action":"`...)
	b = append(b, action...)
	if ts != 0 {
		b = append(b, `","ts":`...)
		b = strconv.AppendInt(b, ts, 10)
		return append(b, '}')
	}
	return append(b, `"}`...)
}

// maybeProbe turns the first and then every SampleEvery-th event of the sampler into a
// probe, unless one is still outstanding; it writes the probe's payload into w.payload.
func (r *runner) maybeProbe(w *worker) *probe {
	if (r.sampleN.Add(1)-1)%int64(r.o.SampleEvery) != 0 || !r.probeBusy.CompareAndSwap(false, true) {
		return nil
	}
	k := r.probeSeq.Add(1)
	w.payload = appendPayload(w.payload[:0], r.o.Payload == PayloadJSON, false, 0, 0)
	return &probe{content: r.o.ContentPrefix + "probe-" + r.runID + "-" + strconv.FormatInt(k, 10)}
}

// poll resolves the probes one after the other: it polls the probe's content until it
// is visible, the publish failed, or AckTimeout passed since it was published.
func (r *runner) poll(ctx context.Context) {
	for pr := range r.probes {
		deadline := pr.t0.Add(r.o.AckTimeout)
		for {
			ok, err := r.visible(ctx, pr.content)
			now := time.Now()
			if err != nil {
				r.httpErrs.Add(1)
			}
			if ok {
				r.vis.record(now.Sub(pr.t0))
				break
			}
			if pr.failed.Load() || now.After(deadline) {
				r.probesLost.Add(1)
				break
			}
			time.Sleep(r.o.PollInterval)
		}
		r.probeBusy.Store(false)
	}
}

// visible reports whether GET /api/v1/contents/{content} shows a count.
func (r *runner) visible(ctx context.Context, content string) (bool, error) {
	req, err := r.apiRequest(ctx, "/api/v1/contents/"+url.PathEscape(content))
	if err != nil {
		return false, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		return false, nil
	case http.StatusOK:
	default:
		_, _ = io.Copy(io.Discard, resp.Body)
		return false, fmt.Errorf("GET %s: %s", req.URL, resp.Status)
	}
	var body struct {
		Total int64 `json:"total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return false, fmt.Errorf("decoding GET %s: %w", req.URL, err)
	}
	return body.Total > 0, nil
}

// apiRequest is a GET of path on the HTTP API, with the token if there is one.
func (r *runner) apiRequest(ctx context.Context, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.o.HTTPURL+path, nil)
	if err != nil {
		return nil, err
	}
	if r.o.HTTPToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.HTTPToken)
	}
	return req, nil
}

// checkHTTP makes sure the HTTP API answers the probes' route (with the token, when
// the API wants one) before the run starts: a content nobody wrote, 404.
func (r *runner) checkHTTP(ctx context.Context) error {
	req, err := r.apiRequest(ctx, "/api/v1/contents/"+url.PathEscape(r.o.ContentPrefix+"probe-"+r.runID+"-check"))
	if err != nil {
		return fmt.Errorf("%w: http_url %q: %v", ErrInvalidOptions, r.o.HTTPURL, err)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return fmt.Errorf("checking the HTTP API: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("checking the HTTP API: GET %s: %s", req.URL, resp.Status)
	}
	return nil
}

func (r *runner) countError(kind string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	r.errKinds[kind]++
	if r.firstErr == "" && err != nil {
		r.firstErr = kind + ": " + err.Error()
	}
}

// drainSubscriber waits, at most AckTimeout, until the subscriber has received as many
// messages as were completed, or nothing arrived for a second.
func (r *runner) drainSubscriber() {
	if r.sub == nil {
		return
	}
	var want int64
	for _, p := range r.pubs {
		want += p.ok.Load()
	}
	deadline := time.Now().Add(r.o.AckTimeout)
	lastN, lastChange := r.received.Load(), time.Now()
	for time.Now().Before(deadline) {
		n := r.received.Load()
		if n-r.recvBase.Load() >= want {
			return
		}
		if n != lastN {
			lastN, lastChange = n, time.Now()
		} else if time.Since(lastChange) > time.Second {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// progress sums the counters of the current phase.
func (r *runner) progress(now time.Time, last *progressTotals) Progress {
	p := Progress{Elapsed: now.Sub(r.start), Warmup: !r.measuring.Load()}
	var tot progressTotals
	for _, pub := range r.pubs {
		ws, wo, we := pub.wSent.Load(), pub.wOK.Load(), pub.wErrs.Load()
		ms, mo, me := pub.sent.Load(), pub.ok.Load(), pub.errs.Load()
		tot.sent += ws + ms
		tot.done += wo + mo
		if p.Warmup {
			p.Sent, p.Completed, p.Errors = p.Sent+ws, p.Completed+wo, p.Errors+we
		} else {
			p.Sent, p.Completed, p.Errors = p.Sent+ms, p.Completed+mo, p.Errors+me
		}
	}
	p.InFlight = max(p.Sent-p.Completed-p.Errors, 0)
	if r.sub != nil {
		p.Received = r.received.Load()
		if !p.Warmup {
			p.Received -= r.recvBase.Load()
		}
	}
	// Rates span the phase change: they count warm-up and measured events alike.
	if s := now.Sub(last.at).Seconds(); s > 0 {
		p.SentRate = float64(tot.sent-last.sent) / s
		p.DoneRate = float64(tot.done-last.done) / s
	}
	tot.at = now
	*last = tot
	return p
}

// progressTotals are the counts of both phases at the previous progress report.
type progressTotals struct {
	sent, done int64
	at         time.Time
}

func (r *runner) report(receiveMax uint16, interrupted bool) *Report {
	o := r.o
	rep := &Report{
		Broker:               o.Broker,
		Protocol:             o.Protocol.String(),
		Client:               o.Client,
		Pipelined:            len(r.pubs) > 0 && r.pipelined(r.pubs[len(r.pubs)-1]),
		QoS:                  int(o.QoS),
		Publishers:           o.Publishers,
		InFlight:             o.InFlight,
		InFlightEffective:    r.window,
		ServerReceiveMaximum: int(receiveMax),
		Payload:              o.Payload,
		WriteEach:            o.WriteEach && o.Client == ClientWire,
		TS:                   o.TS,
		Contents:             o.Contents,
		ContentPrefix:        o.ContentPrefix,
		Reactions:            o.Reactions,
		Users:                o.Users,
		Zipf:                 o.Zipf,
		RemoveRatio:          o.RemoveRatio,
		GoVersion:            runtime.Version(),
		NumCPU:               runtime.NumCPU(),
		WarmupSeconds:        o.Warmup.Seconds(),
		Interrupted:          interrupted,
	}
	ack := newHistogram()
	var lastPub, lastEnd time.Duration
	var ok int64
	for _, p := range r.pubs {
		rep.WarmupSent += p.wSent.Load()
		rep.Sent += p.sent.Load()
		ok += p.ok.Load()
		rep.Errors += p.errs.Load()
		ack.merge(p.ack)
		p.mu.Lock()
		lastPub, lastEnd = max(lastPub, p.lastPub), max(lastEnd, p.lastEnd)
		p.mu.Unlock()
		if p.c.lost() {
			rep.ConnectionsLost++
		}
	}
	rep.ErrorsByKind = r.errKinds
	rep.FirstError = r.firstErr
	if !r.measuring.Load() {
		return rep // stopped during the warm-up
	}
	at := time.Duration(r.measuredAt.Load())
	pubDur, dur := max(lastPub-at, 0), max(lastEnd-at, 0)
	// Unrounded: a short run (600 QoS 0 events) can finish in well under a
	// millisecond, and a duration rounded to 0 would contradict its positive rate.
	rep.PublishSeconds, rep.DurationSeconds = pubDur.Seconds(), dur.Seconds()
	rep.PublishRate = rate(rep.Sent, pubDur)
	if r.confirmed > 0 {
		rep.Confirmed = r.confirmed
		rep.ConfirmedRate = rate(r.confirmed, r.confirmDur)
	}
	if o.QoS > 0 {
		rep.Acked = ok
		rep.AckRate = rate(ok, dur)
		rep.AckLatency = ack.latency()
	}
	if o.BrokerPID > 0 && r.cpuErr == nil {
		rep.BrokerCPUSeconds = (r.brokerCPU1 - r.brokerCPU0).Seconds()
		rep.GeneratorCPUSeconds = (r.genCPU1 - r.genCPU0).Seconds()
		n := rep.Acked
		if o.QoS == 0 {
			n = rep.Confirmed
		}
		if n > 0 {
			rep.BrokerCPUPerEventUS = math.Round(rep.BrokerCPUSeconds/float64(n)*1e8) / 100
		}
	}
	if o.HTTPURL != "" {
		rep.Visibility = &Visibility{
			Latency:    r.vis.latency(),
			Probes:     r.probeSeq.Load(),
			Lost:       r.probesLost.Load(),
			HTTPErrors: r.httpErrs.Load(),
		}
	}
	if r.sub != nil {
		n := r.received.Load() - r.recvBase.Load()
		rep.Subscriber = &Subscriber{Received: n, Rate: rate(n, time.Duration(r.lastRecv.Load())-at)}
	}
	return rep
}

// rate returns n per second of d, rounded to 0.1; 0 when d is not positive.
func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Round(float64(n)/d.Seconds()*10) / 10
}
