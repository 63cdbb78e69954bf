package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func testPipeline(t testing.TB, m *model.Model) Pipeline {
	return Pipeline{
		Config: pipelineconfig.Config{
			Namespace: "local", Name: "orders",
			Queue: queue.Spec{Topology: queue.TopologyFor("local", "orders"), Limits: queue.Limits{
				MaxMessages: 1_000_000, MaxBytes: 1 << 30, MaxAge: time.Hour, DuplicateWindow: 10 * time.Minute,
				AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 10_000, PredictionRetention: time.Hour}},
			Model:     pipelineconfig.Model{Name: "freight-delay-risk", Version: "1"},
			Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 4 << 20},
			Inference: pipelineconfig.Inference{BatchSize: 64},
		},
		Model:    m,
		Features: m.Metadata().Features,
	}
}

// start runs Run on free loopback ports until the test ends.
func start(t testing.TB, workers int) Endpoints {
	return startWith(t, workers, func(*Pipeline) {})
}

func startWith(t testing.TB, workers int, mutate func(*Pipeline)) Endpoints {
	return startWithOptions(t, Options{Workers: workers}, mutate)
}

func startWithOptions(t testing.TB, opts Options, mutate func(*Pipeline)) Endpoints {
	t.Helper()
	m := testenv.FreightModel(t)
	p := testPipeline(t, m)
	mutate(&p)
	return runLocal(t, opts, []Model{{Name: "freight-delay-risk", Version: "1", Runtime: m, MaxBatchSize: 64, MaxBatchDelay: time.Millisecond}},
		[]Pipeline{p})
}

// runLocal runs Run with the models and pipelines on free loopback ports until the test ends.
func runLocal(t testing.TB, opts Options, models []Model, pipelines []Pipeline) Endpoints {
	t.Helper()
	// The data directory is made before the cleanup below is registered, so that it is removed
	// after Run has stopped (cleanups run last-registered first); made inside the goroutine, it
	// could be registered later and removed under the running NATS server.
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Endpoints, 1)
	// Closed, not sent on: both the wait below and the cleanup read it, and a Run that stops
	// early must fail the test, not hang its cleanup.
	stopped := make(chan struct{})
	var runErr error
	go func() {
		defer close(stopped)
		opts.NATSAddr, opts.IngestAddr, opts.InferAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		opts.Ready = func(e Endpoints) { ready <- e }
		runErr = Run(ctx, opts, models, pipelines)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
		if runErr != nil {
			t.Errorf("Run: %v", runErr)
		}
	})
	select {
	case e := <-ready:
		return e
	case <-stopped:
		t.Fatalf("Run stopped before it was ready: %v", runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("Run not ready within 30s")
	}
	return Endpoints{}
}

func eventJSON(id string, i int) string {
	return fmt.Sprintf(`{"id":%q,"features":{"distance_km":%d,"mode_ocean":1,"mode_air":0,"mode_rail":0,"mode_road":0,"carrier_on_time_rate":0.8,"port_congestion_index":%g,"weather_severity":0.2,"month_sin":0.5,"month_cos":0.8,"customs_complexity":0.3,"dwell_time_hours":%d},"shipment":{"ref":%q}}`,
		id, 100+i%9000, float64(i%10)/10, i%72, id)
}

type answer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	// Unconfirmed events of a 503 were sent and not acknowledged: they may be stored.
	Unconfirmed int `json:"unconfirmed"`
}

