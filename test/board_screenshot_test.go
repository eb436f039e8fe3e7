package test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
)

// TestWeb_BoardScreenshot regenerates the README's picture of the page (docs/board.sh
// runs it): a daemon with 1 s history steps over 1 min is seeded over MQTT for
// ARINA_SCREENSHOT_SECONDS (default 40) — one station filling up, one emptying, a
// busy flat prep line, a flickering fryer alarm, background dish stations — then
// headless Chromium shows it at 1600×900 (ARINA_SCREENSHOT_SIZE), sorted by what rose most, one row open,
// and the screenshot goes to ARINA_SCREENSHOT. Skipped unless that is set.
func TestWeb_BoardScreenshot(t *testing.T) {
	path := os.Getenv("ARINA_SCREENSHOT")
	if path == "" {
		t.Skip("set ARINA_SCREENSHOT=docs/board.png (docs/board.sh does) to regenerate the picture")
	}
	seconds := 40
	if s := os.Getenv("ARINA_SCREENSHOT_SECONDS"); s != "" {
		if _, err := fmt.Sscan(s, &seconds); err != nil {
			t.Fatalf("ARINA_SCREENSHOT_SECONDS %q: %v", s, err)
		}
	}
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.History = history.Options{Resolution: time.Second, Window: time.Minute}
	})
	pub := MustConnect311(t, d.MQTTAddr, "floor")
	p := func(topic, payload string) { MustPublish(t, pub, "kitchen/"+topic, 1, payload) }
	rng := rand.New(rand.NewPCG(1, 2))
	for k := range 20 {
		p("stove-2/active", fmt.Sprint("add cook-", k))
	}
	for k := range 8 {
		p("prep-line/active", fmt.Sprint("add prep-", k))
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for s := range seconds {
		if s%3 == 0 {
			p("stove-1/active", fmt.Sprint("add cook-", s/3))
		}
		if s%5 == 0 {
			p("stove-1/gas_on", fmt.Sprint("add valve-", s/5))
		}
		if s%2 == 0 && s < 36 {
			p("stove-2/active", fmt.Sprint("remove cook-", s/2))
		}
		for range 6 {
			act := "add"
			if rng.IntN(2) == 0 {
				act = "remove"
			}
			p("prep-line/active", fmt.Sprint(act, " prep-", rng.IntN(12)))
		}
		if s%6 < 2 {
			p("fryer/alarm", fmt.Sprint("add sensor-", s%6))
		} else if s%6 == 3 {
			p("fryer/alarm", "remove sensor-0")
			p("fryer/alarm", "remove sensor-1")
		}
		for range 1 + rng.IntN(4) {
			p(fmt.Sprint("dish-", 1+rng.IntN(4), "/active"), fmt.Sprint("add staff-", rng.IntN(30)))
		}
		<-tick.C
	}

	b := openBoard(t, d.HTTPURL, "#board")
	w, h := int64(1600), int64(900) // ARINA_SCREENSHOT_SIZE=390x844 for a phone
	if v := os.Getenv("ARINA_SCREENSHOT_SIZE"); v != "" {
		if _, err := fmt.Sscanf(v, "%dx%d", &w, &h); err != nil {
			t.Fatalf("ARINA_SCREENSHOT_SIZE %q: want WxH", v)
		}
	}
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(w, h, chromedp.EmulateScale(1))); err != nil {
		t.Fatal(err)
	}
	b.wait(`document.body.dataset.ready || ""`, "1")
	b.wait(`String(document.querySelectorAll("#board svg.spark").length > 6)`, "true")
	pageText(t, b.ctx, `(() => { const s = document.getElementById("sort"); s.value = "rising"; s.dispatchEvent(new Event("change")); return ""; })()`)
	if err := chromedp.Do(b.ctx, chromedp.Click(`#board tbody tr[data-content="stove-1"] td.name`)); err != nil {
		t.Fatal(err)
	}
	b.wait(`document.querySelector("#board tr.members") ? String(!document.querySelector("#board tr.members").textContent.includes("loading")) : "false"`, "true")
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}
