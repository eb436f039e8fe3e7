package test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/sparkplug"
)

// tahuDir holds the npm project of Eclipse Tahu's JavaScript client (package.json pins
// sparkplug-client and sparkplug-payload; .ci/run installs them with npm ci).
const tahuDir = "sparkplug-js"

// tahuNode is an edge node run by Tahu's JavaScript client (sparkplug-js/edge.js).
type tahuNode struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// startTahuNode starts edge.js as edge node edge of group, connected to the daemon; it
// is skipped (or fails under ARINA_REQUIRE_TOOLS) when node or the npm packages are
// missing.
func startTahuNode(t *testing.T, d *arinatest.Daemon, group, edge string) *tahuNode {
	t.Helper()
	node := arinatest.NeedProgram(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join(tahuDir, "node_modules", "sparkplug-client", "package.json")); err != nil {
		msg := "the npm packages sparkplug-client and sparkplug-payload are not installed (npm ci --prefix test/" + tahuDir + ")"
		if os.Getenv(arinatest.RequireToolsEnv) != "" {
			t.Fatalf("%s, and %s is set", msg, arinatest.RequireToolsEnv)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(node, "edge.js", "mqtt://"+d.MQTTAddr, group, edge)
	cmd.Dir = tahuDir
	cmd.Stderr = &tbWriter{t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s edge.js: %v", node, err)
	}
	n := &tahuNode{cmd: cmd, stdin: stdin, lines: make(chan string, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
		close(n.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
	})
	n.expect(t, "connected")
	return n
}

// tbWriter logs what the node writes to its standard error.
type tbWriter struct{ t *testing.T }

func (w *tbWriter) Write(p []byte) (int, error) {
	w.t.Log("edge.js: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (n *tahuNode) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case line, ok := <-n.lines:
		if !ok || line != want {
			t.Fatalf("edge.js said %q (open %v), want %q", line, ok, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("edge.js did not say %q within 20s", want)
	}
}

// do sends one command and waits until its message is written to the broker.
func (n *tahuNode) do(t *testing.T, command string) {
	t.Helper()
	if _, err := fmt.Fprintln(n.stdin, command); err != nil {
		t.Fatalf("writing %q to edge.js: %v", command, err)
	}
	n.expect(t, "ok "+strings.Fields(command)[0])
}

// TestSparkplug_TahuClient: Eclipse Tahu's own JavaScript client (npm sparkplug-client
// and sparkplug-payload, MQTT 3.1.1, QoS 0) publishes births, data and deaths; counts
// and members follow, and a node killed without DISCONNECT (its NDEATH will) empties
// its memberships. A second node, stopped cleanly, publishes its NDEATH itself.
func TestSparkplug_TahuClient(t *testing.T) {
	d := startSparkplug(t, sparkplug.Options{Rules: []sparkplug.Rule{
		{Metric: "Inputs/Badge", Reaction: "active", User: sparkplug.UserValue},
	}})
	counts := func(content string, want map[string]int64) {
		t.Helper()
		arinatest.WaitFor(t, 10*time.Second, func() error {
			got, _ := arinatest.Counts(t, d.HTTPURL, content)
			for k, v := range want {
				if got[k] != v {
					return fmt.Errorf("counts of %s = %v, want %v", content, got, want)
				}
			}
			return nil
		})
	}

	n := startTahuNode(t, d, "plant", "range-2")
	n.do(t, "nbirth - lit=true")
	n.do(t, "dbirth v7 gas_on=true fault=false")
	n.do(t, "dbirth v8 gas_on=true fault=false")
	n.do(t, "dbirth reader Inputs/Badge=sam")
	counts("range-2", map[string]int64{"lit": 1, "gas_on": 2, "fault": 0, "active": 1})
	wantMembers(t, d, "range-2", "gas_on", "v7", "v8")
	wantMembers(t, d, "range-2", "active", "sam")

	n.do(t, "ddata v7 gas_on=false fault=true")
	n.do(t, "ddata reader Inputs/Badge=ann")
	wantMembers(t, d, "range-2", "gas_on", "v8")
	wantMembers(t, d, "range-2", "fault", "v7")
	wantMembers(t, d, "range-2", "active", "ann")

	// Compressed by the client (DEFLATE, then GZIP).
	n.do(t, "zddata v8 fault=true")
	wantMembers(t, d, "range-2", "fault", "v7", "v8")
	n.do(t, "gzddata v8 fault=false")
	wantMembers(t, d, "range-2", "fault", "v7")

	n.do(t, "ddeath v8")
	wantMembers(t, d, "range-2", "gas_on")

	// Killed: no DISCONNECT, the broker publishes the NDEATH will.
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	counts("range-2", map[string]int64{"lit": 0, "gas_on": 0, "fault": 0, "active": 0})

	// A node stopped cleanly sends its NDEATH before it disconnects; the change stream
	// follows its births and death.
	events := mustStream(t, d.HTTPURL, "/api/v1/stream?content=range-3")
	if ev := nextEvent(t, events); ev.name != "ready" {
		t.Fatalf("event %+v, want ready (range-3 never seen)", ev)
	}
	m := startTahuNode(t, d, "plant", "range-3")
	m.do(t, "nbirth - lit=true")
	m.do(t, "dbirth v1 gas_on=true")
	counts("range-3", map[string]int64{"lit": 1, "gas_on": 1})
	m.do(t, "stop")
	counts("range-3", map[string]int64{"lit": 0, "gas_on": 0})
	var changes []string
	for range 4 {
		ev := nextEvent(t, events)
		changes = append(changes, fmt.Sprintf("%s %s %v/%v/%v", ev.name, ev.data["action"], ev.data["content_id"], ev.data["reaction_type"], ev.data["user_id"]))
	}
	slices.Sort(changes)
	if want := []string{"change add range-3/gas_on/v1", "change add range-3/lit/range-3",
		"change remove range-3/gas_on/v1", "change remove range-3/lit/range-3"}; !slices.Equal(changes, want) {
		t.Errorf("stream of range-3: %q, want %q", changes, want)
	}
}
