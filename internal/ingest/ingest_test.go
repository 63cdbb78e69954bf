package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

const ctJSON, ctNDJSON = "application/json", "application/x-ndjson"

func TestPostCountsAcceptedAndDuplicatesAndStoresEachIDOnce(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	steps := []struct {
		name, contentType, body string
		want                    answer
	}{
		{"single event", ctJSON, ev("e1"), answer{Status: 202, Body: map[string]any{"accepted": 1.0, "duplicates": 0.0}}},
		{"single again", "application/json; charset=utf-8", ev("e1"), answer{Status: 202, Body: map[string]any{"accepted": 0.0, "duplicates": 1.0}}},
		// e1 is stored already; e2 repeats inside the body.
		{"array", ctJSON, array("e1", "e2", "e3", "e2"), answer{Status: 202, Body: map[string]any{"accepted": 2.0, "duplicates": 2.0}}},
		{"ndjson", ctNDJSON, ndjson("e3", "e4", "e4", "e5") + "\n", answer{Status: 202, Body: map[string]any{"accepted": 2.0, "duplicates": 2.0}}},
		{"ndjson without final newline", ctNDJSON, ev("e6") + "\r\n" + ev("e7"), answer{Status: 202, Body: map[string]any{"accepted": 2.0, "duplicates": 0.0}}},
	}
	for _, s := range steps {
		if diff := cmp.Diff(s.want, e.post(t, s.contentType, s.body)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", s.name, diff)
		}
	}
	if diff := cmp.Diff([]string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"}, e.streamIDs(t)); diff != "" {
		t.Errorf("ids in the stream (-want +got):\n%s", diff)
	}
	counters := map[string]float64{
		"accepted":   testutil.ToFloat64(e.handler.metrics.EventsAccepted),
		"duplicates": testutil.ToFloat64(e.handler.metrics.EventsDuplicate),
	}
	if diff := cmp.Diff(map[string]float64{"accepted": 7, "duplicates": 5}, counters); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	resp, err := http.Get(e.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"freightcast_ingest_events_accepted_total 7",
		`freightcast_ingest_request_duration_seconds_count{code="202",handler="events"} 5`,
		`freightcast_ingest_requests_rejected_total{reason="stream_full"} 0`,
	} {
		if !strings.Contains(string(exposition), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// The message is the internal/event format, features in model order, shipment bytes kept.
	s, err := e.js.Stream(context.Background(), e.spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ReceivedAt.IsZero() {
		t.Error("receivedAt is zero")
	}
	got.ReceivedAt = time.Time{}
	want := event.Event{ID: "e1", Features: []float64{0.7, 3, 1200.5}, Shipment: json.RawMessage(`{"from":"NLRTM","to":"SGSIN"}`)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queued event (-want +got):\n%s", diff)
	}
}

func TestFullStreamAnswers503AndKeepsWhatItAccepted(t *testing.T) {
	e := newEnv(t, testSpec(5), Config{})
	if a := e.post(t, ctJSON, array("a1", "a2", "a3")); a.Status != 202 {
		t.Fatalf("first body: %+v", a)
	}
	// Room for two more: b1 and b2 are stored, b3 and b4 refused.
	got := e.post(t, ctNDJSON, ndjson("b1", "b2", "b3", "b4"))
	want := answer{Status: 503, RetryAfter: "5", Body: map[string]any{
		"error":    "the pipeline's queue is full (maximum messages exceeded); retry later; 2 events of this body were stored and 0 were duplicates: retry the whole body, the stored ones will count as duplicates",
		"accepted": 2.0, "duplicates": 0.0,
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("overflowing body (-want +got):\n%s", diff)
	}
	// A retry of the same body: the stored ones are duplicates, the rest still refused.
	got = e.post(t, ctNDJSON, ndjson("b1", "b2", "b3", "b4"))
	if got.Status != 503 || got.RetryAfter == "" || got.Body["duplicates"] != 2.0 || got.Body["accepted"] != 0.0 {
		t.Errorf("retried body: %+v, want 503 with 2 duplicates and 0 accepted", got)
	}
	got = e.post(t, ctJSON, ev("c1"))
	want = answer{Status: 503, RetryAfter: "5", Body: map[string]any{"error": "the pipeline's queue is full (maximum messages exceeded); retry later"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body into a full stream (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a1", "a2", "a3", "b1", "b2"}, e.streamIDs(t)); diff != "" {
		t.Errorf("ids in the stream (-want +got):\n%s", diff)
	}
}

func TestNATSOutageAnswers503AndHealsByItself(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{PublishTimeout: 5 * time.Second})
	if a := e.post(t, ctJSON, ev("before")); a.Status != 202 {
		t.Fatalf("before the outage: %+v", a)
	}
	if a := e.do(t, http.MethodGet, "/readyz", "", "", ""); a.Status != 200 {
		t.Fatalf("readyz before the outage: %+v", a)
	}

	e.srv.Stop()
	got := e.post(t, ctNDJSON, ndjson("during1", "during2"))
	if got.Status != 503 || got.RetryAfter != "2" {
		t.Errorf("during the outage: %+v, want 503 with Retry-After 2", got)
	}
	if a := e.do(t, http.MethodGet, "/readyz", "", "", ""); a.Status != 503 {
		t.Errorf("readyz during the outage: %+v, want 503", a)
	}
	if a := e.do(t, http.MethodGet, "/livez", "", "", ""); a.Status != 200 {
		t.Errorf("livez during the outage: %+v, want 200", a)
	}

	e.srv.Restart(t)
	testenv.Eventually(t, 15*time.Second, "readyz after restart", func() error {
		if a := e.do(t, http.MethodGet, "/readyz", "", "", ""); a.Status != 200 {
			return fmt.Errorf("readyz: %+v", a)
		}
		return nil
	})
	got = e.post(t, ctNDJSON, ndjson("during1", "during2"))
	if diff := cmp.Diff(answer{Status: 202, Body: map[string]any{"accepted": 2.0, "duplicates": 0.0}}, got); diff != "" {
		t.Errorf("after the restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"before", "during1", "during2"}, e.streamIDs(t)); diff != "" {
		t.Errorf("ids in the stream (-want +got):\n%s", diff)
	}
}

// TestMissingStreamIs503 is a pipeline whose queue the operator could not provision: the pod
// stays ready, so that clients get a 503 with Retry-After that says why, not a refused
// connection from a Service without endpoints.
func TestMissingStreamIs503(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	if err := e.js.DeleteStream(context.Background(), e.spec.Stream); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, http.MethodGet, "/readyz", "", "", ""); a.Status != 200 {
		t.Errorf("readyz without the stream: %+v, want 200", a)
	}
	got := e.post(t, ctJSON, ev("x"))
	want := answer{Status: 503, RetryAfter: "5", Body: map[string]any{"error": "the pipeline's stream does not exist: the operator has not provisioned it (see the FreightPipeline's QueueReady condition); nothing was stored, retry later"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("posting without the stream (-want +got):\n%s", diff)
	}
}

func TestGetPrediction(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	want404 := answer{Status: 404, Body: map[string]any{"error": "no prediction for event e1 (yet)"}}
	if diff := cmp.Diff(want404, e.do(t, http.MethodGet, "/v1/predictions/e1", "", "", "")); diff != "" {
		t.Errorf("before the prediction (-want +got):\n%s", diff)
	}
	record, err := event.EncodePrediction(event.Prediction{ID: "e1", Model: "delay", ModelVersion: "3",
		Outputs: map[string][]event.Value{"delay_risk": event.Numbers(0.82)}, Shipment: json.RawMessage(`{"to":"SGSIN"}`),
		ReceivedAt: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), PredictedAt: time.Date(2026, 11, 27, 8, 0, 1, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := e.js.KeyValue(context.Background(), e.spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(context.Background(), "e1", record); err != nil {
		t.Fatal(err)
	}
	got := e.do(t, http.MethodGet, "/v1/predictions/e1", "", "", "")
	var want map[string]any
	if err := json.Unmarshal(record, &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(answer{Status: 200, Body: want}, got); diff != "" {
		t.Errorf("after the prediction (-want +got):\n%s", diff)
	}
	bad := e.do(t, http.MethodGet, "/v1/predictions/a*b", "", "", "")
	wantBad := answer{Status: 400, Body: map[string]any{"error": "id has '*' at offset 1; ids use only [A-Za-z0-9_=.-]", "field": "eventId"}}
	if diff := cmp.Diff(wantBad, bad); diff != "" {
		t.Errorf("bad id (-want +got):\n%s", diff)
	}
}

// TestOutageUnderLoadLosesNothingAccepted stops the server while clients keep posting: every
// answer must be 202 or 503 (none hangs), and every event of a 202 must be in the stream after
// the restart.
func TestOutageUnderLoadLosesNothingAccepted(t *testing.T) {
	e := newEnv(t, testSpec(1_000_000), Config{PublishTimeout: 5 * time.Second})
	var (
		mu       sync.Mutex
		accepted []string
		statuses = map[int]int{}
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ids := make([]string, 10)
				for j := range ids {
					ids[j] = fmt.Sprintf("c%d-%d-%d", c, i, j)
				}
				resp, err := client.Post(e.http.URL+"/v1/events", ctNDJSON, strings.NewReader(ndjson(ids...)))
				if err != nil {
					t.Errorf("client %d: %v", c, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusAccepted {
					accepted = append(accepted, ids...)
				}
				mu.Unlock()
			}
		})
	}
	countOf := func(code int) int {
		mu.Lock()
		defer mu.Unlock()
		return statuses[code]
	}
	// atLeast is a condition for Eventually: n or more bodies answered with code.
	atLeast := func(n, code int) func() error {
		return func() error {
			if got := countOf(code); got < n {
				return fmt.Errorf("%d bodies answered %d", got, code)
			}
			return nil
		}
	}
	testenv.Eventually(t, 15*time.Second, "some bodies accepted before the outage", atLeast(20, 202))
	e.srv.Stop()
	testenv.Eventually(t, 15*time.Second, "bodies refused during the outage", atLeast(20, 503))
	e.srv.Restart(t)
	before := countOf(202)
	testenv.Eventually(t, 15*time.Second, "bodies accepted after the restart", atLeast(before+20, 202))
	close(stop)
	wg.Wait()

	for code := range statuses {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("answers by status: %v; only 202 and 503 belong here", statuses)
			break
		}
	}
	stored := map[string]bool{}
	for _, id := range e.streamIDs(t) {
		stored[id] = true
	}
	var lost []string
	for _, id := range accepted {
		if !stored[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d accepted events are not in the stream, e.g. %v", len(lost), len(accepted), lost[:min(5, len(lost))])
	}
}

// TestBodyLargerThanTheAckWindow posts more events in one body than may await acks at once.
func TestBodyLargerThanTheAckWindow(t *testing.T) {
	// A generous publish timeout: this test is about the ack window, not about speed, and a
	// loaded machine running -race may need more than the default to store 18,000 events.
	e := newEnv(t, testSpec(1_000_000), Config{MaxBodyBytes: 8 << 20, PublishTimeout: 30 * time.Second})
	n := maxPendingAcks + 2000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "big-" + strconv.Itoa(i)
	}
	got := e.post(t, ctNDJSON, ndjson(ids...))
	if diff := cmp.Diff(answer{Status: 202, Body: map[string]any{"accepted": float64(n), "duplicates": 0.0}}, got); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if got := e.streamMsgs(t); got != uint64(n) {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
}

// Every answer of the API is JSON with an error, 404 and 405 included, and a 405 says what is
// allowed.
func TestWrongPathsAndMethodsAnswerJSON(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	cases := map[string]struct {
		method, path string
		want         answer
		allow        string
	}{
		"GET events": {method: "GET", path: "/v1/events", allow: "POST",
			want: answer{Status: 405, Body: map[string]any{"error": "method GET is not allowed on /v1/events; use POST"}}},
		"DELETE a prediction": {method: "DELETE", path: "/v1/predictions/e1", allow: "GET, HEAD",
			want: answer{Status: 405, Body: map[string]any{"error": "method DELETE is not allowed on /v1/predictions/e1; use GET"}}},
		"POST livez": {method: "POST", path: "/livez", allow: "GET, HEAD",
			want: answer{Status: 405, Body: map[string]any{"error": "method POST is not allowed on /livez; use GET"}}},
		"unknown path": {method: "GET", path: "/v2/events",
			want: answer{Status: 404, Body: map[string]any{"error": "no such path: /v2/events; this API serves POST /v1/events, GET /v1/events/{eventId}, GET /v1/predictions/{eventId}, POST /v1/predictions:batchGet and GET /v1/predictions:stream"}}},
		"predictions without an id": {method: "GET", path: "/v1/predictions/",
			want: answer{Status: 404, Body: map[string]any{"error": "no such path: /v1/predictions/; this API serves POST /v1/events, GET /v1/events/{eventId}, GET /v1/predictions/{eventId}, POST /v1/predictions:batchGet and GET /v1/predictions:stream"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, e.http.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.http.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := answer{Status: resp.StatusCode}
			if err := json.NewDecoder(resp.Body).Decode(&got.Body); err != nil {
				t.Fatalf("answer is not JSON: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if a := resp.Header.Get("Allow"); a != tc.allow {
				t.Errorf("Allow %q, want %q", a, tc.allow)
			}
		})
	}
}

// TestLostAcksAreReportedUnconfirmed: when the stream stores events but their acks never come
// back, ingestion cannot know their fate. The 503 says so — "unconfirmed", not "not stored" —
// and the client's retry of the same body finds them stored, as duplicates: each event is
// stored once, and the two answers together account for every event.
func TestLostAcksAreReportedUnconfirmed(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{})
	// A relay between ingestion and the stream that stores each event and drops the ack.
	lossy := e.spec.Topology
	lossy.Subject = "lossy.events"
	sub, err := e.nc.Subscribe(lossy.EventSubject(">"), func(m *nats.Msg) {
		fwd := &nats.Msg{Subject: e.spec.EventSubject(strings.TrimPrefix(m.Subject, lossy.Subject+".")), Header: m.Header, Data: m.Data}
		if _, err := e.js.PublishMsg(context.Background(), fwd); err != nil {
			t.Error(err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	h, err := New(Config{Conn: e.nc, Topology: lossy, Features: testFeatures, MaxBodyBytes: 1 << 20,
		PublishTimeout: 300 * time.Millisecond, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	lossyEnv := *e
	lossyEnv.http, lossyEnv.handler = srv, h

	got := lossyEnv.post(t, ctJSON, array("u1", "u2", "u3"))
	want := answer{Status: 503, RetryAfter: "2", Body: map[string]any{
		"error":       "the queue is unavailable; retry later; 3 events of this body were sent but not confirmed: they may be stored, and the retry will count those as duplicates",
		"unconfirmed": 3.0,
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lost acks (-want +got):\n%s", diff)
	}
	if got := e.post(t, ctJSON, array("u1", "u2", "u3")); got.Status != 202 || got.Body["duplicates"] != 3.0 {
		t.Errorf("the retry: %+v, want 202 with 3 duplicates", got)
	}
	if diff := cmp.Diff([]string{"u1", "u2", "u3"}, e.streamIDs(t)); diff != "" {
		t.Errorf("ids in the stream (-want +got):\n%s", diff)
	}
}