// post sends a body as a client following the API's contract does: on 503 it waits Retry-After
// and sends the whole body again (events stored by the refused attempt come back as duplicates).
// The answer adds up what every attempt stored.
func post(t testing.TB, url, contentType, body string) answer {
	t.Helper()
	var total answer
	for attempt := 1; ; attempt++ {
		resp, err := http.Post(url+"/v1/events", contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var a answer
		if err := json.Unmarshal(data, &a); err != nil {
			t.Fatalf("POST: %d %s: %v", resp.StatusCode, data, err)
		}
		total.Accepted += a.Accepted
		total.Unconfirmed += a.Unconfirmed
		switch {
		case resp.StatusCode == http.StatusAccepted:
			total.Duplicates += a.Duplicates
			return total
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < 20:
			// Duplicates of a refused attempt are counted again by the retry.
			retryAfter, _ := time.ParseDuration(resp.Header.Get("Retry-After") + "s")
			time.Sleep(retryAfter)
		default:
			t.Fatalf("POST (attempt %d): %d %s", attempt, resp.StatusCode, data)
		}
	}
}

// TestTenThousandEventsArePredictedExactlyOnce sends 10,000 distinct events as single JSON
// objects, JSON arrays and NDJSON, with duplicates across and within bodies, and reads one
// prediction back for each distinct id.
func TestTenThousandEventsArePredictedExactlyOnce(t *testing.T) {
	eps := start(t, 2)
	url := eps.Ingest["orders"]
	const n = 10_000
	id := func(i int) string { return fmt.Sprintf("evt-%05d", i) }

	var mu sync.Mutex
	var total answer
	add := func(a answer) {
		mu.Lock()
		total.Accepted += a.Accepted
		total.Duplicates += a.Duplicates
		total.Unconfirmed += a.Unconfirmed
		mu.Unlock()
	}
	var wg sync.WaitGroup
	// 0–1999: single objects, from 8 clients at once.
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < 2000; i += 8 {
				add(post(t, url, "application/json", eventJSON(id(i), i)))
			}
		}()
	}
	// 2000–5999: JSON arrays of 100; 6000–9999: NDJSON of 100. Each body repeats its first event
	// at the end (a duplicate within the body).
	batchSlots := make(chan struct{}, 8) // eight clients sending batches at once
	for start := 2000; start < n; start += 100 {
		wg.Add(1)
		batchSlots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-batchSlots }()
			var items []string
			for i := start; i < start+100; i++ {
				items = append(items, eventJSON(id(i), i))
			}
			items = append(items, eventJSON(id(start), start))
			if start < 6000 {
				add(post(t, url, "application/json", "["+strings.Join(items, ",")+"]"))
			} else {
				add(post(t, url, "application/x-ndjson", strings.Join(items, "\n")+"\n"))
			}
		}()
	}
	wg.Wait()
	// A client sending again 500 events it already sent (all singles) gets duplicates, not new
	// events.
	var retry []string
	for i := 0; i < 500; i++ {
		retry = append(retry, eventJSON(id(i), i))
	}
	add(post(t, url, "application/json", "["+strings.Join(retry, ",")+"]"))
	// Exactly n stored, whatever refusals and retries happened on the way: the answers account
	// for every event, each confirmed stored once or left unconfirmed by a 503 (a lost or late
	// ack on a loaded machine; the retry then found it stored, a duplicate). At least the 80
	// in-body and 500 resent duplicates (more when a refused attempt had stored some events).
	if total.Accepted > n || total.Accepted+total.Unconfirmed < n || total.Duplicates < 80+500 {
		t.Fatalf("accepted %d, unconfirmed %d, duplicates %d; want %d accounted for and at least %d duplicates",
			total.Accepted, total.Unconfirmed, total.Duplicates, n, 80+500)
	}

	// Every distinct id gets exactly one prediction, readable by id.
	_, js := natstest.Connect(t, eps.NATS)
	topo := queue.TopologyFor("local", "orders")
	kv, err := js.KeyValue(context.Background(), topo.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	natstest.WaitValues(t, kv, n, 120*time.Second)
	for i := 0; i < n; i++ {
		resp, err := http.Get(url + "/v1/predictions/" + id(i))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET prediction %s: %d %s", id(i), resp.StatusCode, body)
		}
		p, err := event.DecodePrediction(body)
		if err != nil || p.ID != id(i) || !bytes.Contains(p.Shipment, []byte(id(i))) {
			t.Fatalf("prediction %s: %+v, %v", id(i), p, err)
		}
	}
	// Local mode serves the status API and the push feed as the pods do.
	resp, err := http.Get(url + "/v1/events/" + id(0))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"status":"predicted"`)) {
		t.Errorf("GET /v1/events/%s: %d %s", id(0), resp.StatusCode, body)
	}
	feedReq, _ := http.NewRequest(http.MethodGet, url+"/v1/predictions:stream", nil)
	feedReq.Header.Set("Last-Event-ID", "0")
	feed, err := http.DefaultClient.Do(feedReq)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(feed.Body)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "data: ") {
	}
	feed.Body.Close()
	if feed.StatusCode != http.StatusOK || !strings.Contains(sc.Text(), `"id":"`) {
		t.Errorf("the feed in local mode: %d, first data %q", feed.StatusCode, sc.Text())
	}
	// One write per prediction: the bucket's stream holds exactly one message per event.
	bucket, err := js.Stream(context.Background(), "KV_"+topo.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := bucket.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := info.State.Msgs; got != n {
		t.Errorf("the predictions bucket's stream holds %d messages, want exactly %d", got, n)
	}
}

