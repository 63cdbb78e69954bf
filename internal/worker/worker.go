// Package worker is the inference pool: it consumes a pipeline's events from the JetStream
// consumer in batches, runs the model, stores each prediction once (the predictions bucket, key =
// event id, written only if absent), and acknowledges
// the events only after every prediction is stored. A crash at any point leaves the events
// unacknowledged, so they are redelivered; the id-keyed writes make the redelivery invisible in
// the results. It knows nothing of Kubernetes.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/tracing"
)

// Header names on dead letters (internal/queue names them: ingestion reads them too).
const (
	HeaderReason     = queue.HeaderDeadLetterReason
	HeaderError      = queue.HeaderDeadLetterError
	HeaderEventID    = queue.HeaderEventID
	HeaderSeq        = queue.HeaderStreamSequence
	HeaderDeliveries = queue.HeaderDeliveries
)

// Config is what a Worker needs.
type Config struct {
	// JetStream is the connection to the pipeline's server. An async publish handler set on it
	// must not keep a message's data: the worker writes the next batch over it.
	JetStream jetstream.JetStream
	// Topology names the stream, consumer, subjects and bucket.
	Topology queue.Topology
	// Model scores the events in this process; Remote, when set instead, in another server.
	Model model.Runtime
	// Remote is a model another server runs (see RemoteModel); each batch is one request.
	Remote RemoteModel
	// RemoteTimeout bounds one request to Remote; zero picks 10 s. A request past it is sent
	// again: the prediction is stored once whatever the number of requests.
	RemoteTimeout time.Duration
	// RemoteMaxBackoff caps the wait between two requests while Remote does not answer; zero
	// picks 2 s. It must stay well below the consumer's ack wait.
	RemoteMaxBackoff time.Duration
	// Inputs are the model's inputs with the features each takes, in the model's input order
	// (model.ResolveInputs): an event's features fill them one after the other. Nil means a
	// model of one input whose row takes every feature.
	Inputs []model.FeatureInput
	// ModelName and ModelVersion are written into every prediction.
	ModelName, ModelVersion string
	// BatchSize is the most events scored in one model run.
	BatchSize int
	// MaxDeliver is the consumer's delivery limit: an event failing on its last delivery is
	// dead-lettered instead of lost.
	MaxDeliver int
	// RecordInputs keeps the features the model saw in each prediction record (the pipeline's
	// spec.output.recordInputs).
	RecordInputs bool
	// BatchLinger is how long a batch waits for more events once it has one; zero picks 500µs.
	// It trades a little latency for fuller batches under load.
	BatchLinger time.Duration
	// StoreTimeout bounds the wait for the server to confirm a batch's predictions.
	StoreTimeout time.Duration
	// Metrics records what the worker does; required.
	Metrics *metrics.Worker
	// PipelineName labels the predicted values the worker observes (Metrics.Predictions).
	PipelineName string
	// Logger logs failures; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TracerProvider, when set, traces each batch (see Handle); nil turns tracing off.
	TracerProvider trace.TracerProvider
}

// Worker consumes one pipeline's queue. Several Workers, in one process or many, share the
// durable consumer; the server spreads events among them.
type Worker struct {
	cfg      Config
	features int
	// typed is set for a model that Run does not serve, or whose inputs are not one FP32
	// row: each batch is one Eval on typed tensors (typed.go).
	typed    *typedBatch
	outputs  []model.TensorInfo
	in       []float32
	out      [][]float32
	observed []observedOutput
	predBuf  []float64
	// byName lists indexes of outputs in name order, the order a record writes them in;
	// row holds one row's outputs in that order, reused for every record.
	byName []int
	row    []event.Output
	// seen holds the features of the record being written when RecordInputs is set: their
	// names once, their values reused from record to record.
	seen event.Features
	// records is the encoding buffer of the batch being built.
	records []byte
	// dec and decoded are the batch's events, decoded into the same memory batch after batch.
	dec     event.Decoder
	decoded []pending
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// stop is closed when Run's context ends: a worker waiting on a remote model that is
	// down then gives its batch back. Nil outside Run.
	stop <-chan struct{}
}

