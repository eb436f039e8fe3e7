package examples

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/arina-dev/arina/internal/arinatest"
)

// NodeREDEnv names where Node-RED is: a directory where examples/node-red/install put
// it (node_modules/node and node_modules/node-red), or a node-red executable. Unset,
// the test looks in examples/node-red/.runtime, install's default.
const NodeREDEnv = "ARINA_NODE_RED"

// nodeRED returns the command that starts Node-RED: the program and its first
// arguments.
func nodeRED(t *testing.T) []string {
	t.Helper()
	where := os.Getenv(NodeREDEnv)
	if where == "" {
		where = filepath.Join("node-red", ".runtime")
	}
	fi, err := os.Stat(where)
	if err != nil {
		missing(t, fmt.Sprintf("Node-RED not found at %s (run examples/node-red/install, or set %s to its directory or to a node-red executable)", where, NodeREDEnv))
	}
	if !fi.IsDir() {
		return []string{where}
	}
	node := filepath.Join(where, "node_modules", "node", "bin", "node")
	red := filepath.Join(where, "node_modules", "node-red", "red.js")
	for _, f := range []string{node, red} {
		if _, err := os.Stat(f); err != nil {
			missing(t, fmt.Sprintf("Node-RED incomplete in %s: %v (run examples/node-red/install)", where, err))
		}
	}
	return []string{node, red}
}

