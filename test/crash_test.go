package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/testutil"
)

// Helpers in this file are prefixed with "crash" so they cannot collide with those of
// the other files of package test.

// The crash test's shape. Every (content, reaction) set — a group — belongs to exactly
// one publisher: one of crashConns MQTT 3.1.1 connections, or the HTTP goroutine.
const (
	crashConns     = 6
	crashContents  = 6
	crashReactions = 8
	crashCycles    = 40 // default; ARINA_CRASH_CYCLES overrides
)

// crashUsers are the users of a group (a group has the first 1 to 3 of them).
var crashUsers = []string{"sam", "ann", "zoë"}

// crashEvent is one add or remove of a user in a group.
type crashEvent struct {
	user string
	add  bool
}

func (e crashEvent) String() string {
	if e.add {
		return "add " + e.user
	}
	return "remove " + e.user
}

// crashGroup is the oracle for one (content, reaction) set. Its publisher sends one
// event at a time and waits for the acknowledgement before the next one, so when the
// process is killed at most one event of the group is in flight: after the restart the
// count tells exactly whether it was applied, and the model stays exact across cycles.
// (A lost acknowledged event could hide behind an applied in-flight event of the same
// group only if the store kept a later batch and lost an earlier one.)
type crashGroup struct {
	content, reaction string
	users             []string
	owner             int // MQTT connection index, or crashConns for the HTTP goroutine

	present  map[string]bool // membership from the acknowledged (or resolved) events
	listed   bool            // an add was applied: the reaction stays listed, even at 0
	inflight *crashEvent     // sent but not acknowledged when the process died
	acked    int             // acknowledged events, all cycles
	history  []string        // the latest acknowledged events, for failure reports
}

func (g *crashGroup) count() int64 {
	var n int64
	for _, in := range g.present {
		if in {
			n++
		}
	}
	return n
}

// changes reports whether e changes the group's membership.
func (g *crashGroup) changes(e crashEvent) bool { return g.present[e.user] != e.add }

// next picks the group's next event: mostly one that changes the membership (so that an
// event in flight at the kill matters), sometimes a random one (duplicate adds, removes
// of absent users).
func (g *crashGroup) next(rng *rand.Rand) crashEvent {
	u := g.users[rng.IntN(len(g.users))]
	if rng.IntN(5) == 0 {
		return crashEvent{user: u, add: rng.IntN(2) == 0}
	}
	return crashEvent{user: u, add: !g.present[u]}
}

// ack records e as applied.
func (g *crashGroup) ack(e crashEvent, how string) {
	g.present[e.user] = e.add
	if e.add {
		g.listed = true
	}
	g.inflight = nil
	g.acked++
	g.history = append(g.history, how+" "+e.String())
	if len(g.history) > 12 {
		g.history = slices.Delete(g.history, 0, len(g.history)-12)
	}
}

func (g *crashGroup) members() []string {
	var m []string
	for _, u := range g.users {
		if g.present[u] {
			m = append(m, u)
		}
	}
	return m
}

func (g *crashGroup) publisher() string {
	if g.owner == crashConns {
		return "http"
	}
	return fmt.Sprintf("mqtt connection %d", g.owner)
}

// crashModel is the oracle: every group, by content.
type crashModel struct {
	groups    []*crashGroup
	contents  []string
	byContent map[string][]*crashGroup
}

func newCrashModel() *crashModel {
	m := &crashModel{byContent: make(map[string][]*crashGroup)}
	for c := range crashContents {
		content := fmt.Sprintf("range-%d", c)
		m.contents = append(m.contents, content)
		for r := range crashReactions {
			i := len(m.groups)
			g := &crashGroup{
				content: content, reaction: fmt.Sprintf("r%d", r),
				users: crashUsers[:1+i%len(crashUsers)], owner: i % (crashConns + 1),
				present: make(map[string]bool),
			}
			m.groups = append(m.groups, g)
			m.byContent[content] = append(m.byContent[content], g)
		}
	}
	return m
}

func (m *crashModel) acked() int {
	n := 0
	for _, g := range m.groups {
		n += g.acked
	}
	return n
}

func (m *crashModel) inflight() int {
	n := 0
	for _, g := range m.groups {
		if g.inflight != nil && g.changes(*g.inflight) {
			n++
		}
	}
	return n
}