// New checks cfg against the model and sizes the batch buffers once.
func New(cfg Config) (*Worker, error) {
	switch {
	case cfg.JetStream == nil:
		return nil, errors.New("worker: no JetStream connection")
	case cfg.Model == nil && cfg.Remote == nil:
		return nil, errors.New("worker: no model")
	case cfg.Metrics == nil:
		return nil, errors.New("worker: no metrics")
	case cfg.BatchSize <= 0:
		return nil, fmt.Errorf("worker: batch size must be positive, got %d", cfg.BatchSize)
	case cfg.MaxDeliver <= 0:
		return nil, fmt.Errorf("worker: max deliver must be positive, got %d", cfg.MaxDeliver)
	case cfg.Topology.Stream == "" || cfg.Topology.Consumer == "" || cfg.Topology.Bucket == "":
		return nil, fmt.Errorf("worker: incomplete topology %+v", cfg.Topology)
	}
	var meta *model.Metadata
	if cfg.Remote != nil {
		if err := checkRemote(&cfg); err != nil {
			return nil, err
		}
		meta = cfg.Remote.Metadata()
	} else {
		meta = cfg.Model.Metadata()
	}
	if cfg.Inputs == nil {
		if len(meta.Inputs) != 1 {
			return nil, fmt.Errorf("worker: the model has %d inputs; name the features of each (Config.Inputs)", len(meta.Inputs))
		}
		in := meta.Inputs[0]
		cfg.Inputs = []model.FeatureInput{{Name: in.Name, DataType: in.DataType, Features: make([]string, in.RowSize())}}
	}
	if len(cfg.Inputs) != len(meta.Inputs) {
		return nil, fmt.Errorf("worker: %d inputs are fed, the model has %d", len(cfg.Inputs), len(meta.Inputs))
	}
	if cfg.BatchLinger == 0 {
		cfg.BatchLinger = 500 * time.Microsecond
	}
	if cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Worker{
		cfg:     cfg,
		outputs: meta.Outputs,
		tracer:  tracing.Tracer(cfg.TracerProvider),
	}
	for _, in := range cfg.Inputs {
		w.features += len(in.Features)
	}
	if cfg.Remote == nil && meta.CheckRows() == nil && len(meta.Inputs) == 1 && cfg.Inputs[0].DataType == "FP32" && w.features == meta.Inputs[0].RowSize() {
		w.in = make([]float32, cfg.BatchSize*w.features)
		w.out = make([][]float32, len(meta.Outputs))
		for i, o := range meta.Outputs {
			w.out[i] = make([]float32, cfg.BatchSize*o.RowSize())
		}
	} else {
		var err error
		if w.typed, err = newTypedBatch(meta, cfg.Inputs); err != nil {
			return nil, fmt.Errorf("worker: %w", err)
		}
	}
	w.byName = make([]int, len(meta.Outputs))
	for i := range w.byName {
		w.byName[i] = i
	}
	slices.SortFunc(w.byName, func(a, b int) int { return strings.Compare(meta.Outputs[a].Name, meta.Outputs[b].Name) })
	w.row = make([]event.Output, len(meta.Outputs))
	for k, j := range w.byName {
		w.row[k].Name = meta.Outputs[j].Name
		// One value per row: a score or probability; two: a binary classifier's classes, of
		// which the second is the positive one. Other outputs have no single value to chart.
		elem := -1
		switch meta.Outputs[j].RowSize() {
		case 1:
			elem = 0
		case 2:
			elem = 1
		}
		if elem >= 0 && cfg.Metrics.Predictions != nil && meta.Outputs[j].DataType != "BYTES" {
			w.observed = append(w.observed, observedOutput{row: k, elem: elem,
				obs: cfg.Metrics.Predictions.WithLabelValues(cfg.PipelineName, meta.Outputs[j].Name)})
		}
	}
	if cfg.RecordInputs {
		for _, in := range cfg.Inputs {
			for col, f := range in.Features {
				if f == "" { // a model whose columns the spec and the file leave unnamed
					f = fmt.Sprintf("%s[%d]", in.Name, col)
				}
				w.seen.Names = append(w.seen.Names, f)
			}
		}
		w.seen.Values = make([]event.Value, len(w.seen.Names))
	}
	return w, nil
}

// pullExpiry bounds each pull request. The library's heartbeats come every half of it, and two
// missed ones make it pull again: when the server holding the consumer's leader dies, a worker
// resumes on the new leader within this time (the library's default, 30 s, stalled it that long).
const pullExpiry = 5 * time.Second

