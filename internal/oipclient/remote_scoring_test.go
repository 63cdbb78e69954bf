package oipclient_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oip"
	"github.com/freightcast/freightcast/internal/oipclient"
	"github.com/freightcast/freightcast/internal/oipgrpc"
	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/worker"
)

// standInRuntime is the project's own OIP server (what `freightcast infer` serves) running the
// freight model, over REST and gRPC: the stand-in for another OIP v2 runtime that a pipeline
// scores through. It can be stopped and started again on the same addresses, as a runtime's pod
// is killed and replaced, and told to misbehave as a real runtime might, the same on both
// protocols.
type standInRuntime struct {
	t        testing.TB
	addr     string
	grpcAddr string
	model    *model.Model
	mis      *misbehaviour
	token    string
	// tls, when set, is the servers' TLS (both protocols), read at each start.
	tls  *tls.Config
	srv  *http.Server
	gs   *grpc.Server
	done chan struct{}
}

// misbehaviour is what the stand-in does that our own server would not.
type misbehaviour struct {
	// slow is how many infer requests are still to be answered 300ms late (after the pool's
	// deadline, the server computing the answer all the same).
	slow atomic.Int32
	// refuseDistance, when set, is a first feature (distance) whose requests are refused as
	// the request's fault (400, InvalidArgument), as a runtime with stricter input checks than
	// ours would.
	refuseDistance float32
}

func (m *misbehaviour) slowNow() bool { return m != nil && m.slow.Add(-1) >= 0 }

// refuses tells whether rows (12 features each) hold the refused distance.
func (m *misbehaviour) refuses(rows []float32) bool {
	if m == nil || m.refuseDistance == 0 {
		return false
	}
	for i := 0; i < len(rows); i += 12 {
		if rows[i] == m.refuseDistance {
			return true
		}
	}
	return false
}

const refusal = "distance is out of the trained range"

