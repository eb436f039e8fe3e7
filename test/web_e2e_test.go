package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/arina-dev/arina/auth"
	"github.com/arina-dev/arina/history"
	"github.com/arina-dev/arina/internal/arinatest"
	"github.com/arina-dev/arina/internal/daemon"
	"github.com/arina-dev/arina/internal/testutil"
)

// mustBrowser starts a headless Debian Chromium for the test and returns its context.
func mustBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := testutil.NeedProgram(t, "chromium", "chromium")
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser now, without a timeout
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// pageText evaluates a JS expression in the page and returns its string value.
func pageText(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return s
}

func cellExpr(content, reaction string) string {
	return fmt.Sprintf(`(() => { for (const tr of document.querySelectorAll("#board tbody tr")) {
		if (tr.dataset.content === %q) { const td = tr.querySelector('td[data-reaction=%q]'); return td ? td.textContent : "no cell"; } }
		return "no row"; })()`, content, reaction)
}

// board is the page loaded in headless Chromium.
type board struct {
	t   *testing.T
	ctx context.Context
}

// openBoard loads the page at baseURL and waits until the element visible shows.
func openBoard(t *testing.T, baseURL, visible string) *board {
	t.Helper()
	ctx, cancel := context.WithTimeout(mustBrowser(t), 30*time.Second)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(baseURL+"/"), chromedp.WaitVisible(visible)); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	return &board{t: t, ctx: ctx}
}

// wait polls the JS expression until it evaluates to want.
func (b *board) wait(expr, want string) {
	b.t.Helper()
	testutil.WaitFor(b.t, 10*time.Second, func() error {
		if got := pageText(b.t, b.ctx, expr); got != want {
			return fmt.Errorf("%s = %q, want %q", expr, got, want)
		}
		return nil
	})
}

// TestWeb_LiveBoard loads the page in headless Chromium: it shows the counts from the
// snapshot, updates live from MQTT publishes, filters by content, lists the activity,
// and shows hostile ids as text.
func TestWeb_LiveBoard(t *testing.T) {
	d := arinatest.Start(t)
	pub := MustConnect311(t, d.MQTTAddr, "floor")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")

	b := openBoard(t, d.HTTPURL, "#board")
	tctx, waitPage := b.ctx, b.wait
	waitPage(`document.body.dataset.ready || ""`, "1")
	waitPage(cellExpr("Stew", "fire"), "2") // from the snapshot

	MustPublish(t, pub, "kitchen/Stew/fire", 1, "remove ann")
	MustPublish(t, pub, "kitchen/Soup/yum", 1, "add kim")
	const hostile = `<img src=x onerror="document.body.dataset.pwned=1">`
	MustPublish(t, pub, "kitchen/"+hostile+"/fire", 1, "add eve")
	waitPage(cellExpr("Stew", "fire"), "1")
	waitPage(cellExpr("Soup", "yum"), "1")
	waitPage(cellExpr(hostile, "fire"), "1")
	if got := pageText(t, tctx, `String(document.querySelectorAll("#board img").length) + (document.body.dataset.pwned || "")`); got != "0" {
		t.Fatalf("a content id was rendered as HTML: %q", got)
	}
	waitPage(`document.querySelector("#activity li") ? document.querySelector("#activity li").textContent.includes("eve") + "" : ""`, "true")

	if path := os.Getenv("ARINA_SCREENSHOT"); path != "" { // for the README: ARINA_SCREENSHOT=docs/board.png
		if png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)); err == nil {
			_ = os.WriteFile(path, png, 0o644)
		}
	}

	if err := chromedp.Do(tctx, chromedp.SendKeys("#filter", "sou")); err != nil {
		t.Fatal(err)
	}
	waitPage(`[...document.querySelectorAll("#board tbody tr")].map(tr => tr.dataset.content).join(",")`, "Soup")

}

