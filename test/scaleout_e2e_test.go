package test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahomqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/arina-dev/arina/bridge"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/redis"
	"github.com/arina-dev/arina/store/redis/redistest"
	"github.com/arina-dev/arina/store/storetest"
)

// scaleNode is one arina process on the shared Redis; restart replaces its process.
type scaleNode struct {
	t    *testing.T
	bin  string
	env  []string
	mu   sync.Mutex
	proc *crashProc
}

func (n *scaleNode) start() {
	p := crashStart(n.t, n.bin, n.t.TempDir(), n.env...)
	n.mu.Lock()
	n.proc = p
	n.mu.Unlock()
}

func (n *scaleNode) current() *crashProc {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc
}

// scalePublish publishes "add <prefix>-i" for i < count to node, one at a time at QoS
// 1, each until some incarnation of the node acknowledges it: a PUBACK means applied
// in Redis. It reconnects to the node's current process after a kill.
func scalePublish(n *scaleNode, prefix string, count int, acked *atomic.Int64, errs chan<- error) {
	var c pahomqtt.Client
	var addr string
	defer func() {
		if c != nil {
			c.Disconnect(0)
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; i < count; {
		if time.Now().After(deadline) {
			errs <- fmt.Errorf("%s: %d of %d acknowledged after 90s", prefix, i, count)
			return
		}
		if p := n.current(); c == nil || !c.IsConnected() || p.mqtt != addr {
			if c != nil {
				c.Disconnect(0)
			}
			addr = p.mqtt
			opts := pahomqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(prefix).
				SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second)
			c = pahomqtt.NewClient(opts)
			if tok := c.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
				c = nil
				time.Sleep(50 * time.Millisecond) // the node is restarting: nothing to poll but the dial
				continue
			}
		}
		tok := c.Publish("kitchen/line-1/busy", 1, false, fmt.Sprintf("add %s-%d", prefix, i))
		if tok.WaitTimeout(2*time.Second) && tok.Error() == nil {
			i++
			acked.Add(1)
		}
	}
	errs <- nil
}

// TestScaleOut_TwoNodesOnRedis is the scale-out story with real processes: two arina
// nodes on one redis-server (appendfsync always, so what Redis acknowledged survives
// its kill -9), publishers on both, then one node killed -9 and restarted, then Redis
// killed -9 and restarted, all mid-stream. Both nodes answer identical counts, and
// every acknowledged event is counted, once.
func TestScaleOut_TwoNodesOnRedis(t *testing.T) {
	rs := redistest.Start(t, "--appendfsync", "always")
	bin := crashBuild(t)
	env := []string{"ARINA_STORE_BACKEND=redis", "ARINA_STORE_REDIS_ADDRS=" + rs.Addr()}
	a := &scaleNode{t: t, bin: bin, env: env}
	b := &scaleNode{t: t, bin: bin, env: env}
	a.start()
	b.start()

	const perNode = 300
	var acked atomic.Int64
	errs := make(chan error, 2)
	go scalePublish(a, "a", perNode, &acked, errs)
	go scalePublish(b, "b", perNode, &acked, errs)
	waitAcked := func(k int64) {
		testutil.WaitFor(t, 60*time.Second, func() error {
			if got := acked.Load(); got < k {
				return fmt.Errorf("%d acknowledged, waiting for %d", got, k)
			}
			return nil
		})
	}

	waitAcked(perNode / 2)
	a.current().kill(t) // a node dies mid-stream
	a.start()
	waitAcked(perNode)
	rs.Kill() // Redis dies mid-stream: nodes refuse (no PUBACK) until it is back
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code, _, _ := readyz(t, b.current().url); code == 200 {
			return fmt.Errorf("node b still ready with Redis down")
		}
		return nil
	})
	rs.Restart()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var first map[string]int64
	for _, n := range []*scaleNode{a, b} {
		p := n.current()
		counts, _ := arinatest.Counts(t, p.url, "line-1")
		if counts["busy"] != 2*perNode {
			t.Errorf("node %s: busy %d, want %d (every acknowledged event, once)", p.url, counts["busy"], 2*perNode)
		}
		if first == nil {
			first = counts
		} else if !maps.Equal(first, counts) {
			t.Errorf("nodes disagree: %v and %v", first, counts)
		}
		if m := arinatest.Members(t, p.url, "line-1", "busy"); len(m) != 2*perNode {
			t.Errorf("node %s: %d members, want %d", p.url, len(m), 2*perNode)
		}
	}
}

