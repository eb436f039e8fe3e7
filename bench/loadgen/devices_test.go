package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arina-dev/arina/internal/arinatest"
)

// writeRecorder is a net.Conn that records every Write call.
type writeRecorder struct {
	net.Conn
	writes [][]byte
}

func (w *writeRecorder) Write(b []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), b...))
	return len(b), nil
}

// TestWire_WriteEach checks that with WriteEach every queued packet goes out in a
// write of its own, and without it all of them in one.
func TestWire_WriteEach(t *testing.T) {
	long := make([]byte, 300) // a remaining length of two bytes
	var out []byte
	out = appendPublish(out, MQTT311, 1, 1, "kitchen/c1/r1", []byte("add u1"))
	out = appendPublish(out, MQTT5, 1, 2, "kitchen/c2/r1", long)
	out = append(out, 0xc0, 0) // PINGREQ
	out = appendPublish(out, MQTT311, 0, 0, "k/c/r", nil)
	want := []int{len(appendPublish(nil, MQTT311, 1, 1, "kitchen/c1/r1", []byte("add u1"))),
		len(appendPublish(nil, MQTT5, 1, 2, "kitchen/c2/r1", long)), 2,
		len(appendPublish(nil, MQTT311, 0, 0, "k/c/r", nil))}
	for _, each := range []bool{false, true} {
		rec := &writeRecorder{}
		c := &wireConn{nc: rec, writeEach: each}
		if err := c.write(out); err != nil {
			t.Fatal(err)
		}
		var got []int
		var joined []byte
		for _, w := range rec.writes {
			got = append(got, len(w))
			joined = append(joined, w...)
		}
		if string(joined) != string(out) {
			t.Errorf("writeEach %v: the writes do not add up to the packets", each)
		}
		if each && !equalInts(got, want) || !each && !equalInts(got, []int{len(out)}) {
			t.Errorf("writeEach %v: writes of %v bytes", each, got)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEvent_TS checks that Options.TS gives every event a "ts" of the time it is
// drawn, in a JSON payload, and that TS refuses the text payload.
func TestEvent_TS(t *testing.T) {
	o := Options{TS: true}
	o.setDefaults()
	if o.Payload != PayloadJSON {
		t.Fatalf("TS: payload %q, want json by default", o.Payload)
	}
	r := &runner{o: o}
	w := r.newWorker(0, 0)
	before := time.Now().UnixMilli()
	for range 100 {
		r.event(w)
		var ev struct {
			UserID string `json:"user_id"`
			Action string `json:"action"`
			TS     int64  `json:"ts"`
		}
		if err := json.Unmarshal(w.payload, &ev); err != nil {
			t.Fatalf("payload %q: %v", w.payload, err)
		}
		if ev.UserID == "" || ev.Action == "" || ev.TS < before || ev.TS > time.Now().UnixMilli() {
			t.Fatalf("payload %q: want user, action and a ts of now", w.payload)
		}
	}
	if _, err := Run(context.Background(), Options{TS: true, Payload: PayloadText}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("TS with text payloads: err %v, want ErrInvalidOptions", err)
	}
}

// TestRun_DeviceLoad runs a fleet-like load (a publish in flight per connection, a write
// per publish, events with ts) against arina, in this process, and reads its CPU time
// through Options.BrokerPID.
func TestRun_DeviceLoad(t *testing.T) {
	d := arinatest.Start(t)
	const events = 400
	rep, err := Run(context.Background(), Options{
		Broker: d.MQTTAddr, Protocol: MQTT311, QoS: 1, Publishers: 20, InFlight: 1, Events: events,
		WriteEach: true, TS: true, BrokerPID: os.Getpid(), Contents: 3, Reactions: 2, Users: 50,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Acked != events || rep.Errors != 0 || !rep.WriteEach || !rep.TS || rep.Payload != PayloadJSON {
		t.Fatalf("acked %d errors %d (%s), write_each %v ts %v payload %s", rep.Acked, rep.Errors, rep.FirstError, rep.WriteEach, rep.TS, rep.Payload)
	}
	if rep.BrokerCPUSeconds < 0 || rep.GeneratorCPUSeconds < 0 || rep.BrokerCPUPerEventUS < 0 {
		t.Errorf("CPU %+v", rep)
	}
	// /proc counts CPU time in clock ticks (10 ms): a fast run of this test may not
	// have used one yet, so work until it has, and check that the count moves.
	cpu, err := processCPU(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	for x := uint64(1); err == nil && cpu <= 0 && time.Now().Before(deadline); x++ {
		for i := range 1 << 20 {
			x = x*6364136223846793005 + uint64(i)
		}
		sink.Store(x)
		cpu, err = processCPU(os.Getpid())
	}
	if err != nil || cpu <= 0 {
		t.Errorf("processCPU(self) = %v, %v; want a positive time", cpu, err)
	}
	if _, err := processCPU(1 << 30); err == nil {
		t.Errorf("processCPU of no process: no error")
	}
	if _, err := Run(context.Background(), Options{BrokerPID: -1}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("BrokerPID -1: err %v, want ErrInvalidOptions", err)
	}
}

// sink keeps the busy loop of TestRun_DeviceLoad from being optimised away.
var sink atomic.Uint64