// Run consumes until ctx is cancelled. Then it stops pulling, finishes and acknowledges the
// events it already holds, and returns: a scale-in loses nothing and strands nothing until the
// ack wait expires. A Worker runs one Run at a time.
func (w *Worker) Run(ctx context.Context) error {
	w.stop = ctx.Done()
	consumer, err := w.cfg.JetStream.Consumer(ctx, w.cfg.Topology.Stream, w.cfg.Topology.Consumer)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	it, err := consumer.Messages(jetstream.PullMaxMessages(2*w.cfg.BatchSize), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer it.Stop()

	batch := make([]jetstream.Msg, 0, w.cfg.BatchSize)
	draining := false
	for {
		var first jetstream.Msg
		if draining {
			first, err = it.Next()
		} else {
			first, err = it.Next(jetstream.NextContext(ctx))
		}
		switch {
		case err == nil:
		case !draining && ctx.Err() != nil:
			// Stop pulling; what the server already sent us is still delivered by Next.
			it.Drain()
			draining = true
			continue
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil
		default:
			// A dropped connection: the iterator resumes when it is back.
			w.cfg.Logger.Warn("worker: next message", "error", err)
			continue
		}
		batch = append(batch[:0], first)
		for len(batch) < w.cfg.BatchSize {
			m, err := it.Next(jetstream.NextMaxWait(w.cfg.BatchLinger))
			if err != nil {
				break
			}
			batch = append(batch, m)
		}
		// The batch is finished even after cancellation: its events are ours until acknowledged.
		w.Handle(context.WithoutCancel(ctx), batch)
	}
}

// pending is one event of a batch on its way to being stored.
type pending struct {
	msg jetstream.Msg
	ev  event.Event
	// preds are the values of w.observed for the event's prediction (NaN: none), observed
	// once the event is acknowledged.
	preds []float64
}

// observedOutput is a model output whose values Metrics.Predictions observes: w.row[row]'s
// element elem.
type observedOutput struct {
	row, elem int
	obs       prometheus.Observer
}

// Handle scores and stores one batch, then acknowledges it. Events that can never be predicted
// are dead-lettered and acknowledged; when storing fails, the batch is left unacknowledged so
// the queue redelivers it, or dead-lettered on its last allowed delivery.
//
// With tracing on, the batch is one consumer span ("process SUBJECT") with a link to the trace
// context of each message (a batch holds events of many requests), and child spans for the
// model run and for storing the predictions. See batchSpan for its parent.
func (w *Worker) Handle(ctx context.Context, msgs []jetstream.Msg) {
	start := w.cfg.Now()
	ctx, span := w.batchSpan(ctx, msgs)
	defer endSpan(span, nil)
	w.cfg.Metrics.BatchSize.Observe(float64(len(msgs)))
	good := w.decode(ctx, msgs)
	if len(good) == 0 {
		return
	}
	w.finish(ctx, good, start)
}

// finish scores, stores and acknowledges the decoded events of a batch.
func (w *Worker) finish(ctx context.Context, good []pending, start time.Time) {
	var unavailable *errModelUnavailable
	var requeued *errRequeued
	switch err := w.score(ctx, good); {
	case err == nil:
	case errors.As(err, &requeued):
		if len(requeued.rest) > 0 {
			w.finish(ctx, requeued.rest, start)
		}
		return
	case errors.Is(err, ErrRejected):
		w.rejected(ctx, good, err, start)
		return
	case errors.As(err, &unavailable):
		w.release(ctx, good, err)
		return
	default:
		w.fail(ctx, good, "model", err)
		return
	}
	now := w.cfg.Now()
	encoded, records, ends := w.encode(ctx, good, now)
	stored, stage, err := w.store(ctx, encoded, records, ends)
	if err != nil {
		w.fail(ctx, stored, stage, err)
		return
	}
	w.ack(ctx, stored, now)
	w.cfg.Metrics.EventsPredicted.Add(float64(len(stored)))
	w.cfg.Metrics.BatchDuration.Observe(w.cfg.Now().Sub(start).Seconds())
}

// decode reads the events of a batch; those that can never be predicted are dead-lettered. The
// events live in w.decoded until the next batch.
func (w *Worker) decode(ctx context.Context, msgs []jetstream.Msg) []pending {
	if cap(w.decoded) < len(msgs) {
		w.decoded = append(w.decoded[:cap(w.decoded)], make([]pending, len(msgs)-cap(w.decoded))...)
	}
	good := w.decoded[:0]
	for _, m := range msgs {
		// The slot's Features keep their capacity from the last batch that used it.
		p := &w.decoded[:len(good)+1][len(good)]
		p.msg = m
		err := w.dec.DecodeInto(m.Data(), &p.ev)
		switch {
		case err != nil:
			w.deadLetter(ctx, m, "", metrics.DeadLetterUndecodable, err)
		case len(p.ev.Features)+len(p.ev.Values) != w.features:
			w.deadLetter(ctx, m, p.ev.ID, metrics.DeadLetterFeatureCount,
				fmt.Errorf("event has %d features, the model takes %d", len(p.ev.Features)+len(p.ev.Values), w.features))
		default:
			if err := w.checkTypes(&p.ev); err != nil {
				w.deadLetter(ctx, m, p.ev.ID, metrics.DeadLetterFeatureType, err)
				continue
			}
			good = good[:len(good)+1]
		}
	}
	return good
}

// score runs the model on the events' features, one row each; the answers are in w.out (in
// w.typed's tensors for a typed model).
func (w *Worker) score(ctx context.Context, good []pending) error {
	if w.cfg.Remote != nil {
		return w.scoreRemote(ctx, good)
	}
	if w.typed != nil {
		span := w.runSpan(ctx, len(good))
		err := w.typed.run(w.cfg.Model.Eval, good)
		endSpan(span, err)
		return err
	}
	for i, p := range good {
		row := w.in[i*w.features : (i+1)*w.features]
		for j, f := range p.ev.Features {
			row[j] = float32(f)
		}
		for j, v := range p.ev.Values {
			row[j] = float32(v.Num)
		}
	}
	outs := make([][]float32, len(w.out))
	for j, o := range w.outputs {
		outs[j] = w.out[j][:len(good)*o.RowSize()]
	}
	span := w.runSpan(ctx, len(good))
	err := w.cfg.Model.Run(len(good), [][]float32{w.in[:len(good)*w.features]}, outs)
	endSpan(span, err)
	return err
}

// encode writes the prediction record of every scored event into one buffer and returns the
// events it encoded with the end of each record in it. An event whose outputs are not finite is
// dead-lettered here and left out: whatever happens to the batch later, it is settled. The
// buffer is sliced only once it is complete: the async publishes of store keep their data until
// acknowledged, so it must not move under them.
func (w *Worker) encode(ctx context.Context, good []pending, now time.Time) (encoded []pending, records []byte, ends []int) {
	w.records = w.records[:0]
	// A new buffer each batch: the previous batch's pending entries may still hold slices of it.
	w.predBuf = make([]float64, 0, len(good)*len(w.observed))
	encoded = make([]pending, 0, len(good))
	ends = make([]int, 0, len(good))
	for i, p := range good {
		start := len(w.records)
		var err error
		w.records, err = w.record(w.records, p.ev, i, now)
		if err != nil {
			w.records = w.records[:start]
			w.deadLetter(ctx, p.msg, p.ev.ID, metrics.DeadLetterNonFinite, err)
			continue
		}
		p.preds = w.predictedValues()
		encoded = append(encoded, p)
		ends = append(ends, len(w.records))
	}
	records = w.records
	// The library may resend a publish (no-responders retry) until it has its answer, so the
	// buffer comes back for the next batch only once every publish of store has one.
	w.records = nil
	return encoded, records, ends
}

// store writes each encoded record once, to the bucket under the event id, only if the key is
// absent, and waits for the server to confirm them all. The bucket is a stream with one subject
// per key, so it is both the index GET /v1/predictions/{id} reads and the feed a follower
// consumes in order. It returns the events stored; on failure, the events to hand back to the
// queue, and the stage that failed.
func (w *Worker) store(ctx context.Context, good []pending, records []byte, ends []int) (stored []pending, stage string, _ error) {
	span := w.storeSpan(ctx)
	futures := make([]jetstream.PubAckFuture, 0, len(good))
	stored = make([]pending, 0, len(good))
	begin := 0
	for i, p := range good {
		rec := records[begin:ends[i]:ends[i]]
		begin = ends[i]
		// Written only if absent: a redelivered event's prediction must not replace the first.
		msg := &nats.Msg{Subject: w.cfg.Topology.PredictionKeySubject(p.ev.ID), Data: rec}
		// The client that sent the event owns its prediction: reads and the feed check it.
		if client := p.msg.Headers().Get(queue.HeaderClient); client != "" {
			msg.Header = nats.Header{queue.HeaderClient: []string{client}}
		}
		kf, err := w.cfg.JetStream.PublishMsgAsync(msg, jetstream.WithExpectLastSequencePerSubject(0))
		if err != nil {
			endSpan(span, err)
			return good, "publish", err
		}
		futures = append(futures, kf)
		stored = append(stored, p)
	}
	err := w.awaitAcks(ctx, futures)
	if span != nil {
		span.SetAttributes(semconv.MessagingBatchMessageCount(len(stored)))
	}
	endSpan(span, err)
	if err != nil {
		return stored, "store", err
	}
	w.records = records[:0]
	return stored, "", nil
}

// ack acknowledges the stored events and records how long each took from acceptance.
func (w *Worker) ack(ctx context.Context, stored []pending, now time.Time) {
	for _, p := range stored {
		if err := p.msg.Ack(); err != nil {
			// The prediction is stored; a redelivery will find it and change nothing.
			w.cfg.Logger.WarnContext(ctx, "worker: ack", "event", p.ev.ID, "error", err)
			continue
		}
		w.cfg.Metrics.EventLatency.Observe(now.Sub(p.ev.ReceivedAt).Seconds())
		for k, o := range w.observed {
			if v := p.preds[k]; !math.IsNaN(v) {
				o.obs.Observe(v)
			}
		}
	}
}

// predictedValues reads the observed outputs' values from the row record just wrote.
func (w *Worker) predictedValues() []float64 {
	start := len(w.predBuf)
	for _, o := range w.observed {
		v, out := math.NaN(), &w.row[o.row]
		switch {
		case o.elem < len(out.Values):
			v = float64(out.Values[o.elem])
		case o.elem < len(out.Typed) && out.Typed[o.elem].Kind != event.String:
			v = out.Typed[o.elem].Num
		}
		w.predBuf = append(w.predBuf, v)
	}
	return w.predBuf[start:len(w.predBuf):len(w.predBuf)]
}

// record appends the prediction of the i-th row of the last model run to dst.
func (w *Worker) record(dst []byte, ev event.Event, i int, now time.Time) ([]byte, error) {
	for k, j := range w.byName {
		if w.typed != nil {
			w.row[k] = w.typed.output(j, i)
			w.row[k].Name = w.outputs[j].Name
			continue
		}
		n := w.outputs[j].RowSize()
		w.row[k].Values = w.out[j][i*n : (i+1)*n]
	}
	p := event.Prediction{ID: ev.ID, Model: w.cfg.ModelName, ModelVersion: w.cfg.ModelVersion,
		Shipment: ev.Shipment, ReceivedAt: ev.ReceivedAt, PredictedAt: now}
	if w.cfg.RecordInputs && len(ev.Features)+len(ev.Values) == len(w.seen.Values) {
		if ev.Values != nil {
			copy(w.seen.Values, ev.Values)
		} else {
			for k, f := range ev.Features {
				w.seen.Values[k] = event.NumberValue(f)
			}
		}
		p.Features = &w.seen
	}
	return event.AppendPredictionOutputs(dst, &p, w.row)
}

// awaitAcks waits for every publish of a batch. A bucket write refused because the key exists
// means an earlier delivery already stored this prediction: that is success.
func (w *Worker) awaitAcks(ctx context.Context, futures []jetstream.PubAckFuture) error {
	timeout := time.NewTimer(w.cfg.StoreTimeout)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				continue
			}
			return err
		case <-timeout.C:
			return fmt.Errorf("no acknowledgement within %s", w.cfg.StoreTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// fail handles a batch that could not be stored: events on their last allowed delivery are
// dead-lettered (the queue would drop them otherwise); the rest are negatively acknowledged so
// that they come back soon, to this worker or another.
func (w *Worker) fail(ctx context.Context, batch []pending, stage string, err error) {
	w.cfg.Metrics.Failures.WithLabelValues(stage).Inc()
	// Without tracing the context holds no span, and these are no-ops (on a rare path).
	span := trace.SpanFromContext(ctx)
	span.RecordError(err, trace.WithAttributes(attribute.String("freightcast.stage", stage)))
	span.SetStatus(codes.Error, stage+" failed")
	w.cfg.Logger.ErrorContext(ctx, "worker: batch failed; leaving it for redelivery", "stage", stage, "events", len(batch), "error", err)
	for _, p := range batch {
		if meta, merr := p.msg.Metadata(); merr == nil && meta.NumDelivered >= uint64(w.cfg.MaxDeliver) {
			w.deadLetter(ctx, p.msg, p.ev.ID, metrics.DeadLetterMaxDeliveries, fmt.Errorf("%s: %w", stage, err))
			continue
		}
		_ = p.msg.NakWithDelay(time.Second)
	}
}

// deadLetter publishes the original message with the reason to the dead-letter subject, then
// acknowledges it. If the dead letter cannot be stored, the event stays in the queue.
func (w *Worker) deadLetter(ctx context.Context, m jetstream.Msg, id, reason string, cause error) {
	dl := nats.NewMsg(w.cfg.Topology.DeadLetterSubject)
	dl.Data = m.Data()
	dl.Header.Set(HeaderReason, reason)
	dl.Header.Set(HeaderError, truncate(cause.Error(), 1024))
	if id != "" {
		// Under the event's id, so that its status can be read by id; only an event that
		// could not be decoded has none.
		dl.Subject = w.cfg.Topology.DeadLetterKeySubject(id)
		dl.Header.Set(HeaderEventID, id)
	}
	if client := m.Headers().Get(queue.HeaderClient); client != "" {
		dl.Header.Set(queue.HeaderClient, client)
	}
	msgID := "deadletter"
	if meta, err := m.Metadata(); err == nil {
		seq := strconv.FormatUint(meta.Sequence.Stream, 10)
		dl.Header.Set(HeaderSeq, seq)
		dl.Header.Set(HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
		msgID += "-" + seq
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.StoreTimeout)
	defer cancel()
	if _, err := w.cfg.JetStream.PublishMsg(ctx, dl, jetstream.WithMsgID(msgID)); err != nil {
		w.cfg.Logger.ErrorContext(ctx, "worker: dead letter not stored; the event stays queued", "event", id, "reason", reason, "error", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	w.cfg.Metrics.DeadLetters.WithLabelValues(reason).Inc()
	trace.SpanFromContext(ctx).AddEvent("dead letter", trace.WithAttributes(
		attribute.String("freightcast.event.id", id), attribute.String("freightcast.dead_letter.reason", reason)))
	w.cfg.Logger.WarnContext(ctx, "worker: dead-lettered an event", "event", id, "reason", reason, "error", cause)
	if err := m.Ack(); err != nil {
		w.cfg.Logger.WarnContext(ctx, "worker: ack of a dead letter", "event", id, "error", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// batchSpan starts the span of a batch, or returns a nil span when tracing is off. It links to every valid trace context the messages
// carry (a malformed traceparent is ignored), with the event id on each link. Its parent is the
// first sampled one of them, so that parent-based sampling keeps the batch whenever it keeps a
// request whose event is in it, and the batch shows inside that request's trace; with no
// sampled context it is a root span, sampled by the configured sampler.
func (w *Worker) batchSpan(ctx context.Context, msgs []jetstream.Msg) (context.Context, trace.Span) {
	if w.tracer == nil {
		return ctx, nil
	}
	links := make([]trace.Link, 0, len(msgs))
	var parent trace.SpanContext
	for _, m := range msgs {
		sc := tracing.Extract(m.Headers())
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() && sc.IsSampled() {
			parent = sc
		}
		links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			semconv.MessagingMessageID(m.Headers().Get(nats.MsgIdHdr))}})
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	return w.tracer.Start(ctx, "process "+w.cfg.Topology.Subject, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...),
		trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(w.cfg.Topology.Subject), semconv.MessagingBatchMessageCount(len(msgs)),
			attribute.String("freightcast.model.name", w.cfg.ModelName), attribute.String("freightcast.model.version", w.cfg.ModelVersion)))
}

// runSpan starts the span of a model run, or returns nil when tracing is off.
func (w *Worker) runSpan(ctx context.Context, rows int) trace.Span {
	if w.tracer == nil {
		return nil
	}
	_, span := w.tracer.Start(ctx, "model run", trace.WithAttributes(attribute.Int("freightcast.model.rows", rows)))
	return span
}

// storeSpan starts the span of storing a batch's predictions, or returns nil when tracing is off.
func (w *Worker) storeSpan(ctx context.Context) trace.Span {
	if w.tracer == nil {
		return nil
	}
	_, span := w.tracer.Start(ctx, "store predictions", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName("$KV."+w.cfg.Topology.Bucket)))
	return span
}

// endSpan ends span (nil when tracing is off), marking it failed when err is not nil.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