func TestRunServesTheModelOverOIP(t *testing.T) {
	eps := start(t, 1)
	resp, err := http.Post(eps.Infer["freight-delay-risk"]+"/v2/models/freight-delay-risk/infer", "application/json",
		strings.NewReader(`{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[800,0,0,0,1,0.9,0.1,0.1,0.5,0.8,0.1,4]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"delay_risk"`) {
		t.Fatalf("infer: %d %s", resp.StatusCode, body)
	}
}

// TestAFullStreamRefusesAndLosesNothingAccepted bursts more events than a tiny stream holds: the
// overflow gets 503 with Retry-After, and every event that got 202 is predicted.
func TestAFullStreamRefusesAndLosesNothingAccepted(t *testing.T) {
	eps := startWith(t, 1, func(p *Pipeline) { p.Config.Queue.MaxMessages = 50 })
	url := eps.Ingest["orders"]
	var mu sync.Mutex
	var acceptedIDs []string
	refused := 0
	var wg sync.WaitGroup
	for b := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var items, ids []string
			for i := b * 10; i < (b+1)*10; i++ {
				id := fmt.Sprintf("burst-%04d", i)
				ids = append(ids, id)
				items = append(items, eventJSON(id, i))
			}
			resp, err := http.Post(url+"/v1/events", "application/json", strings.NewReader("["+strings.Join(items, ",")+"]"))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			switch resp.StatusCode {
			case http.StatusAccepted:
				acceptedIDs = append(acceptedIDs, ids...)
			case http.StatusServiceUnavailable:
				if resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				refused++
			default:
				t.Errorf("unexpected status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if refused == 0 || len(acceptedIDs) == 0 {
		t.Fatalf("%d bodies refused, %d events accepted: the burst must both fill the 50-event stream and get some events in, or this test proves nothing", refused, len(acceptedIDs))
	}
	for _, id := range acceptedIDs {
		testenv.Eventually(t, 30*time.Second, "prediction of "+id+", which got 202", func() error {
			resp, err := http.Get(url + "/v1/predictions/" + id)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET prediction: %d", resp.StatusCode)
			}
			return nil
		})
	}
	t.Logf("%d bodies refused with 503, %d events accepted and predicted", refused, len(acceptedIDs))
}

// TestWorkersFollowTheQueueDepth runs local mode with autoscaled workers: a backlog grows the
// pool with the operator's recommender, and it shrinks back to minReplicas once drained.
func TestWorkersFollowTheQueueDepth(t *testing.T) {
	// Until the pool has grown past one worker, the model holds every batch: the backlog then
	// outgrows one worker for certain, rather than only when ingestion outruns it.
	grown := make(chan struct{})
	var growOnce sync.Once
	release := func() { growOnce.Do(func() { close(grown) }) }
	var mu sync.Mutex
	var sizes []int32
	window := time.Second
	eps := startWithOptions(t, Options{OnScale: func(_ string, _, to int32, _ string) {
		mu.Lock()
		sizes = append(sizes, to)
		mu.Unlock()
		if to > 1 {
			release()
		}
	}}, func(p *Pipeline) {
		p.Model = heldRuntime{Runtime: p.Model, until: grown}
		p.Autoscale = autoscale.Policy{MinReplicas: 1, MaxReplicas: 4, TargetPerReplica: 100,
			ScaleDown: autoscale.Rules{StabilizationWindow: &window}}
		p.PollInterval = 100 * time.Millisecond
	})
	// When the pool never grows, Run's shutdown at the end of the test waits for workers that
	// the model still holds. This cleanup runs before startWithOptions' own.
	t.Cleanup(release)
	var items []string
	for i := range 3000 {
		items = append(items, eventJSON(fmt.Sprintf("auto-%05d", i), i))
	}
	for start := 0; start < len(items); start += 500 {
		post(t, eps.Ingest["orders"], "application/x-ndjson", strings.Join(items[start:start+500], "\n"))
	}
	testenv.Eventually(t, 60*time.Second, "the pool grows and shrinks back", func() error {
		mu.Lock()
		got := slices.Clone(sizes)
		mu.Unlock()
		if len(got) >= 2 && slices.Max(got) > 1 && got[len(got)-1] == 1 {
			return nil
		}
		return fmt.Errorf("worker counts over time %v: want growth past 1, then back to 1", got)
	})
}

// heldRuntime is a model whose Run waits until until is closed.
type heldRuntime struct {
	model.Runtime
	until <-chan struct{}
}

func (h heldRuntime) Run(rows int, inputs, outputs [][]float32) error {
	<-h.until
	return h.Runtime.Run(rows, inputs, outputs)
}

// TestRunReturnsWhenMoreWorkersFailThanItRunsServers starts more failing workers than Run runs
// HTTP servers: every worker fails at once because the consumer, left on the data dir by an
// earlier process, has a priority group that the workers' pull does not name. Run must return
// the first failure rather than hang in its shutdown on workers still waiting to report theirs.
func TestRunReturnsWhenMoreWorkersFailThanItRunsServers(t *testing.T) {
	m := testenv.FreightModel(t)
	p := testPipeline(t, m)
	topo := p.Config.Queue.Topology
	dir := t.TempDir()
	ctx := context.Background()

	ns, err := startNATS("127.0.0.1:0", dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	nc, js := natstest.Connect(t, ns.ClientURL())
	if _, err := queue.Provision(ctx, js, p.Config.Queue); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, topo.Stream, topo.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	// Same settings, so that Run's provisioning leaves the consumer as it is.
	cfg := c.CachedInfo().Config
	cfg.PriorityPolicy, cfg.PriorityGroups = jetstream.PriorityPolicyOverflow, []string{"elsewhere"}
	if err := js.DeleteConsumer(ctx, topo.Stream, topo.Consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, topo.Stream, cfg); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()

	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: dir, NATSAddr: "127.0.0.1:0", IngestAddr: "127.0.0.1:0", InferAddr: "127.0.0.1:0", Workers: 4},
			[]Model{{Name: "freight-delay-risk", Version: "1", Runtime: m, MaxBatchSize: 64, MaxBatchDelay: time.Millisecond}},
			[]Pipeline{p})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "priority group") {
			t.Fatalf("Run returned %v, want the workers' priority group error", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return within 60s after its workers failed")
	}
}