// TestScaleOut_SharedSubscription: two nodes on one Redis take one mosquitto stream
// through a $share group: each message goes to one node, and every event is counted
// exactly once, as both nodes answer.
func TestScaleOut_SharedSubscription(t *testing.T) {
	rs := redistest.Start(t)
	m := testutil.StartMosquitto(t)
	node := func(id string) *arinatest.Daemon {
		return arinatest.Start(t, func(o *daemon.Options) {
			o.Redis = &redis.Options{Addrs: []string{rs.Addr()}}
			o.Upstreams = []bridge.Upstream{{Name: "factory", URL: "tcp://" + m.Addr, ClientID: id,
				Topics: []string{"plant/{content}/{reaction}"}, ShareGroup: "arina", MaxReconnectInterval: 500 * time.Millisecond}}
		})
	}
	nodes := []*arinatest.Daemon{node("arina-1"), node("arina-2")}
	for _, d := range nodes {
		waitBridgeUp(t, d)
	}
	pub := bridgePublisher(t, m.Addr, "line-gateway")
	const n = 200
	for i := range n {
		publishUntilAcked(t, pub, "plant/line-7/busy", fmt.Sprintf("add station-%d", i))
	}
	for _, d := range nodes {
		waitCount(t, d.HTTPURL, "line-7", "busy", n)
	}
	// A node counts a message acknowledged after its event is in Redis, so the counts
	// can be complete before the last message's node has counted it.
	per := make([]float64, len(nodes))
	testutil.WaitFor(t, 10*time.Second, func() error {
		var total float64
		for i, d := range nodes {
			per[i] = metric(t, d.HTTPURL, `arina_bridge_messages_total{result="acked",upstream="factory"}`)
			total += per[i]
		}
		if total != n {
			return fmt.Errorf("the nodes acknowledged %v messages in all (%v), want %d: each message once", total, per, n)
		}
		return nil
	})
	for i, got := range per {
		if got == 0 {
			t.Errorf("node %d took no message of the shared subscription", i+1)
		}
	}
}

// TestScaleOut_ExpiryWithoutItsNode: a membership with a TTL expires on time even when
// the node that added it is gone: every node schedules the expiries the change feed
// brings.
func TestScaleOut_ExpiryWithoutItsNode(t *testing.T) {
	rs := redistest.Start(t)
	node := func() *arinatest.Daemon {
		return arinatest.Start(t, func(o *daemon.Options) {
			o.Redis = &redis.Options{Addrs: []string{rs.Addr()}}
			o.Ingest.TTL = func(reaction string) time.Duration {
				if reaction == "active" {
					return time.Second
				}
				return 0
			}
		})
	}
	a, b := node(), node()
	pub := MustConnect311(t, a.MQTTAddr, "badge-reader")
	MustPublish(t, pub, "kitchen/stove-3/active", 1, "add sam")
	waitCount(t, b.HTTPURL, "stove-3", "active", 1)
	pub.Disconnect(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil { // the node that added it is gone
		t.Fatal(err)
	}
	waitCount(t, b.HTTPURL, "stove-3", "active", 0)
}

// TestScaleOut_NodeStartsBeforeRedis: a node started while its Redis is down (a site
// powering up) does not exit; it is not ready and refuses writes. Once Redis answers
// it turns ready by itself, takes publishes, and expires a membership that was added
// with a TTL before it started, which it could only learn about from Redis.
func TestScaleOut_NodeStartsBeforeRedis(t *testing.T) {
	rs := redistest.Start(t)
	seed, err := redis.Open(context.Background(), redis.Options{Addrs: []string{rs.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(8 * time.Second)
	storetest.MustApply(t, seed, store.Op{ContentID: "stove-3", ReactionType: "active", UserID: "sam",
		Action: store.Add, ExpiresAt: expires.UnixMilli()})
	if err := seed.Close(); err != nil {
		t.Fatal(err)
	}
	rs.Stop() // the append-only file keeps sam for the restart

	d := arinatest.Start(t, func(o *daemon.Options) {
		o.Redis = &redis.Options{Addrs: []string{rs.Addr()}, HealthInterval: 50 * time.Millisecond}
	})
	if code, _, checks := readyz(t, d.HTTPURL); code != http.StatusServiceUnavailable || checks["store"] == "ok" {
		t.Fatalf("/readyz with Redis down: %d %v, want 503 and the store check failing", code, checks)
	}
	resp, err := http.Post(d.HTTPURL+"/api/v1/reaction", "application/json", strings.NewReader(
		`{"type":"reaction","action":"add","content_id":"stove-3","user_id":"ann","reaction_type":"busy"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST with Redis down: %d, want 503", resp.StatusCode)
	}

	rs.Restart()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if code, status, _ := readyz(t, d.HTTPURL); code != http.StatusOK {
			return fmt.Errorf("/readyz %d %q", code, status)
		}
		return nil
	})
	pub := MustConnect311(t, d.MQTTAddr, "gas-valve")
	defer pub.Disconnect(0)
	MustPublish(t, pub, "kitchen/stove-3/busy", 1, "add ann") // acknowledged: applied
	got, _ := arinatest.Counts(t, d.HTTPURL, "stove-3")
	if got["busy"] != 1 || (got["active"] != 1 && time.Now().Before(expires)) {
		t.Fatalf("counts once Redis answers: %v, want busy 1 and sam still active", got)
	}
	waitCount(t, d.HTTPURL, "stove-3", "active", 0) // sam's TTL ran out
}
