package report

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/freightcast/freightcast/internal/report/page"
)

const chromium = "/usr/bin/chromium"

// TestPageInABrowser opens the clients' page in headless Chromium against the real API over a
// real service and nats-server: a client enters its token and sees charts and shipments of its
// own predictions only. FREIGHTCAST_UPDATE_SCREENSHOT=1 rewrites docs/images/reporting-page.png.
func TestPageInABrowser(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no browser: %s is absent (Debian package chromium; .ci/run installs it)", chromium)
	}
	a := newAPIRigWithPage(t, page.Handler())
	// The page reads the default window: 24 hours up to the API's clock, t0+25h.
	from := t0.Add(time.Hour)
	inWindow := slices.DeleteFunc(slices.Clone(a.recs), func(g genRecord) bool { return g.at.Before(from) })
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1000, 1400))...)
	defer cancel()
	browser, cancel := chromedp.NewContext(alloc)
	defer cancel()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(browser)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// The browser logs the answer that asks for a token; anything else of level
			// warning or worse (a refused policy, a failed request, an exception) is a fault.
			expected := m.Source == "network" && strings.Contains(m.Text, "401")
			if (m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning || m.IsException()) && !expected {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s (%s %s:%d)", m, m.Source, m.URL, m.Line))
				mu.Unlock()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	evaluate := func(t *testing.T, js string) []string {
		t.Helper()
		out, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return out
	}
	count := func(t *testing.T, js string) int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return n
	}
	selectOption := func(id, value string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[string](fmt.Sprintf(`(() => { const s = document.getElementById(%q); s.value = %q; s.dispatchEvent(new Event('change')); return s.value; })()`, id, value))(ctx, t)
			return err
		})
	}
	signIn := func(token string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.WaitVisible(chromedp.CSS("#token")),
			chromedp.SendKeys(chromedp.CSS("#token"), token),
			chromedp.Click(chromedp.CSS("#token-submit")),
			chromedp.WaitVisible(chromedp.CSS("#bars rect.bar")),
			chromedp.WaitVisible(chromedp.CSS("#trend polyline.line-mean")),
		)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(a.url+Prefix), signIn("tok-acme")); err != nil {
		t.Fatalf("signing in as acme: %v", err)
	}
	acme := func(c string) bool { return c == "acme" }
	if n := count(t, `['token-form', 'error'].filter(id => document.getElementById(id).offsetParent !== null).length`); n != 0 {
		t.Error("the token form or an error is shown next to the reports")
	}

	// Bars: the first dimension (lane), its top 12 values by mean.
	lanes := sortedByMean(expected(inWindow, acme, func(g genRecord) string { return g.lane }))
	labels := evaluate(t, `[...document.querySelectorAll('#bars svg[data-dimension="lane"] .bar-label')].map(e => e.textContent)`)
	if want := lanes[:min(12, len(lanes))]; !slices.Equal(labels, want) {
		t.Errorf("lane bars %v, want %v", labels, want)
	}
	// Another dimension: every carrier acme has, riskiest first.
	if err := chromedp.Do(ctx, selectOption("dimension", "carrier"),
		chromedp.WaitVisible(chromedp.CSS(`#bars svg[data-dimension="carrier"] rect.bar`))); err != nil {
		t.Fatal(err)
	}
	carriers := sortedByMean(expected(inWindow, acme, func(g genRecord) string { return g.carrier }))
	labels = evaluate(t, `[...document.querySelectorAll('#bars svg[data-dimension="carrier"] .bar-label')].map(e => e.textContent)`)
	bars := count(t, `document.querySelectorAll('#bars rect.bar').length`)
	if !slices.Equal(labels, carriers) || bars != len(carriers) {
		t.Errorf("carrier bars %v (%d rects), want %v", labels, bars, carriers)
	}
	// Trend: of the riskiest carrier, one vertex per non-empty 5-minute bucket.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#trend svg[data-value=%q] polyline.line-p90`, carriers[0])))); err != nil {
		t.Fatal(err)
	}
	buckets := map[time.Time]bool{}
	for _, g := range inWindow {
		if acme(g.client) && g.carrier == carriers[0] && !math.IsNaN(g.risk) {
			buckets[g.at.Truncate(5*time.Minute)] = true
		}
	}
	vertices := count(t, `document.querySelector('#trend polyline.line-mean').points.numberOfItems`)
	if vertices != len(buckets) || vertices < 2 {
		t.Errorf("the trend line has %d vertices, want one per non-empty bucket: %d", vertices, len(buckets))
	}
	// A week, by the server's clock: the hourly tier, every record of the 24 hours.
	if err := chromedp.Do(ctx, selectOption("window", "168"),
		chromedp.WaitVisible(chromedp.CSS(`#bars svg[data-bucket="1h"] rect.bar`)),
		chromedp.WaitVisible(chromedp.CSS(`#trend svg[data-bucket="1h"] polyline.line-mean`))); err != nil {
		t.Fatal(err)
	}
	labels = evaluate(t, `[...document.querySelectorAll('#bars .bar-label')].map(e => e.textContent)`)
	if want := sortedByMean(expected(a.recs, acme, func(g genRecord) string { return g.carrier })); !slices.Equal(labels, want) {
		t.Errorf("carrier bars over a week %v, want %v", labels, want)
	}
	trendValue := evaluate(t, `[document.querySelector('#trend svg').dataset.value]`)
	hours := map[time.Time]bool{}
	for _, g := range a.recs {
		if acme(g.client) && g.carrier == trendValue[0] && !math.IsNaN(g.risk) {
			hours[g.at.Truncate(time.Hour)] = true
		}
	}
	if n := count(t, `document.querySelector('#trend polyline.line-mean').points.numberOfItems`); n != len(hours) {
		t.Errorf("the weekly trend of %s has %d vertices, want %d hours", trendValue, n, len(hours))
	}
	if err := chromedp.Do(ctx, selectOption("window", "24"), chromedp.WaitVisible(chromedp.CSS(`#bars svg[data-bucket="5m"] rect.bar`))); err != nil {
		t.Fatal(err)
	}
	// Riskiest: acme's own.
	ids := evaluate(t, `[...document.querySelectorAll('#riskiest tbody tr')].map(r => r.dataset.id)`)
	if want := riskiestOf(inWindow, acme, 20); !slices.Equal(ids, want) {
		t.Errorf("riskiest %v, want acme's %v", ids, want)
	}

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if n := pixelsOf(t, shot, 0xd9, 0x48, 0x0f); n < 2000 {
		t.Errorf("the screenshot has %d pixels of the bar colour, want the bars drawn", n)
	}
	if os.Getenv("FREIGHTCAST_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "images", "reporting-page.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Another client on the same tab, after forgetting the token, sees its own shipments.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#forget")), signIn("tok-globex")); err != nil {
		t.Fatalf("signing in as globex: %v", err)
	}
	globex := func(c string) bool { return c == "globex" }
	ids = evaluate(t, `[...document.querySelectorAll('#riskiest tbody tr')].map(r => r.dataset.id)`)
	if want := riskiestOf(inWindow, globex, 20); !slices.Equal(ids, want) {
		t.Errorf("riskiest %v, want globex's %v", ids, want)
	}
	// A wrong token is refused in words.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#forget")), chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), "nope"), chromedp.Click(chromedp.CSS("#token-submit")),
		chromedp.WaitVisible(chromedp.CSS("#error"))); err != nil {
		t.Fatal(err)
	}
	errText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errText, "not accepted") || !strings.Contains(errText, "bearer token") {
		t.Errorf("a wrong token shows %q", errText)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
}

