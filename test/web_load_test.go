package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// TestWeb_SparklineLatencyUnderLoad measures the page latency target (PUBACK
// to the sparkline's new point ≤ 1 s at 10k events/s of ingest): `arina bench`
// (ARINA_BIN) publishes at ARINA_LOAD_RATE events/s over ARINA_LOAD_CONTENTS contents
// (default 1000) × 8 reactions while the page is open in headless Chromium, and a
// probe event is published 8 times, each in a new 1 s step; each time, the time from
// its PUBACK until the probe row's sparkline shows the new point is logged. It is a
// measurement, not a pass/fail test: skipped unless ARINA_BIN and ARINA_LOAD_RATE are
// set, e.g.
//
//	go build -o /tmp/arina ./cmd/arina && ARINA_BIN=/tmp/arina ARINA_LOAD_RATE=10000 \
//	  go test -run TestWeb_SparklineLatencyUnderLoad -v ./test/
func TestWeb_SparklineLatencyUnderLoad(t *testing.T) {
	bin, rate := os.Getenv("ARINA_BIN"), os.Getenv("ARINA_LOAD_RATE")
	if bin == "" || rate == "" {
		t.Skip("set ARINA_BIN (a built arina) and ARINA_LOAD_RATE (events/s) to measure")
	}
	contents := os.Getenv("ARINA_LOAD_CONTENTS")
	if contents == "" {
		contents = "1000"
	}
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.History = history.Options{Resolution: time.Second, Window: time.Minute}
	})
	pub := MustConnect311(t, d.MQTTAddr, "probe")
	MustPublish(t, pub, "kitchen/probe/fire", 1, "add p0")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bench := exec.CommandContext(ctx, bin, "bench", "--broker", d.MQTTAddr, "--no-store-check", "--protocol", "311",
		"--rate", rate, "--contents", contents, "--duration", "60s")
	var out strings.Builder
	bench.Stdout, bench.Stderr = &out, &out
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = bench.Wait() }()

	b := openBoard(t, d.HTTPURL, "#board")
	b.wait(`document.body.dataset.ready || ""`, "1")
	b.wait(`String(document.querySelectorAll("#board tbody tr").length > 10)`, "true") // the load shows
	points := `(() => { const tr = [...document.querySelectorAll("#board tbody tr")].find(tr => tr.dataset.content === "probe");
		const s = tr && tr.querySelector('td[data-reaction="fire"] svg.spark'); return s ? s.dataset.points : "none"; })()`
	// Only the probe's row (the page draws 200 rows at most), and a first probe event
	// while the load runs, so the row has its sparkline from the stream.
	if err := chromedp.Do(b.ctx, chromedp.SendKeys("#filter", "probe")); err != nil {
		t.Fatal(err)
	}
	MustPublish(t, pub, "kitchen/probe/fire", 1, "add p-warm")
	b.wait(`String(hist.has(key("probe", "fire")))`, "true")
	renderMS := pageText(t, b.ctx, `(() => { dirty = true; const t = performance.now(); render(); return (performance.now() - t).toFixed(1); })()`)
	var lat []time.Duration
	for i := 1; i <= 8; i++ {
		// Wait for a step after the probe's last point, so the next add is a new point.
		b.wait(`String(stepOf(serverNow()) > Math.max(...hist.get(key("probe", "fire")).samples.keys()))`, "true")
		before := pageText(t, b.ctx, points)
		MustPublish(t, pub, "kitchen/probe/fire", 1, fmt.Sprint("add p", i)) // returns on the PUBACK
		acked := time.Now()
		testutil.WaitFor(t, 20*time.Second, func() error {
			if got := pageText(t, b.ctx, points); got == before || got == "none" {
				return fmt.Errorf("probe points %s, was %s", got, before)
			}
			return nil
		})
		lat = append(lat, time.Since(acked))
	}
	slices.Sort(lat)
	rows := pageText(t, b.ctx, `String(document.querySelectorAll("#board tbody tr").length)`)
	t.Logf("one full redraw with the probe filter: %s ms", renderMS)
	pageText(t, b.ctx, `(() => { filterBox.value = ""; dirty = true; return ""; })()`)
	t.Logf("one full redraw without a filter: %s ms", pageText(t, b.ctx, `(() => { dirty = true; const t = performance.now(); render(); return (performance.now() - t).toFixed(1); })()`))
	t.Logf("rate %s events/s, %s contents × 8 reactions (%s rows on the page): PUBACK → sparkline point, 8 probes: min %v, median %v, max %v (polling adds up to a few ms)",
		rate, contents, rows, lat[0].Round(time.Millisecond), lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	cancel()
	_ = bench.Wait()
	o := strings.TrimSpace(out.String())
	t.Logf("bench's report: %s", o[max(0, len(o)-600):])
}
