// Package pipelinetest runs one pipeline's data path in-process, built from the packages its pods
// run — ingestion over HTTP in front of NATS, inference workers on the committed freight model —
// on NATS servers a test controls, and plays a client that sends events and retries what was not
// accepted. Tests of failover and of NATS permissions use it to prove what a pod would see.
package pipelinetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/worker"
)

// Spec is a pipeline spec with limits for tests: room for 100,000 events, a 10-minute
// duplicate window (a test's retries stay within it), and an ack wait short enough that a batch
// held by a worker cut off from its consumer's leader comes back within the test.
func Spec(namespace, name string, replicas int) queue.Spec {
	return queue.Spec{
		Topology: queue.TopologyFor(namespace, name),
		Limits: queue.Limits{MaxMessages: 100_000, MaxBytes: 64 << 20, MaxAge: time.Hour, DuplicateWindow: 10 * time.Minute,
			AckWait: 5 * time.Second, MaxDeliver: 100, MaxAckPending: 10_000, PredictionRetention: time.Hour},
		Replicas: replicas,
	}
}

// Dial connects to url as a pipeline's pod does (cmd/freightcast ingest and infer --worker):
// reconnecting for ever, without a reconnect buffer (a publish during a reconnect fails at once
// instead of waiting), replies under the pipeline's inbox prefix, and with creds.
func Dial(tb testing.TB, url string, t queue.Topology, creds queue.Credentials, extra ...nats.Option) *nats.Conn {
	tb.Helper()
	opts, err := queue.PipelineOptions(t, creds)
	if err != nil {
		tb.Fatal(err)
	}
	opts = append(opts, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectBufSize(-1))
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		tb.Fatalf("pipelinetest: connecting to %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// Gate holds every model run while closed, so that a test can keep a batch in a worker's hands
// (delivered, unacknowledged) for as long as it wants. It starts open.
type Gate struct {
	mu      sync.Mutex
	closed  chan struct{} // nil while open
	waiting int
}

// Close makes the next model runs wait.
func (g *Gate) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed == nil {
		g.closed = make(chan struct{})
	}
}

// Open lets the waiting runs and all later ones go.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		close(g.closed)
		g.closed = nil
	}
}