// resolve reads the counts of a freshly restarted arina and checks them against the
// model: a group's count must be that of its acknowledged events, or, if an event that
// changes it was in flight at the kill, that of the event applied too (which the model
// then records). A listed reaction must be exactly one that an applied add created.
// It returns how many in-flight events had been applied.
func (m *crashModel) resolve(t *testing.T, p *crashProc, after string) int {
	t.Helper()
	landed := 0
	var problems []string
	for _, content := range m.contents {
		got, status := arinatest.Counts(t, p.url, content)
		if status != http.StatusOK && status != http.StatusNotFound {
			t.Fatalf("%s: GET counts of %s: status %d\n%s", after, content, status, p.stderr.tail())
		}
		for _, g := range m.byContent[content] {
			n, listed := got[g.reaction]
			base := g.count()
			ev := g.inflight
			g.inflight = nil
			switch {
			case ev != nil && g.changes(*ev):
				alt := base + 1
				if !ev.add {
					alt = base - 1
				}
				switch n {
				case base:
				case alt:
					g.ack(*ev, "(in flight at a kill, applied)")
					landed++
				default:
					problems = append(problems, fmt.Sprintf("%s/%s: count %d, want %d or %d (with %q in flight): acknowledged members %v",
						g.content, g.reaction, n, base, alt, ev.String(), g.members()))
				}
			case n != base:
				problems = append(problems, fmt.Sprintf("%s/%s: count %d, want %d: acknowledged members %v",
					g.content, g.reaction, n, base, g.members()))
			}
			if listed != g.listed {
				problems = append(problems, fmt.Sprintf("%s/%s: listed = %v, want %v (an applied add lists a reaction for good)",
					g.content, g.reaction, listed, g.listed))
			}
			delete(got, g.reaction)
		}
		for r, n := range got {
			problems = append(problems, fmt.Sprintf("%s/%s: count %d for a reaction nobody published", content, r, n))
		}
	}
	if len(problems) > 0 {
		var b strings.Builder
		for _, pr := range problems {
			b.WriteString("  " + pr + "\n")
		}
		b.WriteString("recent acknowledged events of those groups (oldest first):\n")
		for _, g := range m.groups {
			for _, pr := range problems {
				if strings.HasPrefix(pr, g.content+"/"+g.reaction+":") {
					fmt.Fprintf(&b, "  %s/%s (%s): %s\n", g.content, g.reaction, g.publisher(), strings.Join(g.history, "; "))
					break
				}
			}
		}
		t.Fatalf("%s: the counts lost acknowledged events:\n%sarina's log:\n%s", after, b.String(), p.stderr.tail())
	}
	return landed
}

// crashConnect311 is MustConnect311 with a bound on how long a Publish call may block
// handing its packet to the client's writer. Without one, paho waits up to 30 seconds
// when the connection dies under a Publish (its writer is gone), and with dozens of
// publishes in flight at every kill that happens every few cycles.
func crashConnect311(t *testing.T, addr, clientID string) pahomqtt.Client {
	t.Helper()
	opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).
		SetWriteTimeout(2 * time.Second)
	c := pahomqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// crashPublishMQTT publishes g's events on c, one at a time, each after the previous
// one's PUBACK, until stop is closed or a publish fails (the process was killed): the
// event sent last then stays in flight.
func crashPublishMQTT(c pahomqtt.Client, g *crashGroup, rng *rand.Rand, stop <-chan struct{}) {
	topic := "kitchen/" + g.content + "/" + g.reaction
	for {
		select {
		case <-stop:
			return
		default:
		}
		ev := g.next(rng)
		g.inflight = &ev
		payload := ev.String()
		if rng.IntN(2) == 0 {
			action := "remove"
			if ev.add {
				action = "add"
			}
			b, _ := json.Marshal(map[string]string{"user_id": ev.user, "action": action})
			payload = string(b)
		}
		tok := c.Publish(topic, 1, false, payload)
		if !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			return
		}
		g.ack(ev, "mqtt")
	}
}

