package worker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

type harness struct {
	t     testing.TB
	srv   *natstest.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	spec  queue.Spec
	model *model.Model
}

func newHarness(t testing.TB, ackWait time.Duration) *harness {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := natstest.Connect(t, srv.URL())
	spec := queue.Spec{
		Topology: queue.TopologyFor("test", "orders"),
		Limits: queue.Limits{MaxMessages: 1_000_000, MaxBytes: 1 << 30, MaxAge: time.Hour, DuplicateWindow: 2 * time.Minute,
			AckWait: ackWait, MaxDeliver: 3, MaxAckPending: 10_000, PredictionRetention: time.Hour},
	}
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, srv: srv, nc: nc, js: js, spec: spec, model: testenv.FreightModel(t)}
}

// newWorker builds a worker on its own connection, so a test can drop that connection as a
// crashed pod would.
func (h *harness) newWorker(batch int) (*Worker, *nats.Conn, *metrics.Worker) {
	h.t.Helper()
	nc, js := natstest.Connect(h.t, h.srv.URL())
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		h.t.Fatal(err)
	}
	w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: h.model, ModelName: "freight-delay-risk",
		ModelVersion: "1", BatchSize: batch, MaxDeliver: h.spec.MaxDeliver, Metrics: m})
	if err != nil {
		h.t.Fatal(err)
	}
	return w, nc, m
}

// features returns a plausible feature row for event i.
func features(i int) []float64 {
	mode := i % 4
	return []float64{float64(200 + i%5000), b(mode == 0), b(mode == 1), b(mode == 2), b(mode == 3),
		0.6 + float64(i%40)/100, float64(i%10) / 10, float64(i%7) / 7, math.Sin(float64(i)), math.Cos(float64(i)),
		float64(i%5) / 5, float64(i % 72)}
}

func b(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func (h *harness) publish(ids ...string) {
	h.t.Helper()
	for _, id := range ids {
		h.publishWithHeader(id, "")
	}
}

// publishWithHeader queues event id with the given traceparent header ("" for none).
func (h *harness) publishWithHeader(id, traceparent string) {
	h.t.Helper()
	var i int
	fmt.Sscanf(id, "e%d", &i)
	data, err := event.Encode(&event.Event{ID: id, Features: features(i), ReceivedAt: time.Now(),
		Shipment: []byte(fmt.Sprintf(`{"ref":%q}`, id))})
	if err != nil {
		h.t.Fatal(err)
	}
	msg := nats.NewMsg(h.spec.Subject)
	msg.Data = data
	if traceparent != "" {
		msg.Header.Set("traceparent", traceparent)
	}
	if _, err := h.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(id)); err != nil {
		h.t.Fatal(err)
	}
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("e%d", i)
	}
	return out
}

// want is the model's own answer for event i, computed apart from the worker.
func (h *harness) want(i int) float64 {
	in := make([]float32, 12)
	for j, f := range features(i) {
		in[j] = float32(f)
	}
	out := make([]float32, 1)
	if err := h.model.Run(1, [][]float32{in}, [][]float32{out}); err != nil {
		h.t.Fatal(err)
	}
	return float64(out[0])
}

// waitPredicted waits until n predictions are in the bucket.
func (h *harness) waitPredicted(n int, timeout time.Duration) {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), h.spec.Bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	natstest.WaitValues(h.t, kv, n, timeout)
}

