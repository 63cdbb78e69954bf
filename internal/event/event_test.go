package event

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var received = time.Date(2026, 11, 27, 8, 41, 36, 123456789, time.UTC)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	cases := map[string]Event{
		"with shipment":    {ID: "evt-1", Features: []float64{0.7, 12, -3.5}, Shipment: json.RawMessage(`{"from":"NLRTM","to":"SGSIN"}`), ReceivedAt: received},
		"without shipment": {ID: "a.b_c=d", Features: []float64{0}, ReceivedAt: received},
		"no features":      {ID: "x", Features: []float64{}, ReceivedAt: received},
		"extreme floats":   {ID: "f", Features: []float64{1e-300, -1e300, 5e-7, 1e21, math.MaxFloat64, math.SmallestNonzeroFloat64}, ReceivedAt: received},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := Encode(&in)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(data) {
				t.Fatalf("Encode wrote invalid JSON: %s", data)
			}
			got, err := Decode(data)
			if err != nil {
				t.Fatalf("Decode(%s): %v", data, err)
			}
			if diff := cmp.Diff(in, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeFormat(t *testing.T) {
	e := Event{ID: "evt-1", Features: []float64{0.7, 12}, Shipment: json.RawMessage(`{"to":"SGSIN"}`), ReceivedAt: received}
	want := `{"v":1,"id":"evt-1","features":[0.7,12],"shipment":{"to":"SGSIN"},"receivedAt":"2026-11-27T08:41:36.123456789Z"}`
	if diff := cmp.Diff(want, string(AppendEncode(nil, &e))); diff != "" {
		t.Errorf("queue message (-want +got):\n%s", diff)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		data string
		want string
	}{
		"not json":          {data: `{"v":1`, want: "unexpected EOF"},
		"other version":     {data: `{"v":2,"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`, want: "format version 2"},
		"no version":        {data: `{"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`, want: "format version 0"},
		"bad id":            {data: `{"v":1,"id":"a b","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`, want: `id has ' '`},
		"empty id":          {data: `{"v":1,"id":"","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`, want: "id is empty"},
		"no features":       {data: `{"v":1,"id":"a","receivedAt":"2026-11-27T08:41:36Z"}`, want: "features missing"},
		"string feature":    {data: `{"v":1,"id":"a","features":["NaN"],"receivedAt":"2026-11-27T08:41:36Z"}`, want: "cannot unmarshal string"},
		"no receivedAt":     {data: `{"v":1,"id":"a","features":[1]}`, want: "receivedAt missing"},
		"unknown field":     {data: `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z","x":1}`, want: `unknown field "x"`},
		"trailing data":     {data: `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z"} {}`, want: "data after"},
		"oversize shipment": {data: `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z","shipment":"` + strings.Repeat("x", MaxShipmentBytes) + `"}`, want: "shipment is"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		id string
		ok bool
	}{
		"plain":          {id: "evt-2026-11-27_0001", ok: true},
		"dots and equal": {id: "a.b=c", ok: true},
		"max length":     {id: strings.Repeat("a", MaxIDLen), ok: true},
		"empty":          {id: ""},
		"too long":       {id: strings.Repeat("a", MaxIDLen+1)},
		"space":          {id: "a b"},
		"star":           {id: "a*"},
		"gt":             {id: "a>"},
		"slash":          {id: "a/b"},
		"leading dot":    {id: ".a"},
		"trailing dot":   {id: "a."},
		"double dot":     {id: "a..b"},
		"non ascii":      {id: "é"},
		"newline":        {id: "a\nb"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := ValidID(tc.id); (err == nil) != tc.ok {
				t.Fatalf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
			}
		})
	}
}

func TestPredictionRoundTrip(t *testing.T) {
	p := Prediction{ID: "evt-1", Model: "delay", ModelVersion: "3", Outputs: map[string][]float64{"delay_risk": {0.82}},
		Shipment: json.RawMessage(`{"to":"SGSIN"}`), ReceivedAt: received, PredictedAt: received.Add(time.Second)}
	data, err := EncodePrediction(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePrediction(data)
	if err != nil {
		t.Fatal(err)
	}
	p.Version = Version
	if diff := cmp.Diff(p, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestPredictionRejects(t *testing.T) {
	t.Parallel()
	valid := func() Prediction {
		return Prediction{ID: "e", Model: "m", Outputs: map[string][]float64{"y": {1}}, PredictedAt: received}
	}
	cases := map[string]struct {
		mutate func(*Prediction)
		want   string
	}{
		"bad id":       {mutate: func(p *Prediction) { p.ID = "a b" }, want: "id has"},
		"no model":     {mutate: func(p *Prediction) { p.Model = "" }, want: "model is empty"},
		"no outputs":   {mutate: func(p *Prediction) { p.Outputs = nil }, want: "outputs are empty"},
		"nan output":   {mutate: func(p *Prediction) { p.Outputs["y"] = []float64{math.NaN()} }, want: "outputs.y[0]"},
		"bad shipment": {mutate: func(p *Prediction) { p.Shipment = json.RawMessage(`{`) }, want: "shipment is not valid"},
		"no time":      {mutate: func(p *Prediction) { p.PredictedAt = time.Time{} }, want: "predictedAt"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := valid()
			tc.mutate(&p)
			_, err := EncodePrediction(p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("EncodePrediction error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts survives a round trip
// through AppendEncode unchanged: a worker may re-publish (dead-letter) what it decoded.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"evt-1","features":[0.7,12],"shipment":{"to":"SGSIN"},"receivedAt":"2026-11-27T08:41:36.123456789Z"}`))
	f.Add([]byte(`{"v":1,"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`))
	f.Add([]byte(`{"v":1,"id":"a","features":[1e308],"shipment":null,"receivedAt":"2026-11-27T08:41:36Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Decode(AppendEncode(nil, &e))
		if err != nil {
			t.Fatalf("re-encoding %+v does not decode: %v", e, err)
		}
		if !again.ReceivedAt.Equal(e.ReceivedAt) {
			t.Fatalf("receivedAt changed: %v → %v", e.ReceivedAt, again.ReceivedAt)
		}
		again.ReceivedAt = e.ReceivedAt
		if diff := cmp.Diff(e, again); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// BenchmarkDecode is what a worker does first with each queued event.
func BenchmarkDecode(b *testing.B) {
	data, err := Encode(&Event{ID: "shp-20261127-0001",
		Features:   []float64{8450.25, 1, 0, 0, 0, 0.81, 0.73, 0.2, 0.5, 0.866, 0.3, 36},
		Shipment:   json.RawMessage(`{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk"}`),
		ReceivedAt: received})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