// rest misbehaves in front of the REST handler.
func (m *misbehaviour) rest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/infer") {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Inputs []struct {
				Data []float32 `json:"data"`
			} `json:"inputs"`
		}
		if json.Unmarshal(body, &req) == nil && len(req.Inputs) == 1 && m.refuses(req.Inputs[0].Data) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"` + refusal + `"}`))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if m.slowNow() {
			next.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
			time.Sleep(300 * time.Millisecond)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// grpc misbehaves in front of the gRPC service.
func (m *misbehaviour) grpc(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	in, ok := req.(*oippb.ModelInferRequest)
	if !ok {
		return handler(ctx, req)
	}
	if len(in.RawInputContents) == 1 {
		raw := in.RawInputContents[0]
		rows := make([]float32, len(raw)/4)
		for i := range rows {
			rows[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		if m.refuses(rows) {
			return nil, status.Error(codes.InvalidArgument, refusal)
		}
	}
	if m.slowNow() {
		resp, err := handler(context.WithoutCancel(ctx), req)
		time.Sleep(300 * time.Millisecond)
		return resp, err
	}
	return handler(ctx, req)
}

func startStandIn(t testing.TB, m *model.Model, token string, mis *misbehaviour) *standInRuntime {
	t.Helper()
	r := &standInRuntime{t: t, addr: "127.0.0.1:0", grpcAddr: "127.0.0.1:0", model: m, token: token, mis: mis}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *standInRuntime) start() {
	r.t.Helper()
	cfg := oip.Config{ModelName: "freight-delay-risk", ModelVersion: "1", MaxBatchSize: 64, MaxBodyBytes: 1 << 20}
	var err error
	if cfg.Metrics, err = metrics.NewInference(prometheus.NewRegistry()); err != nil {
		r.t.Fatal(err)
	}
	if r.token != "" {
		file := r.t.TempDir() + "/tokens"
		if err := writeFile(file, r.token+"\n"); err != nil {
			r.t.Fatal(err)
		}
		if cfg.Tokens, err = httpauth.NewTokens(file, nil, time.Now); err != nil {
			r.t.Fatal(err)
		}
	}
	s, err := oip.NewServer(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := s.SetModel(r.model); err != nil {
		r.t.Fatal(err)
	}
	ln, gln := r.listen(&r.addr), r.listen(&r.grpcAddr)
	var h http.Handler = s
	var opts []grpc.ServerOption
	if r.mis != nil {
		h = r.mis.rest(h)
		opts = append(opts, grpc.ChainUnaryInterceptor(r.mis.grpc))
	}
	r.srv = &http.Server{Handler: h}
	r.gs = s.NewGRPCServer(r.tls, opts...)
	if r.tls != nil {
		ln = tls.NewListener(ln, r.tls)
	}
	r.done = make(chan struct{}, 2)
	go func() {
		defer func() { r.done <- struct{}{} }()
		_ = r.srv.Serve(ln)
	}()
	go func() {
		defer func() { r.done <- struct{}{} }()
		_ = r.gs.Serve(gln)
	}()
}

// listen listens on *addr, and sets it to the address taken.
func (r *standInRuntime) listen(addr *string) net.Listener {
	r.t.Helper()
	var ln net.Listener
	// The port of a stopped server may take a moment to be free again.
	testenv.Eventually(r.t, 10*time.Second, "listening on "+*addr, func() (err error) {
		ln, err = net.Listen("tcp", *addr)
		return err
	})
	*addr = ln.Addr().String()
	return ln
}

// stop kills the servers: open connections and requests in flight are cut, as when a pod dies.
func (r *standInRuntime) stop() {
	if r.srv == nil {
		return
	}
	_ = r.srv.Close()
	r.gs.Stop()
	<-r.done
	<-r.done
	r.srv = nil
}

func (r *standInRuntime) url() string { return "http://" + r.addr }

// transport is how a pool reaches the stand-in: the remote model it scores through.
type transport struct {
	name string
	dial func(t testing.TB, rt *standInRuntime, tokenFile string) worker.RemoteModel
}

var transports = []transport{
	{"REST", func(t testing.TB, rt *standInRuntime, tokenFile string) worker.RemoteModel {
		return dial(t, rt.url(), tokenFile)
	}},
	{"gRPC", func(t testing.TB, rt *standInRuntime, tokenFile string) worker.RemoteModel {
		t.Helper()
		c, err := oipgrpc.DialRemote(context.Background(), oipgrpc.RemoteConfig{URL: "grpc://" + rt.grpcAddr, Model: "freight-delay-risk", TokenFile: tokenFile})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}},
}

// pipeline is one pipeline's queue on a real in-process nats-server, scored by workers that
// call a remote model.
type pipeline struct {
	t    testing.TB
	srv  *natstest.Server
	js   jetstream.JetStream
	spec queue.Spec
}

func newPipeline(t testing.TB, ackWait time.Duration) *pipeline {
	t.Helper()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	spec := queue.Spec{
		Topology: queue.TopologyFor("test", "orders"),
		Limits: queue.Limits{MaxMessages: 1_000_000, MaxBytes: 1 << 30, MaxAge: time.Hour, DuplicateWindow: 2 * time.Minute,
			AckWait: ackWait, MaxDeliver: 3, MaxAckPending: 10_000, PredictionRetention: time.Hour},
	}
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	return &pipeline{t: t, srv: srv, js: js, spec: spec}
}

func features(i int) []float64 {
	mode := i % 4
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	return []float64{float64(200 + i%5000), b(mode == 0), b(mode == 1), b(mode == 2), b(mode == 3),
		0.6 + float64(i%40)/100, float64(i%10) / 10, float64(i%7) / 7, math.Sin(float64(i)), math.Cos(float64(i)),
		float64(i%5) / 5, float64(i % 72)}
}

func (p *pipeline) publish(n int) []string {
	p.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("e%d", i)
		data, err := event.Encode(&event.Event{ID: ids[i], Features: features(i), ReceivedAt: time.Now(), Shipment: []byte(`{}`)})
		if err != nil {
			p.t.Fatal(err)
		}
		if _, err := p.js.Publish(context.Background(), p.spec.Subject, data, jetstream.WithMsgID(ids[i])); err != nil {
			p.t.Fatal(err)
		}
	}
	return ids
}

// startWorkers runs n workers scoring through the remote model until the test ends.
func (p *pipeline) startWorkers(n int, remote worker.RemoteModel, tune func(*worker.Config)) *metrics.Worker {
	p.t.Helper()
	m, stop := p.runWorkers(n, remote, tune)
	p.t.Cleanup(stop)
	return m
}

// runWorkers runs n workers scoring through the remote model until stop, which waits for them
// to return (as a pod's workers stop on SIGTERM).
func (p *pipeline) runWorkers(n int, remote worker.RemoteModel, tune func(*worker.Config)) (m *metrics.Worker, stop func()) {
	p.t.Helper()
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		_, js := natstest.Connect(p.t, p.srv.URL())
		cfg := worker.Config{JetStream: js, Topology: p.spec.Topology, Remote: remote, ModelName: "freight-delay-risk", ModelVersion: "1",
			BatchSize: 32, MaxDeliver: p.spec.MaxDeliver, Metrics: m, RemoteMaxBackoff: 200 * time.Millisecond}
		if tune != nil {
			tune(&cfg)
		}
		w, err := worker.New(cfg)
		if err != nil {
			p.t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(ctx); err != nil {
				p.t.Errorf("Run: %v", err)
			}
		}()
	}
	return m, func() { cancel(); wg.Wait() }
}

// predicted counts the predictions stored.
func (p *pipeline) predicted() int {
	kv, err := p.js.KeyValue(context.Background(), p.spec.Bucket)
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	return int(st.Values())
}

// checkExactlyOnce asserts one stored prediction per id, each the model's own answer computed
// apart from the worker and the server, one bucket write per event, and an empty queue.
func (p *pipeline) checkExactlyOnce(m *model.Model, ids []string, except ...string) {
	p.t.Helper()
	ctx := context.Background()
	kv, err := p.js.KeyValue(ctx, p.spec.Bucket)
	if err != nil {
		p.t.Fatal(err)
	}
	want := len(ids) - len(except)
	testenv.Eventually(p.t, 60*time.Second, "every prediction stored", func() error {
		if got := p.predicted(); got != want {
			return fmt.Errorf("%d of %d predictions stored", got, want)
		}
		return nil
	})
	for i, id := range ids {
		if contains(except, id) {
			continue
		}
		entry, err := kv.Get(ctx, id)
		if err != nil {
			p.t.Fatalf("prediction %s: %v", id, err)
		}
		pred, err := event.DecodePrediction(entry.Value())
		if err != nil {
			p.t.Fatal(err)
		}
		in := make([]float32, 12)
		for j, f := range features(i) {
			in[j] = float32(f)
		}
		out := make([]float32, 1)
		if err := m.Run(1, [][]float32{in}, [][]float32{out}); err != nil {
			p.t.Fatal(err)
		}
		if got := pred.Outputs["delay_risk"]; len(got) != 1 || math.Abs(got[0].Num-float64(out[0])) > 1e-6 {
			p.t.Errorf("prediction %s = %v, want %v", id, got, out[0])
		}
	}
	bucket, err := p.js.Stream(ctx, "KV_"+p.spec.Bucket)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := bucket.Info(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	if int(info.State.Msgs) != want {
		p.t.Errorf("the predictions bucket holds %d writes, want %d: one per event", info.State.Msgs, want)
	}
	stream, err := p.js.Stream(ctx, p.spec.Stream)
	if err != nil {
		p.t.Fatal(err)
	}
	testenv.Eventually(p.t, 30*time.Second, "an empty queue", func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d events still queued", info.State.Msgs)
		}
		return nil
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dial(t testing.TB, url, tokenFile string) *oipclient.Client {
	t.Helper()
	c, err := oipclient.Dial(context.Background(), oipclient.Config{BaseURL: url, Model: "freight-delay-risk", TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The runtime is killed while the pool scores through it, and comes back later on the same
// address (a new pod behind the Service): every event is predicted exactly once, none is
// dead-lettered, and while it is down the events stay queued, the pool reports it, and no
// event is redelivered past the ack wait (the workers hold them in progress).
func TestRemoteScoringSurvivesTheModelGoingDown(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			m := testenv.FreightModel(t)
			rt := startStandIn(t, m, "pool-token", nil)
			tokenFile := t.TempDir() + "/token"
			if err := writeFile(tokenFile, "pool-token\n"); err != nil {
				t.Fatal(err)
			}
			const ackWait = time.Second
			p := newPipeline(t, ackWait)
			ids := p.publish(3000)
			wm := p.startWorkers(3, tr.dial(t, rt, tokenFile), nil)

			testenv.Eventually(t, 30*time.Second, "the first predictions", func() error {
				if n := p.predicted(); n < 300 {
					return fmt.Errorf("%d predicted", n)
				}
				return nil
			})
			rt.stop()
			testenv.Eventually(t, 30*time.Second, "the pool reporting the model unavailable", func() error {
				if got := testutil.ToFloat64(wm.RemoteModelUnavailable); got != 3 {
					return fmt.Errorf("%v workers report the model unavailable, want 3", got)
				}
				// Backoffs of 50, 100, then 200 ms: 3 workers × 15 retries is well past the ack wait.
				if got := testutil.ToFloat64(wm.RemoteRetries); got < 45 {
					return fmt.Errorf("%v retries", got)
				}
				return nil
			})
			held := p.predicted()
			if held == len(ids) {
				t.Fatal("every event was predicted before the model went down; nothing tested")
			}
			rt.start()
			p.checkExactlyOnce(m, ids)
			if got := testutil.ToFloat64(wm.DeadLetters.WithLabelValues(metrics.DeadLetterMaxDeliveries)); got != 0 {
				t.Errorf("%v events dead-lettered for max deliveries while the model was down", got)
			}
			consumer, err := p.js.Consumer(context.Background(), p.spec.Stream, p.spec.Consumer)
			if err != nil {
				t.Fatal(err)
			}
			info, err := consumer.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.NumRedelivered != 0 {
				t.Errorf("%d events redelivered: the workers did not hold their batches while the model was down", info.NumRedelivered)
			}
			testenv.Eventually(t, 10*time.Second, "the pool reporting the model back", func() error {
				if got := testutil.ToFloat64(wm.RemoteModelUnavailable); got != 0 {
					return fmt.Errorf("%v workers still report the model unavailable", got)
				}
				return nil
			})
			t.Logf("%d predicted before the model went down, %d retries", held, int(testutil.ToFloat64(wm.RemoteRetries)))
		})
	}
}

// The model is down through more restarts of the pool than the consumer allows deliveries
// (MaxDeliver 3, five restarts, each with every event held): an event on its last delivery goes
// back to the queue as a new message rather than being given back (or, from a killed pod,
// left) past its last delivery, where the server would never deliver it again. When the model
// is back, every event is predicted exactly once and none was dead-lettered.
func TestRemoteScoringOutlastsMoreRestartsThanDeliveries(t *testing.T) {
	tr := transports[0]
	m := testenv.FreightModel(t)
	rt := startStandIn(t, m, "pool-token", nil)
	tokenFile := t.TempDir() + "/token"
	if err := writeFile(tokenFile, "pool-token\n"); err != nil {
		t.Fatal(err)
	}
	p := newPipeline(t, time.Minute)
	remote := tr.dial(t, rt, tokenFile)
	rt.stop()
	const events = 100
	ids := p.publish(events)
	bigBatch := func(c *worker.Config) { c.BatchSize = 2 * events }
	consumer, err := p.js.Consumer(context.Background(), p.spec.Stream, p.spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	requeued := 0.0
	for restart := range 5 {
		wm, stop := p.runWorkers(1, remote, bigBatch)
		testenv.Eventually(t, 30*time.Second, fmt.Sprintf("round %d: every event held for the model", restart), func() error {
			info, err := consumer.Info(context.Background())
			if err != nil {
				return err
			}
			if info.NumAckPending != events || testutil.ToFloat64(wm.RemoteRetries) == 0 {
				return fmt.Errorf("%d events held, %d waiting, %v retries", info.NumAckPending, info.NumPending, testutil.ToFloat64(wm.RemoteRetries))
			}
			return nil
		})
		stop()
		requeued += testutil.ToFloat64(wm.Requeued)
		if got := testutil.ToFloat64(wm.DeadLetters.WithLabelValues(metrics.DeadLetterMaxDeliveries)); got != 0 {
			t.Fatalf("round %d: %v events dead-lettered for max deliveries while the model was down", restart, got)
		}
	}
	if requeued < events {
		t.Errorf("%v events requeued over five restarts, want each at least once (MaxDeliver %d)", requeued, p.spec.MaxDeliver)
	}
	rt.start()
	p.startWorkers(1, remote, bigBatch)
	p.checkExactlyOnce(m, ids)
}

// A model slower than the pool's deadline (DeadlineExceeded over gRPC): the request is sent again, and the answer of the
// request that timed out (which the server computed) is never stored a second time.
func TestRemoteScoringRetriesASlowModelWithoutDuplicates(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			m := testenv.FreightModel(t)
			mis := &misbehaviour{}
			mis.slow.Store(5)
			rt := startStandIn(t, m, "", mis)
			p := newPipeline(t, 30*time.Second)
			ids := p.publish(500)
			wm := p.startWorkers(2, tr.dial(t, rt, ""), func(c *worker.Config) { c.RemoteTimeout = 100 * time.Millisecond })
			p.checkExactlyOnce(m, ids)
			if got := testutil.ToFloat64(wm.RemoteRetries); got < 5 {
				t.Errorf("%v retries, want at least the 5 slow requests", got)
			}
			if got := testutil.ToFloat64(wm.EventsPredicted); got != float64(len(ids)) {
				t.Errorf("%v events predicted and acknowledged, want %d", got, len(ids))
			}
		})
	}
}

// A runtime that refuses one event's values (400, InvalidArgument) dead-letters that event alone, with its own
// reason; the rest of its batch is predicted.
func TestRemoteScoringDeadLettersOnlyTheEventTheModelRefuses(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			m := testenv.FreightModel(t)
			// e7's first feature, 207: the stand-in refuses any request holding it.
			rt := startStandIn(t, m, "", &misbehaviour{refuseDistance: 207})
			p := newPipeline(t, 30*time.Second)
			ids := p.publish(100)
			wm := p.startWorkers(1, tr.dial(t, rt, ""), nil)
			p.checkExactlyOnce(m, ids, "e7")
			if got := testutil.ToFloat64(wm.DeadLetters.WithLabelValues(metrics.DeadLetterModelRejected)); got != 1 {
				t.Errorf("%v events dead-lettered as refused by the model, want 1 (e7)", got)
			}
			sub, err := p.js.OrderedConsumer(context.Background(), p.spec.OutputStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{p.spec.DeadLetterKeySubject("e7")}})
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sub.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if id, reason := msg.Headers().Get(worker.HeaderEventID), msg.Headers().Get(worker.HeaderReason); id != "e7" || reason != metrics.DeadLetterModelRejected ||
				!strings.Contains(msg.Headers().Get(worker.HeaderError), refusal) {
				t.Errorf("dead letter %s %s %q", id, reason, msg.Headers().Get(worker.HeaderError))
			}
		})
	}
}

// Dial refuses what cannot be a model address, and a server without the model.
func TestDialNamesWhatIsWrong(t *testing.T) {
	rt := startStandIn(t, testenv.FreightModel(t), "", nil)
	cases := map[string]struct {
		cfg  oipclient.Config
		want string
	}{
		"relative URL":  {oipclient.Config{BaseURL: "models/x", Model: "m"}, "absolute http(s) URL"},
		"no model":      {oipclient.Config{BaseURL: rt.url()}, "free of '/'"},
		"unknown model": {oipclient.Config{BaseURL: rt.url(), Model: "nope"}, "404"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := oipclient.Dial(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			if errors.Is(err, worker.ErrRejected) {
				t.Errorf("err = %v is marked as the request's fault", err)
			}
		})
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