// crashPublishHTTP posts events of its groups, one request at a time, until stop is
// closed or a request fails. A 201 acknowledges the event; its changed and count fields
// are checked against the model.
func crashPublishHTTP(t *testing.T, hc *http.Client, baseURL string, groups []*crashGroup, rng *rand.Rand, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		g := groups[rng.IntN(len(groups))]
		ev := g.next(rng)
		g.inflight = &ev
		action := "remove"
		if ev.add {
			action = "add"
		}
		body, _ := json.Marshal(map[string]string{
			"type": "reaction", "action": action, "content_id": g.content,
			"reaction_type": g.reaction, "user_id": ev.user,
		})
		resp, err := hc.Post(baseURL+"/api/v1/reaction", "application/json", bytes.NewReader(body))
		if err != nil {
			return
		}
		reply, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("POST %s: status %d, want 201: %s", body, resp.StatusCode, reply)
			return
		}
		changed := g.changes(ev)
		g.ack(ev, "http")
		if rerr != nil {
			return // the status line arrived, the body did not: acknowledged all the same
		}
		var r struct {
			Changed bool  `json:"changed"`
			Count   int64 `json:"count"`
		}
		if err := json.Unmarshal(reply, &r); err != nil {
			t.Errorf("POST %s: decoding 201 body %q: %v", body, reply, err)
			return
		}
		if r.Changed != changed || r.Count != g.count() {
			t.Errorf("POST %s: changed %v count %d, want changed %v count %d", body, r.Changed, r.Count, changed, g.count())
		}
	}
}

// TestCrash_KillRestart is the durable store's promise, checked from outside: arina
// runs as a subprocess with store.durability=sync; several MQTT 3.1.1 connections and
// an HTTP client send QoS 1 adds and removes, the process is killed with SIGKILL at a
// random moment, restarted on the same directory, and the counts must equal a replay of
// the acknowledged events (plus, or not, each event in flight at the kill). Some cycles
// kill it during start-up, while it recovers. ARINA_CRASH_SEED and ARINA_CRASH_CYCLES
// reproduce a run.
func TestCrash_KillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds arina and kills it repeatedly; skipped with -short")
	}
	seed := crashEnvInt(t, "ARINA_CRASH_SEED", time.Now().UnixNano())
	cycles := int(crashEnvInt(t, "ARINA_CRASH_CYCLES", crashCycles))
	t.Logf("seed %d, %d cycles (rerun with ARINA_CRASH_SEED=%d ARINA_CRASH_CYCLES=%d)", seed, cycles, seed, cycles)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	bin := crashBuild(t)
	dir := t.TempDir()
	m := newCrashModel()
	var httpGroups []*crashGroup
	for _, g := range m.groups {
		if g.owner == crashConns {
			httpGroups = append(httpGroups, g)
		}
	}

	begin := time.Now()
	landed, inflight, earlyKills := 0, 0, 0
	after := "first start"
	for cycle := 1; cycle <= cycles; cycle++ {
		if rng.IntN(8) == 0 {
			// Kill during start-up: while it opens and recovers the store, or just after.
			delay := time.Duration(rng.IntN(40)) * time.Millisecond
			p := crashSpawn(t, bin, dir)
			time.Sleep(delay) // the random kill moment, not a wait for a condition
			p.kill(t)
			t.Logf("cycle %d: killed %v after exec, %s", cycle, delay, p.stderr.phase())
			earlyKills++
			after = fmt.Sprintf("restart after kill %d (seed %d)", cycle, seed)
			continue
		}
		p := crashStart(t, bin, dir)
		n := m.resolve(t, p, after)
		landed += n
		ackedBefore := m.acked()

		clients := make([]pahomqtt.Client, crashConns)
		for i := range clients {
			clients[i] = crashConnect311(t, p.mqtt, fmt.Sprintf("crash-%d-%d", cycle, i))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i, g := range m.groups {
			if g.owner == crashConns {
				continue
			}
			grng := rand.New(rand.NewPCG(uint64(seed), uint64(cycle)<<16|uint64(i)))
			wg.Go(func() { crashPublishMQTT(clients[g.owner], g, grng, stop) })
		}
		hrng := rand.New(rand.NewPCG(uint64(seed), uint64(cycle)<<16|0xffff))
		wg.Go(func() { crashPublishHTTP(t, p.http, p.url, httpGroups, hrng, stop) })

		delay := time.Duration(20+rng.IntN(131)) * time.Millisecond
		time.Sleep(delay) // the random kill moment, not a wait for a condition
		batches := metric(t, p.url, "arina_ingest_batch_size_count")
		p.kill(t)
		// The publishers see their connections fail; stop is only a safety net, closed
		// once the process is gone (a process being killed still acknowledges for a
		// moment, and those events count as acknowledged).
		close(stop)
		wg.Wait()
		for _, c := range clients {
			c.Disconnect(0)
		}
		if t.Failed() {
			t.FailNow()
		}
		inflight += m.inflight()
		t.Logf("cycle %d: %d in flight at the previous kill applied; killed after %v of publishing: %d events acknowledged (%v writer batches), %d in flight",
			cycle, n, delay, m.acked()-ackedBefore, batches, m.inflight())
		after = fmt.Sprintf("restart after kill %d (seed %d)", cycle, seed)
	}

	// A last restart checks the last kill; then a graceful stop must keep everything too.
	p := crashStart(t, bin, dir)
	landed += m.resolve(t, p, after)
	p.stop(t)
	p = crashStart(t, bin, dir)
	m.resolve(t, p, fmt.Sprintf("restart after a graceful stop (seed %d)", seed))
	p.stop(t)
	t.Logf("%d cycles (%d killed during start-up) in %v: %d events acknowledged, %d in flight at a kill, %d of those applied",
		cycles, earlyKills, time.Since(begin).Round(time.Millisecond), m.acked()-landed, inflight, landed)
}

