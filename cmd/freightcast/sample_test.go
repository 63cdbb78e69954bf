package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/local"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/freightcast/freightcast/internal/transform"
)

// sampleEvents are the raw shipments of models/freight-delay-risk.events.json, the README's.
func sampleEvents(t *testing.T) (raw []byte, events []struct {
	ID       string          `json:"id"`
	Shipment json.RawMessage `json:"shipment"`
}) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "models", "freight-delay-risk.events.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatal(err)
	}
	return raw, events
}

// The sample pipeline's transforms turn the sample shipments into the model's 12 features. The
// expected values come from the shipments by hand: the lookup tables' entries, the hours between
// gate-in and departure, November's angle (sin −0.5, cos 0.866), and the great-circle distances
// published for these city pairs (to within 1 %).
func TestTheSampleTransformsComputeTheFeatures(t *testing.T) {
	_, pipelines := resolveSamples(t)
	p := pipelines[0]
	set, err := transform.Compile(p.Config.Transforms, func(string) string { return "FP32" })
	if err != nil {
		t.Fatal(err)
	}
	features := p.Inputs[0].Features
	if len(set.Features()) != len(features) {
		t.Fatalf("%d transforms for %d features", len(set.Features()), len(features))
	}
	want := sampleFeatureValues()
	_, events := sampleEvents(t)
	if len(events) != len(want) {
		t.Fatalf("%d sample events", len(events))
	}
	for _, e := range events {
		var ev transform.Event
		if err := ev.Bind(e.ID, e.Shipment); err != nil {
			t.Fatal(err)
		}
		w := want[e.ID]
		for _, f := range features {
			got, err := set.Get(f).Eval(&ev)
			if err != nil {
				t.Errorf("%s: %s: %v", e.ID, f, err)
				continue
			}
			checkSampleFeature(t, e.ID, f, got.Num, w[f])
		}
	}
}

// sampleFeatureValues are the 12 features of each sample shipment, worked out by hand.
func sampleFeatureValues() map[string]map[string]float64 {
	nov := []float64{-0.5, math.Sqrt(3) / 2}
	want := map[string]map[string]float64{
		"shp-20261127-0001": {"distance_km": 8930, "mode_ocean": 1, "carrier_on_time_rate": 0.71, "port_congestion_index": 0.82, "weather_severity": 0.4,
			"customs_complexity": 0.6, "dwell_time_hours": 52},
		"shp-20261127-0002": {"distance_km": 612, "mode_road": 1, "carrier_on_time_rate": 0.94, "port_congestion_index": 0.1, "weather_severity": 0.05,
			"customs_complexity": 0, "dwell_time_hours": 3},
		"shp-20261127-0003": {"distance_km": 12980, "mode_air": 1, "carrier_on_time_rate": 0.88, "port_congestion_index": 0.35, "weather_severity": 0.9,
			"customs_complexity": 0.8, "dwell_time_hours": 14},
	}
	for _, w := range want {
		w["month_sin"], w["month_cos"] = nov[0], nov[1]
	}
	return want
}

// checkSampleFeature compares a feature with its value by hand: the distances to within 1 %,
// the rest exactly but for rounding.
func checkSampleFeature(t *testing.T, id, feature string, got, want float64) {
	t.Helper()
	tolerance := 1e-9
	if feature == "distance_km" {
		tolerance = 0.01 * want
	}
	if math.Abs(got-want) > tolerance {
		t.Errorf("%s: %s = %v, want %v", id, feature, got, want)
	}
}

// `make run` with the README's curl: the raw sample shipments in, a prediction of each out;
// with spec.output.recordInputs, each record keeps the features the transforms computed and the
// model saw.
func TestRunServesTheSample(t *testing.T) {
	models, pipelines := resolveSamples(t)
	pipelines[0].Config.Output.RecordInputs = true
	want := sampleFeatureValues()
	eps := startLocalRun(t, models, pipelines)
	url := eps.Ingest[pipelines[0].Config.Name]
	raw, events := sampleEvents(t)
	resp, err := http.Post(url+"/v1/events", "application/json", strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(answer), `"accepted":3`) {
		t.Fatalf("POST: %d %s", resp.StatusCode, answer)
	}
	for _, e := range events {
		testenv.Eventually(t, time.Minute, "prediction of "+e.ID, func() error {
			resp, err := http.Get(url + "/v1/predictions/" + e.ID)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			p, err := event.DecodePrediction(body)
			if err != nil || len(p.Outputs["delay_risk"]) != 1 || p.Features == nil {
				t.Fatalf("prediction %s: %v", body, err)
			}
			if len(p.Features.Names) != 12 {
				t.Fatalf("the record keeps %d features: %v", len(p.Features.Names), p.Features.Names)
			}
			for k, name := range p.Features.Names {
				// The queue carries the features as computed (float64), and the record keeps them.
				checkSampleFeature(t, e.ID, name, p.Features.Values[k].Num, want[e.ID][name])
			}
			return nil
		})
	}
}

// resolveSamples reads config/samples as `make run` does.
func resolveSamples(t *testing.T) ([]local.Model, []local.Pipeline) {
	t.Helper()
	m, err := readManifests([]string{filepath.Join("..", "..", "config", "samples")})
	if err != nil {
		t.Fatal(err)
	}
	models, pipelines, err := m.resolve(context.Background(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return models, pipelines
}

// startLocalRun runs `freightcast run` in-process on free ports until the test ends.
func startLocalRun(t *testing.T, models []local.Model, pipelines []local.Pipeline) local.Endpoints {
	t.Helper()
	// Made before the cleanup that stops Run is registered, so removed after it.
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan local.Endpoints, 1)
	stopped, runErr := runUntilCleanup(t, cancel, func() error {
		return local.Run(ctx, local.Options{DataDir: dataDir, NATSAddr: "127.0.0.1:0", IngestAddr: "127.0.0.1:0",
			InferAddr: "127.0.0.1:0", Workers: 1, Ready: func(e local.Endpoints) { ready <- e }}, models, pipelines)
	})
	select {
	case eps := <-ready:
		return eps
	case <-stopped:
		t.Fatalf("Run stopped: %v", *runErr)
	case <-time.After(30 * time.Second):
		t.Fatal("Run not ready within 30s")
	}
	return local.Endpoints{}
}

// runUntilCleanup runs run in a goroutine until the test's cleanup cancels it and waits for it.
// stopped is closed when run returns, with its error in *err then: a channel closed rather than
// sent on, so that a test failing because run stopped early does not hang its own cleanup.
func runUntilCleanup(t *testing.T, cancel context.CancelFunc, run func() error) (stopped <-chan struct{}, err *error) {
	t.Helper()
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if runErr != nil {
			t.Errorf("run: %v", runErr)
		}
	})
	return done, &runErr
}

// internal/ingest's transform benchmark measures the sample's transforms from a copy (the data
// plane's tests do not read Kubernetes YAML); the copy must stay the sample's.
func TestTheBenchmarkTransformsAreTheSamples(t *testing.T) {
	_, pipelines := resolveSamples(t)
	want, err := json.MarshalIndent(pipelines[0].Config.Transforms, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	path := filepath.Join("..", "..", "internal", "ingest", "testdata", "sample-transforms.json")
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("%s is not the sample pipeline's transforms (%v); it should read:\n%s", path, err, want)
	}
}