// TestABusyNATSPortSaysSo: the error names the cause, not only "did not start".
func TestABusyNATSPortSaysSo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(context.Background(), Options{DataDir: t.TempDir(), NATSAddr: ln.Addr().String(),
		IngestAddr: "127.0.0.1:0", InferAddr: "127.0.0.1:0"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run on a busy NATS port: %v, want an error saying the address is in use", err)
	}
}

// TestAFailedStartFreesThePortsItTook: the model's server starts on a port that the pipeline's
// ingestion then asks for too, so Run fails half-way; the model's port must be free again once
// Run has returned, as a process that exits would leave it (tests run Run in-process, and a
// leaked listener also left its goroutine behind).
func TestAFailedStartFreesThePortsItTook(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	m := testenv.FreightModel(t)
	err = Run(context.Background(), Options{DataDir: t.TempDir(), NATSAddr: "127.0.0.1:0", IngestAddr: addr, InferAddr: addr},
		[]Model{{Name: "freight-delay-risk", Version: "1", Runtime: m, MaxBatchSize: 64, MaxBatchDelay: time.Millisecond}},
		[]Pipeline{testPipeline(t, m)})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run with ingestion on the model's port: %v, want an error saying the address is in use", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the model's port after Run failed: %v", err)
	}
	again.Close()
}

