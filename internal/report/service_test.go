package report

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
)

func testReporting() pipelineconfig.Reporting {
	return pipelineconfig.Reporting{
		Dimensions: []pipelineconfig.ReportDimension{
			{Name: "lane", Expression: `event.shipment.origin + "-" + event.shipment.destination`},
			{Name: "carrier", Expression: "event.shipment.carrier"},
		},
		Outputs:      []pipelineconfig.ReportOutput{{Name: "delay_risk", Index: 0}},
		Threshold:    0.7,
		Buckets:      []pipelineconfig.ReportBucket{{Width: "5m", Retention: "48h"}, {Width: "1h", Retention: "2160h"}},
		MaxValues:    1000,
		TopShipments: 5,
	}
}

// genRecord is a generated prediction and what the aggregates should make of it.
type genRecord struct {
	client, id, lane, carrier string
	risk                      float64
	at                        time.Time
	data                      []byte
}

var t0 = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// generate makes n records over 24 hours of predictedAt, in order, some without a carrier
// (dimension "unknown") and a few malformed ones (no risk output), which must be counted as such.
func generate(t testing.TB, seed uint64, n int) []genRecord {
	rng := rand.New(rand.NewPCG(seed, 7))
	ports := []string{"CNSHA", "NLRTM", "USLAX", "SGSIN", "DEHAM"}
	out := make([]genRecord, n)
	for i := range out {
		g := genRecord{client: []string{"acme", "globex", ""}[rng.IntN(3)], id: fmt.Sprintf("e%07d", i),
			risk: math.Pow(rng.Float64(), 2), at: t0.Add(time.Duration(i) * 24 * time.Hour / time.Duration(n))}
		g.lane = ports[rng.IntN(5)] + "-" + ports[rng.IntN(5)]
		shipment := fmt.Sprintf(`{"origin":%q,"destination":%q`, g.lane[:5], g.lane[6:])
		if rng.IntN(10) == 0 {
			g.carrier = ValueUnknown
		} else {
			g.carrier = []string{"maersk", "msc", "cma"}[rng.IntN(3)]
			shipment += fmt.Sprintf(`,"carrier":%q`, g.carrier)
		}
		shipment += "}"
		p := event.Prediction{ID: g.id, Model: "delay", ModelVersion: "1", Outputs: map[string][]event.Value{"delay_risk": event.Numbers(g.risk)},
			Shipment: []byte(shipment), ReceivedAt: g.at, PredictedAt: g.at}
		if i%97 == 0 {
			p.Outputs = map[string][]event.Value{"other": event.Numbers(1)}
			g.risk = math.NaN() // malformed for reporting
		}
		var err error
		if g.data, err = event.EncodePrediction(p); err != nil {
			t.Fatal(err)
		}
		out[i] = g
	}
	return out
}

