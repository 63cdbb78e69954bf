package oip

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/testing/memtest"
	"github.com/freightcast/freightcast/internal/testing/rawhttp"
)

// TestOversizedBodyAnswers413ToAClientThatSendsItAllFirst: a client that writes the whole body
// before reading gets the 413, not a reset connection. 20 MB is far beyond what loopback socket
// buffers hold, so without the lingering read the server closes under the client's write.
func TestOversizedBodyAnswers413ToAClientThatSendsItAllFirst(t *testing.T) {
	ts := newTestServer(t, true, nil)
	u, _ := url.Parse(ts.URL)
	a := rawhttp.PostAllFirst(t, u.Host, "/v2/models/freight/infer", "application/json", 20<<20)
	if a.Err != nil {
		t.Fatalf("the client saw %v, want a 413 answer", a.Err)
	}
	if a.Status != http.StatusRequestEntityTooLarge || !a.Close ||
		!strings.Contains(a.Body, `"error":"request body exceeds 1048576 bytes"`) {
		t.Fatalf("got %d %v %s, want 413 with Connection: close and the error", a.Status, a.Header, a.Body)
	}
}

// TestSpentBodyBudgetAnswers503: a body the process has no memory budget for is refused for
// now, with Retry-After, and the budget is whole again after each request.
func TestSpentBodyBudgetAnswers503(t *testing.T) {
	budget := httpbody.NewBudget(64 << 10)
	ts := newTestServer(t, true, func(c *Config) { c.BodyBudget = budget })
	u, _ := url.Parse(ts.URL)
	a := rawhttp.PostAllFirst(t, u.Host, "/v2/models/freight/infer", "application/json", 512<<10)
	if a.Err != nil || a.Status != http.StatusServiceUnavailable || a.Header.Get("Retry-After") != "1" ||
		!strings.Contains(a.Body, "as many request bodies as its memory allows") {
		t.Fatalf("got %d %v %s (%v), want 503 with Retry-After: 1", a.Status, a.Header, a.Body, a.Err)
	}
	if budget.InUse() != 0 {
		t.Errorf("after the answer the budget still lends %d bytes", budget.InUse())
	}
	// A body within the budget is served as usual.
	code, _ := ts.do(t, http.MethodPost, "/v2/models/freight/infer", "application/json",
		`{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[800,0,0,0,1,0.9,0.1,0.1,0.5,0.8,0.1,4]}]}`)
	if code != http.StatusOK || budget.InUse() != 0 {
		t.Errorf("a small body: %d, budget in use %d; want 200 and 0", code, budget.InUse())
	}
}

// TestABurstOfLargeBodiesStaysUnderThePodLimit sends 100 infer bodies of about 3.7 MB at once,
// what took the OIP server from 322 MB to 1.16 GB: the heap stays under the sample pod's
// 256 MiB, bodies beyond the budget get 503 + Retry-After, and the memory is back after the
// burst. Each body's data is one number short of its shape, so the whole body is read and
// decoded and the model does not run.
func TestABurstOfLargeBodiesStaysUnderThePodLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 370 MB")
	}
	memtest.LimitLikeASamplePod(t)
	ts := newTestServer(t, true, func(c *Config) { c.MaxBodyBytes = 4 << 20 })
	const rows = 90_000
	var body strings.Builder
	fmt.Fprintf(&body, `{"inputs":[{"name":"features","shape":[%d,12],"datatype":"FP32","data":[`, rows)
	for i := range rows*12 - 1 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString(strconv.FormatFloat(float64(featureRow(i % 7)[i%12]), 'f', -1, 32))
	}
	body.WriteString("]}]}")
	if body.Len() < 3_000_000 || body.Len() > 4<<20 {
		t.Fatalf("the body is %d bytes, want about 3.7 MB", body.Len())
	}
	memtest.CheckBurst(t, 100, ts.URL+"/v2/models/freight/infer", "application/json", body.String(), http.StatusBadRequest)

}