// TestServersHaveThePodsLimits: local mode's servers are built by the code the pods use, so a
// slow body or a client that never finishes is cut as in the cluster (ReadTimeout 60 s).
func TestServersHaveThePodsLimits(t *testing.T) {
	r := &run{log: slog.New(slog.DiscardHandler), failed: make(chan error, 1)}
	var list []*http.Server
	if _, err := r.serve("127.0.0.1:0", 0, http.NotFoundHandler(), &list); err != nil {
		t.Fatal(err)
	}
	defer shutdownAll(list)
	got := list[0]
	want := httpserver.New(http.NotFoundHandler(), r.log)
	if got.ReadHeaderTimeout != want.ReadHeaderTimeout || got.ReadTimeout != want.ReadTimeout || got.IdleTimeout != want.IdleTimeout {
		t.Errorf("local server limits: header %s, read %s, idle %s; the pods': %s, %s, %s", got.ReadHeaderTimeout, got.ReadTimeout,
			got.IdleTimeout, want.ReadHeaderTimeout, want.ReadTimeout, want.IdleTimeout)
	}
}

// TestAModelWithTokensNeedsOne: a model's spec.auth is honoured as in its pods: an infer
// request without a listed bearer token gets 401, one with it is served.
func TestAModelWithTokensNeedsOne(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := testenv.FreightModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan Endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{DataDir: t.TempDir(), NATSAddr: "127.0.0.1:0", IngestAddr: "127.0.0.1:0", InferAddr: "127.0.0.1:0",
			Ready: func(e Endpoints) { ready <- e }},
			[]Model{{Name: "freight-delay-risk", Version: "1", Runtime: m, MaxBatchSize: 8, TokensFile: tokens}}, nil)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var eps Endpoints
	select {
	case eps = <-ready:
	case err := <-done:
		t.Fatalf("Run stopped before it was ready: %v", err)
	}
	infer := func(token string) int {
		req, _ := http.NewRequest(http.MethodPost, eps.Infer["freight-delay-risk"]+"/v2/models/freight-delay-risk/infer",
			strings.NewReader(`{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[800,0,0,0,1,0.9,0.1,0.1,0.5,0.8,0.1,4]}]}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := infer(""); got != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", got)
	}
	if got := infer("s3cret"); got != http.StatusOK {
		t.Errorf("with the token: %d, want 200", got)
	}
}

// TestPredictionsSurviveAnUpgradeInPlace: a pipeline restarted on its data keeps answering for
// the predictions stored before — those of this release, and one stored the way earlier releases
// did (the same record in the bucket and a copy on the output stream) — and predicts new events.
func TestPredictionsSurviveAnUpgradeInPlace(t *testing.T) {
	dir := t.TempDir()
	get := func(t *testing.T, url, id string) int {
		resp, err := http.Get(url + "/v1/predictions/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("before", func(t *testing.T) {
		eps := startWithOptions(t, Options{DataDir: dir, Workers: 1}, func(*Pipeline) {})
		post(t, eps.Ingest["orders"], "application/json", eventJSON("new-1", 1))
		testenv.Eventually(t, time.Minute, "the prediction of new-1", func() error {
			if code := get(t, eps.Ingest["orders"], "new-1"); code != http.StatusOK {
				return fmt.Errorf("GET: %d", code)
			}
			return nil
		})
		_, js := natstest.Connect(t, eps.NATS)
		topo := queue.TopologyFor("local", "orders")
		record, err := event.EncodePrediction(event.Prediction{ID: "old-1", Model: "freight-delay-risk", ModelVersion: "1",
			Outputs: map[string][]event.Value{"delay_risk": event.Numbers(0.5)}, ReceivedAt: time.Now().UTC(), PredictedAt: time.Now().UTC()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(context.Background(), topo.PredictionSubject, record, jetstream.WithMsgID("old-1")); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(context.Background(), topo.PredictionKeySubject("old-1"), record); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("after", func(t *testing.T) {
		eps := startWithOptions(t, Options{DataDir: dir, Workers: 1}, func(*Pipeline) {})
		for _, id := range []string{"new-1", "old-1"} {
			if code := get(t, eps.Ingest["orders"], id); code != http.StatusOK {
				t.Errorf("GET the prediction of %s, stored before the restart: %d, want 200", id, code)
			}
		}
		post(t, eps.Ingest["orders"], "application/json", eventJSON("new-2", 2))
		testenv.Eventually(t, time.Minute, "the prediction of new-2", func() error {
			if code := get(t, eps.Ingest["orders"], "new-2"); code != http.StatusOK {
				return fmt.Errorf("GET: %d", code)
			}
			return nil
		})
	})
}

// runErr runs Run with pipelines until it is ready or fails, and returns its error (nil when it
// came up, after stopping it).
func runErr(t *testing.T, opts Options, pipelines ...Pipeline) error {
	t.Helper()
	m := testenv.FreightModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts.DataDir, opts.NATSAddr, opts.IngestAddr, opts.InferAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	ready := make(chan struct{})
	opts.Ready = func(Endpoints) { close(ready) }
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, opts, []Model{{Name: "freight-delay-risk", Version: "1", Runtime: m, MaxBatchSize: 64, MaxBatchDelay: time.Millisecond}}, pipelines)
	}()
	select {
	case <-ready:
		cancel()
		return <-done
	case err := <-done:
		return err
	}
}

// TestRunRefusesWhatDoesNotFitTheStore: local mode checks capacity as the operator does, and its
// error names the store's size and what the pipeline asked for.
func TestRunRefusesWhatDoesNotFitTheStore(t *testing.T) {
	m := testenv.FreightModel(t)
	p := func(name string) Pipeline {
		p := testPipeline(t, m)
		p.Config.Name = name
		p.Config.Queue.Topology = queue.TopologyFor("local", name)
		p.Config.Queue.MaxBytes = 2 << 20
		return p
	}
	opts := Options{Workers: 1, MaxStore: 14 << 20}
	if err := runErr(t, opts, p("one"), p("two")); err != nil {
		t.Fatalf("two pipelines of 3 × 2 MiB in a 14 MiB store: %v", err)
	}
	err := runErr(t, opts, p("one"), p("two"), p("three"))
	if !errors.Is(err, queue.ErrInsufficientStorage) {
		t.Fatalf("three pipelines of 3 × 2 MiB in a 14 MiB store: err = %v, want ErrInsufficientStorage", err)
	}
	for _, want := range []string{"pipeline three does not fit in the embedded NATS store of 14 MiB", "--store-size", "needs 6 MiB", "has 2 MiB free"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
}

func TestRunRefusesWhatOneServerCannotHonour(t *testing.T) {
	m := testenv.FreightModel(t)
	cases := map[string]struct {
		mutate func(*Pipeline)
		want   string
	}{
		"replicas": {func(p *Pipeline) { p.Config.Queue.Replicas = 3 }, "spec.queue.replicas is 3"},
		"credentials": {func(p *Pipeline) {
			p.Config.NATSCredentials = queue.Credentials{CredsFile: "/etc/freightcast/nats/creds"}
		}, "spec.queue.credentials"},
		"tls": {func(p *Pipeline) {
			p.Config.NATSCredentials = queue.Credentials{CAFile: "/etc/freightcast/nats-ca/ca.crt"}
		}, "spec.queue.tls"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := testPipeline(t, m)
			tc.mutate(&p)
			if err := runErr(t, Options{Workers: 1}, p); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}
