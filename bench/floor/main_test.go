package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/arina-dev/arina/internal/testutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startFloor serves the floor on a random loopback port, with a log in a temporary
// directory when durable; it returns the address and the log's path ("" without).
func startFloor(t *testing.T, durable bool) (addr, logPath string) {
	t.Helper()
	var l *wal
	if durable {
		logPath = filepath.Join(t.TempDir(), "floor.log")
		var err error
		if l, err = openWAL(logPath, 1<<20); err != nil {
			t.Fatal(err)
		}
		ran := make(chan struct{})
		go func() { defer close(ran); l.run() }()
		t.Cleanup(func() { close(l.in); <-ran; l.f.Close() })
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = accept(ln, l) }()
	// Registered after the log's clean-up, so it runs first: accept closes the
	// connections and waits for them, so none commits once the committer stops.
	t.Cleanup(func() { ln.Close(); <-served })
	return ln.Addr().String(), logPath
}

func logHas(t *testing.T, path string, b []byte) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, b)
}

// TestFloor_AcksQoS1 publishes at QoS 1 with paho to the floor, without and with the
// log: every publish is acknowledged, and with the log its body is on disk by then.
func TestFloor_AcksQoS1(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			addr, logPath := startFloor(t, durable)
			c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("floor-test").
				SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("connect: %v", tok.Error())
			}
			t.Cleanup(func() { c.Disconnect(0) })
			for i := range 50 {
				payload := fmt.Appendf(nil, `{"user_id":"u%d","action":"add"}`, i)
				tok := c.Publish("kitchen/Stew/fire", 1, false, payload)
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatalf("publish %d: not acknowledged: %v", i, tok.Error())
				}
				if durable && !logHas(t, logPath, payload) {
					t.Fatalf("publish %d acknowledged before its body was in the log", i)
				}
			}
		})
	}
}

// TestFloor_MosquittoPub acknowledges a QoS 1 publish of a client not written in Go,
// and logs it.
func TestFloor_MosquittoPub(t *testing.T) {
	pub := testutil.NeedProgram(t, "mosquitto_pub", "mosquitto-clients")
	addr, logPath := startFloor(t, true)
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(pub, "-h", host, "-p", port, "-V", "mqttv311", "-q", "1", "-t", "kitchen/Stew/fire",
		"-m", `{"user_id":"alice","action":"add"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	if !logHas(t, logPath, []byte(`{"user_id":"alice","action":"add"}`)) {
		t.Fatal("mosquitto_pub's publish was acknowledged but is not in the log")
	}
}

// TestWAL_WritesRound wraps the log to its start when a commit would pass its end, and
// keeps the file at its size.
func TestWAL_WritesRound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floor.log")
	l, err := openWAL(path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{})
	go func() { defer close(ran); l.run() }()
	defer func() { close(l.in); <-ran; l.f.Close() }()
	h := &handoff{done: make(chan error, 1)}
	for i := range 10 {
		h.recs = append(h.recs[:0], bytes.Repeat([]byte{byte('a' + i)}, 1000)...)
		if err := l.commit(h); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 4096 {
		t.Errorf("log size %d, want 4096", st.Size())
	}
	// 4 commits of 1000 fit: the 9th (i) went to the start again, the 10th (j) after it.
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, append(bytes.Repeat([]byte("i"), 1000), bytes.Repeat([]byte("j"), 1000)...)) {
		t.Errorf("log starts %q..., want the 9th and 10th commits", data[:8])
	}
}