// TestCrash_SecondInstanceRefused: a second arina on the data directory of a running one
// exits at once with an error naming the directory, and leaves the first one and its
// data alone. The lock does not outlive a killed process.
func TestCrash_SecondInstanceRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("builds arina and runs it as a subprocess; skipped with -short")
	}
	bin := crashBuild(t)
	dir := t.TempDir()
	first := crashStart(t, bin, dir)
	c := MustConnect311(t, first.mqtt, "second-instance")
	MustPublish(t, c, "kitchen/Stew/fire", 1, "add Sam")

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, bin)
	second.Env = crashEnv(dir)
	var out bytes.Buffer
	second.Stdout, second.Stderr = &out, &out
	begin := time.Now()
	err := second.Run()
	took := time.Since(begin)
	if ctx.Err() != nil {
		t.Fatalf("second arina on the same directory still running after %v; output:\n%s", took, out.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() <= 0 {
		t.Fatalf("second arina on the same directory: err = %v, want a non-zero exit; output:\n%s", err, out.String())
	}
	if took > 10*time.Second {
		t.Errorf("second arina took %v to give up, want it to exit at once", took)
	}
	msg := out.String()
	if !strings.Contains(msg, "data directory is in use") || !strings.Contains(msg, dir) {
		t.Errorf("second arina's output does not say that data directory %s is in use:\n%s", dir, msg)
	}
	t.Logf("second arina exited %d after %v: %s", ee.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(msg))

	first.mustReady(t)
	if got, _ := arinatest.Counts(t, first.url, "Stew"); got["fire"] != 1 {
		t.Fatalf("first arina's counts after the refused start = %v, want fire 1", got)
	}
	c.Disconnect(100)
	first.kill(t)
	third := crashStart(t, bin, dir)
	if got, _ := arinatest.Counts(t, third.url, "Stew"); got["fire"] != 1 {
		t.Fatalf("counts after kill and restart = %v, want fire 1", got)
	}
	third.stop(t)
}

func crashEnvInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

// crashBuild builds ./cmd/arina (without -race) into the test's temporary directory
// and returns its path.
func crashBuild(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		t.Fatalf("go env GOMOD: %q, %v", gomod, err)
	}
	bin := filepath.Join(t.TempDir(), "arina")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/arina")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	begin := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/arina: %v\n%s", err, out)
	}
	t.Logf("built arina in %v", time.Since(begin).Round(time.Millisecond))
	return bin
}

// crashEnv is the environment of an arina subprocess: the test's own without ARINA_*
// settings, plus loopback listeners on free ports, a synchronously durable store in dir
// and JSON logs (to read the bound addresses from).
func crashEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARINA_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"ARINA_MQTT_LISTEN=127.0.0.1:0",
		"ARINA_HTTP_LISTEN=127.0.0.1:0",
		"ARINA_STORE_DATA_DIR="+dir,
		"ARINA_STORE_DURABILITY=sync",
		"ARINA_STORE_MIN_FREE_BYTES=1", // do not depend on the free space of the test machine
		"ARINA_LOG_FORMAT=json",
	)
}