// TestWeb_WithTokens: with a tokens file the page still loads, asks for a read token,
// and then follows the change stream with it (?access_token=, since an EventSource
// cannot send headers).
func TestWeb_WithTokens(t *testing.T) {
	token, sum, err := auth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte("tokens:\n  - name: board\n    sha256: \""+sum+"\"\n    scopes: [read]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.OpenTokensFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := arinatest.Start(t, func(o *daemon.Options) { o.HTTP.Tokens = tokens })
	pub := MustConnect311(t, d.MQTTAddr, "floor")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")

	b := openBoard(t, d.HTTPURL, "#login")
	tctx, waitPage := b.ctx, b.wait
	if got := pageText(t, tctx, `document.getElementById("status").textContent`); got != "token needed" {
		t.Fatalf("status %q before a token, want \"token needed\"", got)
	}
	if err := chromedp.Do(tctx, chromedp.SendKeys("#token", token), chromedp.Click("#login button")); err != nil {
		t.Fatalf("entering the token: %v", err)
	}
	waitPage(`document.body.dataset.ready || ""`, "1")
	waitPage(cellExpr("Stew", "fire"), "1")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
	waitPage(cellExpr("Stew", "fire"), "2")
}

// TestWeb_Trends: the page shows the recent history. A row's sparkline starts from
// GET .../history (events before the page loaded) and gains a point for an event
// published over MQTT, the activity chart moves, all without a reload; rows sort by
// name, count and change over the window; a content's row opens onto its members
// and follows them.
func TestWeb_Trends(t *testing.T) {
	d := arinatest.Start(t, func(o *daemon.Options) {
		o.History = history.Options{Resolution: time.Second, Window: time.Minute}
	})
	pub := MustConnect311(t, d.MQTTAddr, "floor")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")

	b := openBoard(t, d.HTTPURL, "#board")
	b.wait(`document.body.dataset.ready || ""`, "1")
	pageText(t, b.ctx, `window.loadedOnce = "yes"`) // gone if the page reloads
	b.wait(cellExpr("Stew", "fire"), "1")
	points := func(content, reaction string) string {
		return fmt.Sprintf(`(() => { for (const tr of document.querySelectorAll("#board tbody tr")) {
			if (tr.dataset.content === %q) { const s = tr.querySelector('td[data-reaction=%q] svg.spark'); return s ? s.dataset.points : "no sparkline"; } }
			return "no row"; })()`, content, reaction)
	}
	b.wait(points("Stew", "fire"), "1") // from the history route: published before the page loaded
	total0 := pageText(t, b.ctx, `document.getElementById("activity-chart").dataset.total`)
	if total0 == "" || total0 == "0" {
		t.Fatalf("activity chart total %q before the page's own events, want the earlier add", total0)
	}

	// The next event lands in a later step than sam's, so it is a new point.
	b.wait(`String(stepOf(serverNow()) > Math.max(...hist.get(key("Stew", "fire")).samples.keys()))`, "true")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann") // returns on the PUBACK
	acked := time.Now()
	b.wait(points("Stew", "fire"), "2")
	t.Logf("PUBACK to the sparkline's new point: %v (polled every 50ms or so)", time.Since(acked).Round(time.Millisecond))
	b.wait(cellExpr("Stew", "fire"), "2")
	b.wait(fmt.Sprintf(`String(+document.getElementById("activity-chart").dataset.total > %s)`, total0), "true")

	// Sorting: Apple 1 (+1), Soup 3 (+3), Stew 2 (+2).
	MustPublish(t, pub, "kitchen/Apple/yum", 1, "add kim")
	for _, u := range []string{"a", "b", "c"} {
		MustPublish(t, pub, "kitchen/Soup/yum", 1, "add "+u)
	}
	order := `[...document.querySelectorAll("#board tbody tr[data-content]")].map(tr => tr.dataset.content).join(",")`
	b.wait(cellExpr("Soup", "yum"), "3")
	for _, tc := range []struct{ by, want string }{
		{"name", "Apple,Soup,Stew"}, {"count", "Soup,Stew,Apple"}, {"rising", "Soup,Stew,Apple"}, {"falling", "Apple,Stew,Soup"},
	} {
		pageText(t, b.ctx, fmt.Sprintf(`(() => { const s = document.getElementById("sort"); s.value = %q; s.dispatchEvent(new Event("change")); return ""; })()`, tc.by))
		b.wait(order, tc.want)
	}
	b.wait(`[...document.querySelectorAll("#board tbody td.delta")].map(td => td.textContent).join(",")`, "+1,+2,+3")

	// A row opens onto its members, and follows them.
	if err := chromedp.Do(b.ctx, chromedp.Click(`#board tbody tr[data-content="Stew"] td.name`)); err != nil {
		t.Fatalf("opening Stew: %v", err)
	}
	membersOf := `(() => { const tr = document.querySelector("#board tr.members"); return tr ? tr.dataset.membersOf + ": " + tr.textContent : "closed"; })()`
	b.wait(membersOf, "Stew: fire: ann, sam")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "remove sam")
	b.wait(membersOf, "Stew: fire: ann")
	if got := pageText(t, b.ctx, `window.loadedOnce || "reloaded"`); got != "yes" {
		t.Fatalf("the page reloaded: %q", got)
	}
}

// TestWeb_NoHistory: with history.enabled false the page still shows live counts,
// without sparklines or an activity chart.
func TestWeb_NoHistory(t *testing.T) {
	d := arinatest.Start(t, func(o *daemon.Options) { o.NoHistory = true })
	pub := MustConnect311(t, d.MQTTAddr, "floor")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add sam")
	b := openBoard(t, d.HTTPURL, "#board")
	b.wait(`document.body.dataset.ready || ""`, "1")
	b.wait(cellExpr("Stew", "fire"), "1")
	MustPublish(t, pub, "kitchen/Stew/fire", 1, "add ann")
	b.wait(cellExpr("Stew", "fire"), "2")
	if got := pageText(t, b.ctx, `document.querySelectorAll("#board svg.spark").length + "/" + document.getElementById("actlabel").textContent`); got != "0/" {
		t.Fatalf("sparklines/activity label without history: %q, want none", got)
	}
}
