package ingest

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// testTransforms compute the test model's three features from a raw shipment.
var testTransforms = pipelineconfig.Transforms{
	Features: []pipelineconfig.FeatureTransform{
		{Name: "port_congestion_index", Expression: `lookup('congestion', event.shipment.to, 0.5)`},
		{Name: "weather_severity", Expression: `event.shipment.?weather.orValue(0.0)`},
		{Name: "distance_km", Expression: `geo.distanceKm(event.shipment.from_lat, 0.0, event.shipment.to_lat, 0.0)`},
	},
	Tables: []pipelineconfig.LookupTable{{Name: "congestion", Values: map[string]string{"SGSIN": "0.8"}}},
}

// raw renders a raw event whose shipment is ten degrees of meridian long.
func raw(id, extra string) string {
	return `{"id":"` + id + `","shipment":{"to":"SGSIN","from_lat":1.0,"to_lat":11.0` + extra + `}}`
}

// storedFeatures decodes the features of every queued event, by id.
func (e *env) storedFeatures(tb testing.TB) map[string][]float64 {
	tb.Helper()
	out := map[string][]float64{}
	for _, m := range e.streamMessages(tb) {
		ev, err := event.Decode(m.Data)
		if err != nil {
			tb.Fatal(err)
		}
		out[ev.ID] = ev.Features
	}
	return out
}

func TestTransformsComputeTheMissingFeatures(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{Transforms: testTransforms})
	body := raw("r1", `,"weather":2.5`) + "\n" + raw("r2", "") + "\n" +
		// Carried features win over the transforms, one by one.
		`{"id":"r3","features":{"weather_severity":9},"shipment":{"to":"NLRTM","from_lat":0,"to_lat":0}}` + "\n" + ev("r4") + "\n"
	if a := e.post(t, ctNDJSON, body); a.Status != 202 || a.Body["accepted"] != 4.0 {
		t.Fatalf("got %+v", a)
	}
	tenDegrees := 2 * math.Pi * 6371.0088 / 36
	want := map[string][]float64{
		"r1": {0.8, 2.5, tenDegrees},
		"r2": {0.8, 0, tenDegrees},
		"r3": {0.5, 9, 0},
		"r4": {0.7, 3, 1200.5},
	}
	if diff := cmp.Diff(want, e.storedFeatures(t), cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-6 })); diff != "" {
		t.Errorf("stored features (-want +got):\n%s", diff)
	}
}

func TestAFailingTransformRefusesTheWholeBody(t *testing.T) {
	e := newEnv(t, testSpec(1000), Config{Transforms: testTransforms})
	cases := map[string]struct {
		body      string
		index     float64
		field     string
		wantInMsg []string
	}{
		"a missing field": {body: raw("a", "") + "\n" + `{"id":"b","shipment":{"to":"SGSIN","to_lat":3}}` + "\n" + raw("c", ""),
			index: 1, field: "features.distance_km", wantInMsg: []string{"geo.distanceKm(event.shipment.from_lat", "no such key: from_lat"}},
		"a value of the wrong type": {body: raw("a", `,"weather":"stormy"`),
			index: 0, field: "features.weather_severity", wantInMsg: []string{"results in string stormy; the feature must be a number"}},
		"beyond the input's type": {body: raw("a", `,"weather":1e300`),
			index: 0, field: "features.weather_severity", wantInMsg: []string{"computed 1e+300, beyond the range of FP32"}},
		"no shipment": {body: `{"id":"a"}`,
			index: 0, field: "features.port_congestion_index", wantInMsg: []string{"no such key: shipment"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := e.post(t, ctNDJSON, tc.body)
			if a.Status != 400 || a.Body["index"] != tc.index || a.Body["field"] != tc.field {
				t.Fatalf("got %+v, want 400 at index %v, field %s", a, tc.index, tc.field)
			}
			for _, w := range tc.wantInMsg {
				if msg, _ := a.Body["error"].(string); !strings.Contains(msg, w) {
					t.Errorf("error %q does not say %q", msg, w)
				}
			}
		})
	}
	if n := e.streamMsgs(t); n != 0 {
		t.Errorf("the stream holds %d events after refused bodies", n)
	}
}

func TestTransformsAreCheckedAtStart(t *testing.T) {
	cases := map[string]struct {
		transforms pipelineconfig.Transforms
		want       string
	}{
		"an unknown feature": {pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: "speed", Expression: "1.0"}}},
			`the transforms compute "speed", which the model has no input for`},
		"a bad expression": {pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: "distance_km", Expression: "event.x +"}}},
			`feature "distance_km": expression "event.x +"`},
	}
	nc := connect(t, natstest.Start(t).URL())
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Conn: nc, Topology: testSpec(1).Topology, Features: testFeatures, MaxBodyBytes: 1 << 20,
				Registry: prometheus.NewRegistry(), Transforms: tc.transforms})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzDecodeRawEvents: bodies of raw shipments through the sample's 12 transforms are accepted
// with every feature finite, or refused with an event error; never a panic.
func FuzzDecodeRawEvents(f *testing.F) {
	f.Add([]byte(rawSampleEvent(nil, 1)), true)
	f.Add([]byte(precomputedSampleEvent(nil, 2)), false)
	f.Add([]byte(`{"id":"a","shipment":{"mode":"ocean","origin":{"lat":95,"lon":0},"departure":"2026-13-01T00:00:00Z"}}`), false)
	f.Add([]byte(`{"id":"b","features":{"mode_air":1},"shipment":{"customs_codes":[1,[2],{"x":null}],"weather":{"severity":1e308}}}`), false)
	d, err := newDecoder(sampleFeatures, "FP32")
	if err != nil {
		f.Fatal(err)
	}
	if err := d.withTransforms(sampleTransforms(f)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, nd bool) {
		var b batch
		seen := make([]bool, len(sampleFeatures))
		decode := d.decodeJSON
		if nd {
			decode = d.decodeNDJSON
		}
		err := decode(body, &b, seen)
		if err != nil {
			if _, ok := err.(*eventError); !ok {
				t.Fatalf("not an event error: %T %v", err, err)
			}
			return
		}
		for _, v := range b.values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("accepted a non-finite feature: %v", b.values)
			}
		}
	})
}
