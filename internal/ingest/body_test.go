package ingest

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/testing/memtest"
	"github.com/freightcast/freightcast/internal/testing/rawhttp"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestOversizedBodyAnswers413ToAClientThatSendsItAllFirst: a client that writes the whole body
// before reading gets the documented 413, not a reset connection; 20 MB is far beyond what
// loopback socket buffers hold. Nothing is stored.
func TestOversizedBodyAnswers413ToAClientThatSendsItAllFirst(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	u, _ := url.Parse(e.http.URL)
	a := rawhttp.PostAllFirst(t, u.Host, "/v1/events", ctJSON, 20<<20)
	if a.Err != nil {
		t.Fatalf("the client saw %v, want a 413 answer", a.Err)
	}
	if a.Status != http.StatusRequestEntityTooLarge || !a.Close ||
		!strings.Contains(a.Body, `"error":"the body is larger than 1048576 bytes; send fewer events per request"`) {
		t.Fatalf("got %d close=%v %s, want 413 with Connection: close and the error", a.Status, a.Close, a.Body)
	}
	if n := e.streamMsgs(t); n != 0 {
		t.Errorf("the stream holds %d messages, want none", n)
	}
}

// TestSpentBodyBudgetAnswers503: a body the process has no memory budget for is refused for
// now with Retry-After, stores nothing, and the budget is whole again after the answer.
func TestSpentBodyBudgetAnswers503(t *testing.T) {
	budget := httpbody.NewBudget(64 << 10)
	e := newEnv(t, testSpec(1000), Config{BodyBudget: budget})
	u, _ := url.Parse(e.http.URL)
	a := rawhttp.PostAllFirst(t, u.Host, "/v1/events", ctJSON, 512<<10)
	if a.Err != nil || a.Status != http.StatusServiceUnavailable || a.Header.Get("Retry-After") != "1" ||
		!strings.Contains(a.Body, "as many bodies as its memory allows") {
		t.Fatalf("got %d %v %s (%v), want 503 with Retry-After: 1", a.Status, a.Header, a.Body, a.Err)
	}
	if budget.InUse() != 0 {
		t.Errorf("after the answer the budget still lends %d bytes", budget.InUse())
	}
	if got := e.post(t, ctJSON, ev("small")); got.Status != http.StatusAccepted || budget.InUse() != 0 {
		t.Errorf("a small body: %+v, budget in use %d; want 202 and 0", got, budget.InUse())
	}
}

// TestABurstOfLargeBodiesStaysUnderThePodLimit sends 100 bodies of about 3.7 MB at once, what
// took ingestion from 87 to 554 MB: the heap stays under the sample pod's 256 MiB limit, the
// bodies the budget cannot hold get 503 + Retry-After, and the memory is back after the burst.
// Each body is a valid array up to its last event, which has no features, so that the whole
// body is read and decoded and nothing is queued.
func TestABurstOfLargeBodiesStaysUnderThePodLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 370 MB")
	}
	memtest.LimitLikeASamplePod(t)
	e := newEnv(t, testSpec(1000), Config{MaxBodyBytes: 4 << 20})
	var body strings.Builder
	body.WriteString("[")
	for i := 0; body.Len() < 3_700_000; i++ {
		body.WriteString(ev("e" + strconv.Itoa(i)))
		body.WriteString(",")
	}
	body.WriteString(`{"id":"last"}]`)
	memtest.CheckBurst(t, 100, e.http.URL+"/v1/events", ctJSON, body.String(), http.StatusBadRequest)
	if n := e.streamMsgs(t); n != 0 {
		t.Errorf("the stream holds %d messages, want none", n)
	}
}

// TestAClaimedContentLengthReservesNothing: 200 connections that announce a 4 MB body and send
// one byte ("[") grew the heap to 567 MB when the buffer was sized from Content-Length. Buffers
// now grow as bytes arrive: the 200 hold one first chunk each.
func TestAClaimedContentLengthReservesNothing(t *testing.T) {
	budget := httpbody.NewBudget(1 << 30)
	e := newEnv(t, testSpec(1000), Config{MaxBodyBytes: 4 << 20, BodyBudget: budget})
	u, _ := url.Parse(e.http.URL)
	runtime.GC()
	before := memtest.HeapInUse()
	const clients = 200
	for range clients {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n["); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, time.Minute, "every request reading its body", func() error {
		if n := budget.InUse(); n < clients*4096 {
			return fmt.Errorf("%d bytes of bodies held", n)
		}
		return nil
	})
	if held := budget.InUse(); held > clients*8192 {
		t.Errorf("%d connections that sent one byte hold %d bytes of buffers, want a first chunk each", clients, held)
	}
	if grown := int64(memtest.HeapInUse()) - int64(before); grown > 64<<20 {
		t.Errorf("the heap grew by %d MiB for %d one-byte bodies", grown>>20, clients)
	}
}
