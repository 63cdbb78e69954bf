package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// fixtureEvent is row r of a fixture as the typed queue message ingestion writes for it.
func fixtureEvent(t testing.TB, fx *modelfixtures.Fixture, r int) *event.Event {
	t.Helper()
	ev := &event.Event{ID: fmt.Sprintf("row-%d", r), Values: []event.Value{}, ReceivedAt: time.Now()}
	for _, in := range fx.Inputs {
		for _, v := range in.Row(r) {
			switch in.Datatype {
			case "INT64":
				i, err := v.Int64()
				if err != nil {
					t.Fatal(err)
				}
				ev.Values = append(ev.Values, event.IntValue(i))
			default:
				f, err := v.Float64()
				if err != nil {
					t.Fatal(err)
				}
				ev.Values = append(ev.Values, event.NumberValue(f))
			}
		}
	}
	return ev
}

// Tree ensembles, a scikit-learn pipeline and the PyTorch net through the inference pool: each
// event's record keeps every output (a label, ZipMap's probabilities with their labels, a
// regression value) with the framework's answers.
func TestWorkerServesFixturesLikeTheirFrameworks(t *testing.T) {
	for _, name := range []string{"xgb_binary_zipmap", "skl_impute_onehot", "skl_rf_delay_hours", "xgb_delay_hours", "torch_tabular_opset17"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := modelfixtures.Load(t, name)
			h := newHarness(t, 30*time.Second)
			rt, err := model.LoadFile(fx.Path)
			if err != nil {
				t.Fatal(err)
			}
			var declared []model.FeatureInput
			for k, names := range fx.FeatureNames() {
				declared = append(declared, model.FeatureInput{Name: fx.Inputs[k].Name, Features: names})
			}
			inputs, err := model.ResolveInputs(nil, declared, rt.Metadata())
			if err != nil {
				t.Fatal(err)
			}
			rows := fx.CompleteRows()
			ctx := context.Background()
			for _, r := range rows {
				data, err := event.Encode(fixtureEvent(t, fx, r))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := h.js.Publish(ctx, h.spec.Subject, data, jetstream.WithMsgID(fmt.Sprintf("row-%d", r))); err != nil {
					t.Fatal(err)
				}
			}
			_, js := natstest.Connect(t, h.srv.URL())
			m, err := metrics.NewWorker(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: rt, Inputs: inputs, ModelName: name,
				ModelVersion: "1", BatchSize: 16, MaxDeliver: h.spec.MaxDeliver, Metrics: m})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			wait := runWorker(runCtx, t, w)
			h.waitPredicted(len(rows), 30*time.Second)
			cancel()
			wait()
			kv, err := h.js.KeyValue(ctx, h.spec.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				entry, err := kv.Get(ctx, fmt.Sprintf("row-%d", r))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := event.DecodePrediction(entry.Value()); err != nil {
					t.Fatalf("record %s: %v", entry.Value(), err)
				}
				fx.CheckRecord(t, entry.Value(), r)
			}
		})
	}
}

// An event whose values its inputs cannot take (a string for the PyTorch net's INT64 mode, a
// mode id beyond the embedding) is dead-lettered; the rest of its batch is predicted.
func TestWorkerDeadLettersWrongTypes(t *testing.T) {
	fx := modelfixtures.Load(t, "torch_tabular_opset17")
	h := newHarness(t, 30*time.Second)
	rt, err := model.LoadFile(fx.Path)
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := model.ResolveInputs(nil, []model.FeatureInput{
		{Name: "numeric", Features: fx.FeatureNames()[0]}, {Name: "transport_mode", Features: []string{"mode"}}}, rt.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good := fixtureEvent(t, fx, 0)
	wrong := fixtureEvent(t, fx, 1)
	wrong.ID, wrong.Values[8] = "string-mode", event.StringValue("air")
	for _, ev := range []*event.Event{good, wrong} {
		data, err := event.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.js.Publish(ctx, h.spec.Subject, data, jetstream.WithMsgID(ev.ID)); err != nil {
			t.Fatal(err)
		}
	}
	_, js := natstest.Connect(t, h.srv.URL())
	m, err := metrics.NewWorker(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{JetStream: js, Topology: h.spec.Topology, Model: rt, Inputs: inputs, ModelName: "torch",
		ModelVersion: "1", BatchSize: 16, MaxDeliver: h.spec.MaxDeliver, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	wait := runWorker(runCtx, t, w)
	h.waitPredicted(1, 30*time.Second)
	testenv.Eventually(t, time.Minute, "dead letter counted", func() error {
		if n := testutil.ToFloat64(m.DeadLetters.WithLabelValues(metrics.DeadLetterFeatureType)); n != 1 {
			return fmt.Errorf("%v of 1", n)
		}
		return nil
	})
	cancel()
	wait()
	kv, err := h.js.KeyValue(ctx, h.spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 || keys[0] != good.ID {
		t.Fatalf("predictions %v (%v), want only %s", keys, err, good.ID)
	}
	entry, err := kv.Get(ctx, good.ID)
	if err != nil {
		t.Fatal(err)
	}
	fx.CheckRecord(t, entry.Value(), 0)
}