func sortedByMean(m map[string]Summary) []string {
	out := make([]Summary, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return cmp.Compare(b.Mean, a.Mean) })
	names := make([]string, len(out))
	for i, s := range out {
		names[i] = s.Value
	}
	return names
}

// riskiestOf is what the state keeps, recomputed: each client's TopShipments (5) riskiest per
// 5-minute bucket, then the top n of those.
func riskiestOf(recs []genRecord, visible func(string) bool, n int) []string {
	per := map[string][]genRecord{}
	for _, g := range recs {
		if visible(g.client) && !math.IsNaN(g.risk) {
			k := g.client + g.at.Truncate(5*time.Minute).String()
			per[k] = append(per[k], g)
		}
	}
	byRisk := func(a, b genRecord) int { return cmp.Or(cmp.Compare(b.risk, a.risk), cmp.Compare(a.id, b.id)) }
	var kept []genRecord
	for _, gs := range per {
		slices.SortFunc(gs, byRisk)
		kept = append(kept, gs[:min(5, len(gs))]...)
	}
	slices.SortFunc(kept, byRisk)
	ids := make([]string, 0, n)
	for _, g := range kept[:min(n, len(kept))] {
		ids = append(ids, g.id)
	}
	return ids
}

func pixelsOf(t *testing.T, shot []byte, r, g, b uint8) int {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	near := func(x uint32, want uint8) bool { return math.Abs(float64(x>>8)-float64(want)) <= 6 }
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}