// flowWithBroker returns examples/node-red/flow.json with its broker set to addr.
func flowWithBroker(t *testing.T, addr string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("node-red", "flow.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	if err := json.Unmarshal(raw, &nodes); err != nil {
		t.Fatalf("flow.json: %v", err)
	}
	host, port, _ := strings.Cut(addr, ":")
	brokers := 0
	for _, n := range nodes {
		if n["type"] == "mqtt-broker" {
			if n["broker"] != "localhost" || n["port"] != "1883" {
				t.Fatalf("flow.json's broker is %v:%v; the example should say localhost:1883", n["broker"], n["port"])
			}
			n["broker"], n["port"] = host, port
			brokers++
		}
	}
	if brokers != 1 {
		t.Fatalf("flow.json has %d mqtt-broker nodes, want 1", brokers)
	}
	out, err := json.Marshal(nodes)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// commsMessage is one message of Node-RED's editor websocket (/comms).
type commsMessage struct {
	Topic string          `json:"topic"`
	Data  json.RawMessage `json:"data"`
}

// comms connects to a Node-RED editor's websocket, subscribes to topics and returns
// the messages it receives. It is closed at cleanup.
func comms(t *testing.T, baseURL string, topics ...string) <-chan commsMessage {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Scheme = "ws"
	u.Path = strings.TrimSuffix(u.Path, "/") + "/comms"
	conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), u.String(), nil)
	if err != nil {
		t.Fatalf("Node-RED comms %s: %v", u, err)
	}
	for _, topic := range topics {
		if err := conn.WriteJSON(map[string]string{"subscribe": topic}); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan commsMessage, 1000)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(got)
		for {
			var batch []commsMessage
			if err := conn.ReadJSON(&batch); err != nil {
				return
			}
			for _, m := range batch {
				select {
				case got <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	return got
}

// The ids of flow.json's nodes the test watches.
const (
	flowMQTTIn        = "a1c0c0a0c0a0c003"
	flowCountDebug    = "a1c0c0a0c0a0c006"
	flowContentsDebug = "a1c0c0a0c0a0c007"
)

// TestNodeRED_Flow imports examples/node-red/flow.json into a real Node-RED (its
// broker pointed at a real daemon), publishes events with the real mosquitto_pub and
// checks, on Node-RED's editor websocket (what its debug sidebar shows), that the
// flow's "count" node receives the bare count of the per-reaction topic, with content
// and reaction taken from the topic, and its "counts of a content" node the JSON.
func TestNodeRED_Flow(t *testing.T) {
	cmd := nodeRED(t)
	d := arinatest.Start(t, withCounts)

	userDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(userDir, "flows.json"), flowWithBroker(t, d.MQTTAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	// Port 0: Node-RED listens on a free port and says which; loopback only; no
	// telemetry (no network here); the flows file in the user directory.
	args := append(cmd[1:], "--userDir", userDir, "--port", "0", "--define", "uiHost=127.0.0.1", "--no-telemetry", "flows.json")
	nr := start(t, "", []string{"NODE_RED_ENABLE_PROJECTS=false"}, cmd[0], args...)
	base := nr.expect(t, 60*time.Second, regexp.MustCompile(`Server now running at (http://\S+)`))[1]
	msgs := comms(t, base, "status/#", "debug")

	// await reads comms messages until each of wants has accepted one (in any order:
	// the JSON of a content is published before its per-reaction numbers, but their
	// debug messages may come in either order) and returns those, in wants' order.
	type want struct {
		what string
		ok   func(commsMessage) bool
	}
	await := func(wants ...want) []commsMessage {
		t.Helper()
		got := make([]commsMessage, len(wants))
		seen := make([]bool, len(wants))
		left := len(wants)
		deadline := time.After(30 * time.Second)
		for left > 0 {
			select {
			case m, open := <-msgs:
				if !open {
					t.Fatal("Node-RED closed its websocket")
				}
				for i, w := range wants {
					if !seen[i] && w.ok(m) {
						got[i], seen[i] = m, true
						left--
					}
				}
			case <-deadline:
				for i, w := range wants {
					if !seen[i] {
						t.Fatalf("Node-RED: no %s within 30 s", w.what)
					}
				}
			}
		}
		return got
	}
	// The mqtt in node says "connected" once subscribed to the broker (a retained
	// status: it comes even if that happened before the websocket was open).
	await(want{"connected status of the mqtt in node", func(m commsMessage) bool {
		var s struct {
			Text string `json:"text"`
		}
		return m.Topic == "status/"+flowMQTTIn && json.Unmarshal(m.Data, &s) == nil && strings.HasSuffix(s.Text, "status.connected")
	}})

	type debug struct {
		ID     string `json:"id"`
		Msg    string `json:"msg"`
		Format string `json:"format"`
	}
	// countIs accepts the "count" node's message for Stew/fire with count n.
	countIs := func(n int) func(commsMessage) bool {
		return func(m commsMessage) bool {
			var d debug
			if m.Topic != "debug" || json.Unmarshal(m.Data, &d) != nil || d.ID != flowCountDebug {
				return false
			}
			var msg struct {
				Topic    string `json:"topic"`
				Payload  any    `json:"payload"`
				Content  string `json:"content"`
				Reaction string `json:"reaction"`
				Retain   bool   `json:"retain"`
			}
			if err := json.Unmarshal([]byte(d.Msg), &msg); err != nil {
				t.Fatalf("count node's message is not the msg object: %v (%s)", err, d.Msg)
			}
			t.Logf("count node: %s", d.Msg)
			num, isNum := msg.Payload.(float64)
			if msg.Topic == "arina/counts/Stew/fire" && !isNum {
				t.Fatalf("count node got a %T payload %v, want a number", msg.Payload, msg.Payload)
			}
			return msg.Topic == "arina/counts/Stew/fire" && msg.Content == "Stew" && msg.Reaction == "fire" && num == float64(n)
		}
	}

	contentsHas := func(sub string) func(commsMessage) bool {
		return func(m commsMessage) bool {
			var d debug
			return m.Topic == "debug" && json.Unmarshal(m.Data, &d) == nil && d.ID == flowContentsDebug && strings.Contains(d.Msg, sub)
		}
	}
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "add sam")
	await(want{"count 1 for Stew/fire", countIs(1)})
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", `{"user_id":"ann","action":"add"}`)
	got := await(want{"count 2 for Stew/fire", countIs(2)}, want{"the JSON counts of Stew", contentsHas(`"fire":2`)})
	var dj debug
	_ = json.Unmarshal(got[1].Data, &dj)
	var counts struct {
		ContentID     string         `json:"content_id"`
		ReactionCount map[string]int `json:"reaction_count"`
	}
	if err := json.Unmarshal([]byte(dj.Msg), &counts); err != nil || dj.Format != "Object" || counts.ContentID != "Stew" || counts.ReactionCount["fire"] != 2 {
		t.Fatalf("counts of a content node got %s (%s), want Stew's counts as an object (%v)", dj.Msg, dj.Format, err)
	}
	mosquittoPub(t, d.MQTTAddr, "kitchen/Stew/fire", "remove sam")
	await(want{"count 1 for Stew/fire after a remove", countIs(1)}, want{"the JSON counts of Stew after a remove", contentsHas(`"fire":1`)})

	// The flow still holds every node it was given: Node-RED knew every node type.
	if out := nr.out.String(); strings.Contains(out, "Waiting for missing types") {
		t.Fatalf("Node-RED lacks node types of the flow:\n%s", out)
	}
}