func publish(t testing.TB, js jetstream.JetStream, spec queue.Spec, recs []genRecord) {
	ctx := context.Background()
	for _, g := range recs {
		m := nats.NewMsg(spec.PredictionKeySubject(g.id))
		m.Data = g.data
		if g.client != "" {
			m.Header.Set(queue.HeaderClient, g.client)
		}
		if _, err := js.PublishMsgAsync(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("publishing timed out")
	}
}

// expected recomputes, straightforwardly, a dimension's summaries over all records visible to a
// client filter: exact counts, means and above-threshold counts, and the exact quantiles.
func expected(recs []genRecord, visible func(string) bool, dim func(genRecord) string) map[string]Summary {
	values := map[string][]float64{}
	for _, g := range recs {
		if math.IsNaN(g.risk) || !visible(g.client) {
			continue
		}
		values[dim(g)] = append(values[dim(g)], g.risk)
	}
	out := map[string]Summary{}
	for v, xs := range values {
		s := Summary{Value: v, Stats: Stats{Count: uint64(len(xs))}}
		var sum float64
		for _, x := range xs {
			sum += x
			if x >= 0.7 {
				s.AboveThreshold++
			}
		}
		s.Mean = sum / float64(len(xs))
		slices.Sort(xs)
		s.P50, s.P90, s.P99 = exactQuantile(xs, 0.5), exactQuantile(xs, 0.9), exactQuantile(xs, 0.99)
		out[v] = s
	}
	return out
}

func checkAgainst(t *testing.T, svc *Service, recs []genRecord) {
	t.Helper()
	all := func(string) bool { return true }
	acme := func(c string) bool { return c == "acme" }
	for _, vis := range []struct {
		name string
		fn   func(string) bool
	}{{"all", all}, {"acme", acme}} {
		for d, dim := range []func(genRecord) string{func(g genRecord) string { return g.lane }, func(g genRecord) string { return g.carrier }} {
			want := expected(recs, vis.fn, dim)
			for tier := range 2 {
				var got []Summary
				svc.Read(func(s *State) {
					got, _, _ = s.Summaries(Window{Tier: tier, From: t0.Add(-time.Hour), To: t0.Add(48 * time.Hour), Visible: vis.fn}, d, 0, "", 0)
				})
				if len(got) != len(want) {
					t.Fatalf("%s, dimension %d, tier %d: %d values, want %d", vis.name, d, tier, len(got), len(want))
				}
				for _, g := range got {
					w := want[g.Value]
					if g.Count != w.Count || g.AboveThreshold != w.AboveThreshold || math.Abs(g.Mean-w.Mean) > 1e-9 {
						t.Fatalf("%s, dimension %d, tier %d, value %q: got %+v, want %+v", vis.name, d, tier, g.Value, g, w)
					}
					for _, q := range [][2]float64{{g.P50, w.P50}, {g.P90, w.P90}, {g.P99, w.P99}} {
						if !withinAccuracy(q[0], q[1]) {
							t.Fatalf("%s, value %q: quantile %v, exact %v", vis.name, g.Value, q[0], q[1])
						}
					}
				}
			}
		}
	}
}

// everything is all the state's answers, to compare two states.
func everything(svc *Service) string {
	var b strings.Builder
	svc.Read(func(s *State) {
		for tier := range 2 {
			for d := range 2 {
				out, _, other := s.Summaries(Window{Tier: tier, From: t0.Add(-time.Hour), To: t0.Add(48 * time.Hour), Visible: func(string) bool { return true }}, d, 0, "count", 0)
				fmt.Fprintf(&b, "%d %d %d:", tier, d, other)
				// Sums merged across clients in map order differ in the last bits: means to 12
				// digits; counts and sketches exactly.
				for _, v := range out {
					fmt.Fprintf(&b, " %s %d %.12g %v %v %v %d;", v.Value, v.Count, v.Mean, v.P50, v.P90, v.P99, v.AboveThreshold)
				}
				b.WriteString("\n")
			}
		}
		fmt.Fprintf(&b, "%+v\n", s.Riskiest(Window{From: t0, To: t0.Add(48 * time.Hour), Visible: func(string) bool { return true }}, 50))
		fmt.Fprintf(&b, "%d %+v\n", s.LastSeq, s.Counters)
	})
	return b.String()
}

type rig struct {
	js   jetstream.JetStream
	spec queue.Spec
}

func newRig(t *testing.T) *rig {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	spec := pipelinetest.Spec("freight", "lanes", 1)
	spec.Reporting = true
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	return &rig{js: js, spec: spec}
}

// run starts a service and returns it with a stop function that waits for Run to return.
func (r *rig) run(t *testing.T, opts Options) (*Service, func()) {
	svc, err := NewService(r.js, r.spec, testReporting(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(cancel)
	return svc, stop
}

func waitApplied(t *testing.T, svc *Service, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var last uint64
		svc.Read(func(s *State) { last = s.LastSeq })
		if last >= seq {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the service did not reach sequence %d", seq)
}

func TestServiceAggregatesMatchARecomputation(t *testing.T) {
	r := newRig(t)
	recs := generate(t, 1, 3000)
	publish(t, r.js, r.spec, recs)
	svc, stop := r.run(t, Options{})
	defer stop()
	waitApplied(t, svc, uint64(len(recs)))
	checkAgainst(t, svc, recs)
	svc.Read(func(s *State) {
		if want := uint64((len(recs) + 96) / 97); s.Counters.Malformed != want {
			t.Errorf("malformed = %d, want %d", s.Counters.Malformed, want)
		}
		if s.Counters.DimensionErrors == 0 {
			t.Error("no dimension errors counted for the records without a carrier")
		}
	})
}

// TestRestartCountsNothingTwiceAndLosesNothing kills the service mid-stream in three ways and
// compares what the next run ends with to an uninterrupted run over the same records.
func TestRestartCountsNothingTwiceAndLosesNothing(t *testing.T) {
	recs := generate(t, 2, 4000)
	half := len(recs) / 2
	reference := func() string {
		r := newRig(t)
		publish(t, r.js, r.spec, recs)
		svc, stop := r.run(t, Options{})
		defer stop()
		waitApplied(t, svc, uint64(len(recs)))
		checkAgainst(t, svc, recs)
		return everything(svc)
	}()
	cases := map[string]struct {
		opts     Options
		crashAck bool
	}{
		"with snapshots":                     {opts: Options{SnapshotRecords: 300, Batch: 100}},
		"without a snapshot":                 {opts: Options{SnapshotRecords: 1 << 30, SnapshotInterval: time.Hour}},
		"crash between snapshot and its ack": {opts: Options{SnapshotRecords: 700, Batch: 100}, crashAck: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			publish(t, r.js, r.spec, recs[:half])
			opts := tc.opts
			var snapshots atomic.Int32
			opts.Hooks.Snapshot = func(int, uint64) { snapshots.Add(1) }
			crashed := make(chan struct{})
			if tc.crashAck {
				var once atomic.Bool
				opts.Hooks.AfterSnapshotBeforeAck = func() bool {
					if once.CompareAndSwap(false, true) {
						close(crashed)
						return true
					}
					return false
				}
			}
			svc, stop := r.run(t, opts)
			if tc.crashAck {
				select {
				case <-crashed:
				case <-time.After(time.Minute):
					t.Fatal("no snapshot was written")
				}
			} else {
				waitApplied(t, svc, uint64(half))
			}
			stop()
			if tc.crashAck || name == "with snapshots" {
				if snapshots.Load() == 0 {
					t.Fatal("the first run wrote no snapshot")
				}
			}
			publish(t, r.js, r.spec, recs[half:])
			second := opts
			second.Hooks = Hooks{}
			svc2, stop2 := r.run(t, second)
			defer stop2()
			waitApplied(t, svc2, uint64(len(recs)))
			if got := everything(svc2); got != reference {
				t.Fatalf("after the restart the aggregates differ from an uninterrupted run:\n got: %.600s\nwant: %.600s", got, reference)
			}
		})
	}
}
