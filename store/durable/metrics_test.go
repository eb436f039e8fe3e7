package durable_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/arina-dev/arina/store"
	"github.com/arina-dev/arina/store/storetest"
)

// TestDurable_Metrics: the engine's gauges follow a flush, write stalls are counted
// with their length, and a closed store reports nothing (a scrape during shutdown must
// not touch the closed engine).
func TestDurable_Metrics(t *testing.T) {
	d := MustOpenDurable(t, t.TempDir(), true)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(d)
	value := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if g := m.GetGauge(); g != nil {
					return g.GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	flushes := value("arina_store_engine_flushes_total")
	storetest.MustApply(t, d, store.Op{ContentID: "c", ReactionType: "r", UserID: "u", Action: store.Add})
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := value("arina_store_engine_flushes_total"); got != flushes+1 {
		t.Errorf("flushes %v after one flush, want %v", got, flushes+1)
	}
	if got := value("arina_store_engine_l0_tables"); got < 1 {
		t.Errorf("l0 tables %v after a flush, want at least 1", got)
	}
	if got := value("arina_store_engine_l0_sublevels"); got < 1 {
		t.Errorf("l0 sublevels %v after a flush, want at least 1", got)
	}
	if got := value("arina_store_engine_disk_bytes"); got <= 0 {
		t.Errorf("disk bytes %v, want > 0", got)
	}
	if got := value("arina_store_engine_write_stalls_total"); got != 0 {
		t.Errorf("write stalls %v without load, want 0", got)
	}

	ev := d.StallEvents()
	ev.WriteStallBegin(pebble.WriteStallBeginInfo{Reason: "L0 file count limit exceeded"})
	time.Sleep(20 * time.Millisecond) // a stall's length is what is measured
	ev.WriteStallEnd()
	if got := value("arina_store_engine_write_stalls_total"); got != 1 {
		t.Errorf("write stalls %v after one, want 1", got)
	}
	if got := value("arina_store_engine_write_stall_seconds_total"); got < 0.02 || got > 10 {
		t.Errorf("write stall seconds %v after a 20ms stall", got)
	}

	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(d); n != 0 {
		t.Errorf("a closed store reported %d metrics, want none", n)
	}
}