// checkExactlyOnce asserts one prediction record per id, each the model's answer, nothing left
// in the queue, and one prediction message per id in the output stream.
func (h *harness) checkExactlyOnce(idList []string) {
	h.t.Helper()
	ctx := context.Background()
	kv, err := h.js.KeyValue(ctx, h.spec.Bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	st, _ := kv.Status(ctx)
	if int(st.Values()) != len(idList) {
		h.t.Errorf("bucket holds %d values, want %d (one per event)", st.Values(), len(idList))
	}
	for _, id := range idList {
		entry, err := kv.Get(ctx, id)
		if err != nil {
			h.t.Fatalf("prediction %s: %v", id, err)
		}
		if entry.Revision() == 0 {
			h.t.Errorf("prediction %s has revision 0", id)
		}
		p, err := event.DecodePrediction(entry.Value())
		if err != nil {
			h.t.Fatal(err)
		}
		var i int
		fmt.Sscanf(id, "e%d", &i)
		if got := p.Outputs["delay_risk"]; len(got) != 1 || math.Abs(got[0].Num-h.want(i)) > 1e-6 {
			h.t.Errorf("prediction %s = %v, want %v", id, got, h.want(i))
		}
		if string(p.Shipment) != fmt.Sprintf(`{"ref":%q}`, id) || p.Model != "freight-delay-risk" {
			h.t.Errorf("prediction %s = %+v", id, p)
		}
	}
	stream, err := h.js.Stream(ctx, h.spec.Stream)
	if err != nil {
		h.t.Fatal(err)
	}
	// A stopped worker has acknowledged all it handled, but the acks may still be in its
	// connection's buffer, and the server applies acks on a goroutine of its own: the work queue
	// may hold the last events for a moment.
	testenv.Eventually(h.t, 30*time.Second, "an empty queue", func() error {
		info, err := stream.Info(ctx)
		if err != nil {
			h.t.Fatal(err)
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d events still queued after all were predicted", info.State.Msgs)
		}
		return nil
	})
	// Each prediction is written once: the bucket's stream holds one message per event.
	bucket, err := h.js.Stream(ctx, "KV_"+h.spec.Bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	bucketInfo, err := bucket.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if got := bucketInfo.State.Msgs; int(got) != len(idList) {
		h.t.Errorf("the predictions bucket's stream holds %d messages, want %d", got, len(idList))
	}
	// ...and nowhere else: the output stream, which older releases wrote each prediction to a
	// second time, holds dead letters only.
	out, err := h.js.Stream(ctx, h.spec.OutputStream)
	if err != nil {
		h.t.Fatal(err)
	}
	outInfo, err := out.Info(ctx, jetstream.WithSubjectFilter(h.spec.PredictionSubject))
	if err != nil {
		h.t.Fatal(err)
	}
	if got := outInfo.State.Subjects[h.spec.PredictionSubject]; got != 0 {
		h.t.Errorf("the output stream holds %d predictions, want none: each is stored once, in the bucket", got)
	}
}

func runWorker(ctx context.Context, t testing.TB, w *Worker) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	return wg.Wait
}

func TestWorkerPredictsEveryEventOnce(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	all := ids(2000)
	h.publish(all...)
	ctx, cancel := context.WithCancel(context.Background())
	w1, _, m1 := h.newWorker(64)
	w2, _, m2 := h.newWorker(64)
	wait1, wait2 := runWorker(ctx, t, w1), runWorker(ctx, t, w2)
	h.waitPredicted(len(all), 30*time.Second)
	cancel()
	wait1()
	wait2()
	h.checkExactlyOnce(all)
	if got := testutil.ToFloat64(m1.EventsPredicted) + testutil.ToFloat64(m2.EventsPredicted); got != float64(len(all)) {
		t.Errorf("workers report %v events predicted, want %d", got, len(all))
	}
}

func TestWorkerKilledMidBatchLosesNothing(t *testing.T) {
	h := newHarness(t, time.Second)
	all := ids(300)
	h.publish(all...)

	// A worker takes a batch and dies before acknowledging: its connection drops.
	_, crashed, _ := h.newWorker(100)
	js, _ := jetstream.New(crashed)
	cons, err := js.Consumer(context.Background(), h.spec.Stream, h.spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for range batch.Messages() {
		held++
	}
	if held != 100 {
		t.Fatalf("the doomed worker got %d events, want 100", held)
	}
	crashed.Close()

	// Another worker finishes everything once the ack wait hands the held events back.
	ctx, cancel := context.WithCancel(context.Background())
	w, _, _ := h.newWorker(64)
	wait := runWorker(ctx, t, w)
	h.waitPredicted(len(all), 30*time.Second)
	cancel()
	wait()
	h.checkExactlyOnce(all)
}

func TestWorkerStopsCleanlyOnCancel(t *testing.T) {
	// An ack wait longer than any wait below: an event the stopped worker left unacknowledged
	// stays counted as pending for as long as the test looks, rather than being handed back.
	h := newHarness(t, 10*time.Minute)
	all := ids(3000)
	h.publish(all...)
	ctx, cancel := context.WithCancel(context.Background())
	w, _, m := h.newWorker(32)
	wait := runWorker(ctx, t, w)
	// Stop it as SIGTERM would, in the middle of the backlog.
	testenv.Eventually(t, time.Minute, "200 events predicted before the stop", func() error {
		if got := testutil.ToFloat64(m.EventsPredicted); got < 200 {
			return fmt.Errorf("%v predicted", got)
		}
		return nil
	})
	cancel()
	wait()
	stopped := int(testutil.ToFloat64(m.EventsPredicted))
	t.Logf("the first worker predicted %d of %d events before it stopped", stopped, len(all))

	// Nothing the stopped worker held is stranded: the server counts no event as delivered and
	// unacknowledged. (Its acks reach the server a moment after Run returns, hence the wait.)
	cons, err := h.js.Consumer(context.Background(), h.spec.Stream, h.spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "every event the stopped worker was sent acknowledged", func() error {
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 {
			return fmt.Errorf("%d events delivered and not acknowledged", info.NumAckPending)
		}
		return nil
	})

	// A second worker finishes the rest, and the two predicted every event once between them.
	w2, _, m2 := h.newWorker(64)
	ctx2, cancel2 := context.WithCancel(context.Background())
	wait2 := runWorker(ctx2, t, w2)
	h.waitPredicted(len(all), time.Minute)
	cancel2()
	wait2()
	h.checkExactlyOnce(all)
	if rest := int(testutil.ToFloat64(m2.EventsPredicted)); stopped+rest != len(all) {
		t.Errorf("first worker %d + second %d predictions, want %d in all", stopped, rest, len(all))
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Errorf("%d events were delivered again: the stopped worker did not acknowledge all it held", info.NumRedelivered)
	}
}

func TestWorkerKeepsTheFirstPredictionOfARedeliveredEvent(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	ctx := context.Background()
	kv, err := h.js.KeyValue(ctx, h.spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier delivery stored e7's prediction and died before its ack.
	first := []byte(`{"v":1,"id":"e7","model":"freight-delay-risk","modelVersion":"1","outputs":{"delay_risk":[0.25]},"receivedAt":"2026-11-27T08:00:00Z","predictedAt":"2026-11-27T08:00:01Z"}`)
	if _, err := kv.Create(ctx, "e7", first); err != nil {
		t.Fatal(err)
	}
	h.publish("e7")
	w, _, m := h.newWorker(8)
	runCtx, cancel := context.WithCancel(ctx)
	wait := runWorker(runCtx, t, w)
	testenv.Eventually(t, time.Minute, "the redelivered e7 handled", func() error {
		if testutil.ToFloat64(m.EventsPredicted) < 1 {
			return errors.New("no event predicted")
		}
		return nil
	})
	cancel()
	wait()
	entry, err := kv.Get(ctx, "e7")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(first), string(entry.Value())); diff != "" || entry.Revision() != 1 {
		t.Errorf("the redelivery replaced the stored prediction (revision %d):\n%s", entry.Revision(), diff)
	}
}

func TestWorkerDeadLettersWhatItCannotPredict(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	ctx := context.Background()
	short, _ := event.Encode(&event.Event{ID: "short", Features: []float64{1, 2, 3}, ReceivedAt: time.Now()})
	huge := features(1)
	huge[0] = math.MaxFloat64 // finite in, but no finite risk out of float32 arithmetic
	hugeMsg, _ := event.Encode(&event.Event{ID: "huge", Features: huge, ReceivedAt: time.Now()})
	bodies := map[string][]byte{"garbage": []byte("not an event"), "short": short, "huge": hugeMsg}
	for id, data := range bodies {
		if _, err := h.js.Publish(ctx, h.spec.Subject, data, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
	}
	h.publish("e1")

	w, _, m := h.newWorker(16)
	runCtx, cancel := context.WithCancel(ctx)
	wait := runWorker(runCtx, t, w)
	h.waitPredicted(1, 10*time.Second)
	testenv.Eventually(t, time.Minute, "dead letters counted", func() error {
		if n := testutil.ToFloat64(m.DeadLetters.WithLabelValues(metrics.DeadLetterUndecodable)) +
			testutil.ToFloat64(m.DeadLetters.WithLabelValues(metrics.DeadLetterFeatureCount)) +
			testutil.ToFloat64(m.DeadLetters.WithLabelValues(metrics.DeadLetterNonFinite)); n < 3 {
			return fmt.Errorf("%v of 3", n)
		}
		return nil
	})
	cancel()
	wait()

	out, err := h.js.Stream(ctx, h.spec.OutputStream)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for seq := uint64(1); ; seq++ {
		msg, err := out.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		key := msg.Header.Get(HeaderEventID)
		switch {
		case key == "" && msg.Subject == h.spec.DeadLetterSubject:
			key = string(msg.Data)
		case key != "" && msg.Subject == h.spec.DeadLetterKeySubject(key):
		default:
			continue // a prediction, or a dead letter not under its id's subject
		}
		if msg.Header.Get(HeaderDeliveries) != "1" {
			t.Errorf("dead letter %s: deliveries %q, want 1", key, msg.Header.Get(HeaderDeliveries))
		}
		got[key] = msg.Header.Get(HeaderReason)
	}
	want := map[string]string{"not an event": metrics.DeadLetterUndecodable, "short": metrics.DeadLetterFeatureCount, "huge": metrics.DeadLetterNonFinite}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	h.checkExactlyOnce([]string{"e1"})
}

// A batch whose predictions cannot be published hands its events back to the queue, or
// dead-letters them on their last delivery, but not the events the batch dead-lettered already
// because their outputs were not finite: each of those is one dead letter, counted once.
func TestWorkerCountsEachDeadLetterOnce(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	ctx := context.Background()
	huge := features(1)
	huge[0] = math.MaxFloat64
	hugeMsg, _ := event.Encode(&event.Event{ID: "huge", Features: huge, ReceivedAt: time.Now()})
	if _, err := h.js.Publish(ctx, h.spec.Subject, hugeMsg, jetstream.WithMsgID("huge")); err != nil {
		t.Fatal(err)
	}
	h.publish("e1")

	// A model name beyond the server's 1 MB payload limit makes every prediction record too
	// large to publish, while the dead letters (the events as queued) stay small.
	_, js := natstest.Connect(t, h.srv.URL())
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: h.model, ModelName: strings.Repeat("m", 1<<20),
		ModelVersion: "1", BatchSize: 2, MaxDeliver: 1, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := js.Consumer(ctx, h.spec.Stream, h.spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := consumer.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for msg := range batch.Messages() {
		msgs = append(msgs, msg)
	}
	if len(msgs) != 2 {
		t.Fatalf("fetched %d events, want 2", len(msgs))
	}
	w.Handle(ctx, msgs)

	got := map[string]float64{}
	for _, reason := range []string{metrics.DeadLetterNonFinite, metrics.DeadLetterMaxDeliveries} {
		got[reason] = testutil.ToFloat64(m.DeadLetters.WithLabelValues(reason))
	}
	want := map[string]float64{metrics.DeadLetterNonFinite: 1, metrics.DeadLetterMaxDeliveries: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dead letters by reason (-want +got):\n%s", diff)
	}
}

// Every acknowledged prediction is observed once in the pipeline's distribution of its output,
// in the bucket of its value (recomputed from the model apart from the worker).
func TestWorkerObservesThePredictedValues(t *testing.T) {
	h := newHarness(t, 30*time.Second)
	all := ids(300)
	h.publish(all...)
	reg := prometheus.NewRegistry()
	m, err := metrics.NewWorker(reg)
	if err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, h.srv.URL())
	w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: h.model, ModelName: "freight-delay-risk",
		ModelVersion: "1", BatchSize: 64, MaxDeliver: h.spec.MaxDeliver, Metrics: m, PipelineName: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := runWorker(ctx, t, w)
	h.waitPredicted(len(all), 30*time.Second)
	testenv.Eventually(t, 10*time.Second, "every prediction acknowledged", func() error {
		if n := testutil.ToFloat64(m.EventsPredicted); n != float64(len(all)) {
			return fmt.Errorf("%v acknowledged", n)
		}
		return nil
	})
	cancel()
	wait()

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var hist *dto.Histogram
	for _, f := range families {
		if f.GetName() != "freightcast_worker_prediction_value" {
			continue
		}
		for _, s := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range s.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["pipeline"] != "orders" || labels["output"] != "delay_risk" || len(labels) != 2 {
				t.Errorf("series %v, want pipeline orders and output delay_risk only", labels)
				continue
			}
			hist = s.GetHistogram()
		}
	}
	if hist == nil {
		t.Fatal("no freightcast_worker_prediction_value series")
	}
	if hist.GetSampleCount() != uint64(len(all)) {
		t.Errorf("%d values observed, want %d", hist.GetSampleCount(), len(all))
	}
	var sum float64
	for i := range all {
		sum += h.want(i)
	}
	if math.Abs(hist.GetSampleSum()-sum) > 1e-6*float64(len(all)) {
		t.Errorf("sum of the observed values %v, of the model's answers %v", hist.GetSampleSum(), sum)
	}
	for _, bk := range hist.GetBucket() {
		var n uint64
		for i := range all {
			if h.want(i) <= bk.GetUpperBound() {
				n++
			}
		}
		if bk.GetCumulativeCount() != n {
			t.Errorf("bucket le=%v holds %d, the model's answers %d", bk.GetUpperBound(), bk.GetCumulativeCount(), n)
		}
	}
}