// crashProc is an arina subprocess.
type crashProc struct {
	cmd     *exec.Cmd
	stderr  *crashStderr
	exited  chan struct{} // closed when Wait has returned
	waitErr error         // Wait's result, once exited is closed
	mqtt    string        // MQTT host:port, once started
	url     string        // http://host:port, once started
	http    *http.Client  // its own connections, closed when the process ends
}

// crashSpawn starts arina on dir without waiting for it. The test's cleanup kills it
// if it still runs.
func crashSpawn(t *testing.T, bin, dir string, extraEnv ...string) *crashProc {
	t.Helper()
	p := &crashProc{
		stderr: &crashStderr{started: make(chan [2]string, 1)},
		exited: make(chan struct{}),
		http:   &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second},
	}
	p.cmd = exec.Command(bin)
	p.cmd.Env = append(crashEnv(dir), extraEnv...)
	p.cmd.Stderr = p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting arina: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		p.http.CloseIdleConnections()
	})
	return p
}

// crashStart starts arina on dir and waits until it is ready.
func crashStart(t *testing.T, bin, dir string, extraEnv ...string) *crashProc {
	t.Helper()
	p := crashSpawn(t, bin, dir, extraEnv...)
	select {
	case a := <-p.stderr.started:
		p.mqtt, p.url = a[0], "http://"+a[1]
	case <-p.exited:
		t.Fatalf("arina exited before it started: %v\n%s", p.waitErr, p.stderr.tail())
	case <-time.After(30 * time.Second):
		t.Fatalf("arina did not log \"arina started\" within 30s:\n%s", p.stderr.tail())
	}
	p.mustReady(t)
	return p
}

// mustReady polls GET /readyz until it answers 200.
func (p *crashProc) mustReady(t *testing.T) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, func() error {
		select {
		case <-p.exited:
			t.Fatalf("arina exited: %v\n%s", p.waitErr, p.stderr.tail())
		default:
		}
		resp, err := p.http.Get(p.url + "/readyz")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /readyz: %d %s", resp.StatusCode, body)
		}
		return nil
	})
}

// kill sends SIGKILL (kill -9) and waits for the process to end. It fails the test if
// the process had already ended on its own.
func (p *crashProc) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("arina had exited on its own: %v\n%s", p.waitErr, p.stderr.tail())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 arina: %v", err)
	}
	<-p.exited
	p.http.CloseIdleConnections()
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("arina ended with %v, not by SIGKILL\n%s", p.waitErr, p.stderr.tail())
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) within 30 seconds.
func (p *crashProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM arina: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("arina did not stop within 30s of SIGTERM:\n%s", p.stderr.tail())
	}
	p.http.CloseIdleConnections()
	if p.waitErr != nil {
		t.Fatalf("arina stopped with %v, want exit status 0:\n%s", p.waitErr, p.stderr.tail())
	}
}

// crashStderr collects an arina subprocess's log lines (the latest ones, for failure
// reports) and sends the addresses of its "arina started" line on started.
type crashStderr struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	started chan [2]string // mqtt, http
	sent    bool
}

func (w *crashStderr) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.lines = append(w.lines, line)
		if len(w.lines) > 60 {
			w.lines = slices.Delete(w.lines, 0, len(w.lines)-60)
		}
		if w.sent {
			continue
		}
		var rec struct {
			Msg  string `json:"msg"`
			MQTT string `json:"mqtt"`
			HTTP string `json:"http"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "arina started" {
			w.started <- [2]string{rec.MQTT, rec.HTTP}
			w.sent = true
		}
	}
}

// phase says how far start-up had come, from the log.
func (w *crashStderr) phase() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.sent:
		return "after start-up"
	case slices.ContainsFunc(w.lines, func(l string) bool { return strings.Contains(l, `"msg":"store recovered"`) }):
		return "during start-up, after the store was recovered"
	}
	return "during start-up, before the store was recovered"
}

// tail returns the latest log lines.
func (w *crashStderr) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + "\n" + string(w.partial)
}