// Waiting is how many model runs the gate holds. Once every worker is held, nothing is
// acknowledged until Open: the queue's depth can only grow.
func (g *Gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

func (g *Gate) wait() {
	g.mu.Lock()
	c := g.closed
	if c != nil {
		g.waiting++
	}
	g.mu.Unlock()
	if c != nil {
		<-c
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
	}
}

type gatedModel struct {
	model.Runtime
	gate *Gate
}

func (m gatedModel) Run(rows int, in, out [][]float32) error {
	m.gate.wait()
	return m.Runtime.Run(rows, in, out)
}

// Pipeline is ingestion and workers of one pipeline.
type Pipeline struct {
	Spec queue.Spec
	// URL is the ingestion API's base URL.
	URL string
	// Handler is ingestion's, to serve from a server of a test's own.
	Handler http.Handler
	// Gate holds the workers' model runs while closed.
	Gate *Gate

	model  *model.Model
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start serves ingestion on ingestConn and runs workers workers, each on a connection of its own
// from dial, until the test ends (or Stop). The pipeline's streams must be provisioned. Each
// configure changes ingestion's configuration before it is built (a tokens file, say).
func Start(tb testing.TB, spec queue.Spec, ingestConn *nats.Conn, dial func() *nats.Conn, workers int, configure ...func(*ingest.Config)) *Pipeline {
	tb.Helper()
	m := testenv.FreightModel(tb)
	p := &Pipeline{Spec: spec, Gate: &Gate{}, model: m}
	cfg := ingest.Config{Conn: ingestConn, Topology: spec.Topology, Features: m.Metadata().Features,
		MaxBodyBytes: 4 << 20, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)}
	for _, c := range configure {
		c(&cfg)
	}
	h, err := ingest.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	p.Handler = h
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL

	wm, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	for range workers {
		js, err := jetstream.New(dial())
		if err != nil {
			tb.Fatal(err)
		}
		w, err := worker.New(worker.Config{JetStream: js, Topology: spec.Topology, Model: gatedModel{m, p.Gate},
			ModelName: "freight-delay-risk", ModelVersion: "1", BatchSize: 64, MaxDeliver: spec.MaxDeliver, Metrics: wm})
		if err != nil {
			tb.Fatal(err)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// As in an inference pod: Run fails only before it consumes; try again.
			for ctx.Err() == nil {
				if err := w.Run(ctx); err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		}()
	}
	tb.Cleanup(p.Stop)
	return p
}

// Stop lets the workers finish and acknowledge what they hold, and waits for them.
func (p *Pipeline) Stop() {
	p.once.Do(func() {
		p.Gate.Open()
		p.cancel()
		p.wg.Wait()
	})
}

// ID names event i.
func ID(i int) string { return "ev-" + strconv.Itoa(i) }

// features is a plausible feature row for event i, by the model's feature names.
func features(i int) map[string]float64 {
	mode := i % 4
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return map[string]float64{"distance_km": float64(200 + i%5000), "mode_ocean": b(mode == 0), "mode_air": b(mode == 1),
		"mode_rail": b(mode == 2), "mode_road": b(mode == 3), "carrier_on_time_rate": 0.6 + float64(i%40)/100,
		"port_congestion_index": float64(i%10) / 10, "weather_severity": float64(i%7) / 7, "month_sin": math.Sin(float64(i)),
		"month_cos": math.Cos(float64(i)), "customs_complexity": float64(i%5) / 5, "dwell_time_hours": float64(i % 72)}
}

// NDJSON is the request body of events from to to-1.
func NDJSON(from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"id":%q,"features":{`, ID(i))
		first := true
		for name, v := range features(i) {
			if !first {
				b.WriteByte(',')
			}
			first = false
			fmt.Fprintf(&b, "%q:%s", name, strconv.FormatFloat(v, 'g', -1, 64))
		}
		fmt.Fprintf(&b, `},"shipment":{"ref":%q}}`+"\n", ID(i))
	}
	return b.Bytes()
}

// Outcome is one POST of a body and its answer.
type Outcome struct {
	Start, End time.Time
	Status     int
	// RetryAfter is the Retry-After header of a 429 or 503.
	RetryAfter string
	// Accepted and Duplicates are the counts of a 202.
	Accepted, Duplicates int
	// Err is a failure to get any answer.
	Err error
}

// Send POSTs events from to to-1 as one NDJSON body until it gets 202, and returns every
// attempt. It retries a 503 after a tenth of its Retry-After (the test has no time to wait the
// whole hint, and a retry of stored events is a harmless duplicate), and fails the test on any
// other answer or when ctx ends first.
func Send(ctx context.Context, tb testing.TB, baseURL string, from, to int) []Outcome {
	body := NDJSON(from, to)
	client := &http.Client{Timeout: 30 * time.Second}
	var out []Outcome
	for {
		o := post(ctx, client, baseURL, body)
		out = append(out, o)
		switch {
		case o.Status == http.StatusAccepted:
			return out
		case ctx.Err() != nil:
			tb.Errorf("pipelinetest: events %d..%d not accepted before the test's deadline: %d attempts, last %d %v", from, to-1, len(out), o.Status, o.Err)
			return out
		case o.Err != nil, o.Status == http.StatusServiceUnavailable:
			wait := 100 * time.Millisecond
			if s, err := strconv.Atoi(o.RetryAfter); err == nil {
				wait = time.Duration(s) * time.Second / 10
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		default:
			tb.Errorf("pipelinetest: events %d..%d: unexpected answer %d", from, to-1, o.Status)
			return out
		}
	}
}

func post(ctx context.Context, client *http.Client, baseURL string, body []byte) Outcome {
	o := Outcome{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/events", bytes.NewReader(body))
	if err != nil {
		o.Err, o.End = err, time.Now()
		return o
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	o.End = time.Now()
	if err != nil {
		o.Err = err
		return o
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	o.Status, o.RetryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	if o.Status == http.StatusAccepted {
		if _, err := fmt.Sscanf(string(data), `{"accepted":%d,"duplicates":%d}`, &o.Accepted, &o.Duplicates); err != nil {
			o.Err = fmt.Errorf("202 body %q: %w", data, err)
		}
	}
	return o
}

// CheckExactlyOnce waits until the bucket holds a prediction for each of events 0..n-1, and
// fails the test unless every one is there exactly once — one bucket value per event, the
// model's answer for that event — nothing was dead-lettered (predictions are stored once, in the
// bucket; the output stream holds dead letters only) and the events stream is empty.
func (p *Pipeline) CheckExactlyOnce(tb testing.TB, js jetstream.JetStream, n int, timeout time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// Each call bounded: after a restart of the servers, a request that reaches no leader yet is
	// never answered.
	call := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		tb.Cleanup(cancel)
		return c
	}
	var kv jetstream.KeyValue
	testenv.Eventually(tb, timeout, "the predictions bucket", func() (err error) {
		kv, err = js.KeyValue(call(), p.Spec.Bucket)
		return err
	})
	testenv.Eventually(tb, timeout, fmt.Sprintf("%d predictions", n), func() error {
		st, err := kv.Status(call())
		if err != nil {
			return err
		}
		if got := int(st.Values()); got != n {
			if got > n {
				tb.Fatalf("pipelinetest: the bucket holds %d predictions for %d events", got, n)
			}
			return fmt.Errorf("%d predictions", got)
		}
		return nil
	})
	// Read the bucket's stream once, in order, rather than 10,000 gets: it holds one message
	// per key (history 1), and each must be the first and only prediction of its event.
	// Creating the consumer is a request too, which a server that just died may leave unanswered.
	var cons jetstream.Consumer
	testenv.Eventually(tb, timeout, "a consumer reading the bucket", func() error {
		var err error
		cons, err = js.OrderedConsumer(call(), p.Spec.BucketStream(), jetstream.OrderedConsumerConfig{})
		return err
	})
	prefix := p.Spec.PredictionKeySubject("")
	seen := make(map[string]bool, n)
	for len(seen) < n && ctx.Err() == nil {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			tb.Fatalf("pipelinetest: fetching from the bucket: %v", err)
		}
		for m := range batch.Messages() {
			id := strings.TrimPrefix(m.Subject(), prefix)
			if seen[id] {
				tb.Fatalf("pipelinetest: the bucket holds two predictions of %s", id)
			}
			seen[id] = true
			pr, err := event.DecodePrediction(m.Data())
			if err != nil {
				tb.Fatal(err)
			}
			i, err := strconv.Atoi(strings.TrimPrefix(id, "ev-"))
			if err != nil || pr.ID != id || i < 0 || i >= n {
				tb.Fatalf("pipelinetest: bucket key %s holds the prediction of %s", id, pr.ID)
			}
			if want := p.want(tb, i); len(pr.Outputs["delay_risk"]) != 1 || math.Abs(pr.Outputs["delay_risk"][0].Num-want) > 1e-6 {
				tb.Errorf("pipelinetest: prediction %s = %v, the model says %v", id, pr.Outputs["delay_risk"], want)
			}
		}
		// A fetch cut short (a consumer leader moving after the servers' restart) is taken up
		// by the next one where it stopped.
		_ = batch.Error()
	}
	if len(seen) != n {
		tb.Fatalf("pipelinetest: read %d predictions of the bucket's %d before the deadline", len(seen), n)
	}
	out, err := js.Stream(call(), p.Spec.OutputStream)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := out.Info(call())
	if err != nil {
		tb.Fatal(err)
	}
	if info.State.Msgs != 0 {
		tb.Errorf("pipelinetest: the output stream holds %d dead letters; all %d events should have been predicted", info.State.Msgs, n)
	}
	events, err := js.Stream(call(), p.Spec.Stream)
	if err != nil {
		tb.Fatal(err)
	}
	testenv.Eventually(tb, timeout, "an empty events stream", func() error {
		info, err := events.Info(call())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d events still queued", info.State.Msgs)
		}
		return nil
	})
}

// want is the model's own answer for event i, computed apart from the pipeline.
func (p *Pipeline) want(tb testing.TB, i int) float64 {
	meta := p.model.Metadata()
	f := features(i)
	in := make([]float32, len(meta.Features))
	for j, name := range meta.Features {
		v, ok := f[name]
		if !ok {
			tb.Fatalf("pipelinetest: the model wants feature %q, which the test does not send", name)
		}
		in[j] = float32(v)
	}
	out := make([]float32, 1)
	if err := p.model.Run(1, [][]float32{in}, [][]float32{out}); err != nil {
		tb.Fatal(err)
	}
	return float64(out[0])
}
