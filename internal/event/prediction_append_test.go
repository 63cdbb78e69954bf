package event

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendPredictionMatchesEncodePrediction(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 9, 0, 0, 123456789, time.UTC)
	cases := map[string]Prediction{
		"one output": {ID: "evt-1", Model: "freight", ModelVersion: "3", Outputs: map[string][]float64{"delay_risk": {0.8125}},
			ReceivedAt: at, PredictedAt: at.Add(time.Millisecond)},
		"several outputs, shipment, odd names": {ID: "a.b_c=d-e", Model: `m"odel\x<&>`, ModelVersion: "v\t2",
			Outputs:  map[string][]float64{"z": {1e-9, 3}, "a": {-2.5e21, 0}, "m\u00e9": {1}},
			Shipment: json.RawMessage(`{"ref":"MSKU 7781203","legs":[1,2]}`), ReceivedAt: at, PredictedAt: at},
		// encoding/json writes each invalid byte as \ufffd; raw, they made the record invalid UTF-8.
		"invalid UTF-8, separators, short escapes": {ID: "evt-2", Model: "m\xffodel\xe2\x82", ModelVersion: "v\u2028\b\f",
			Outputs: map[string][]float64{"r\xc0isk": {0.5}, "risk": {0.25}}, ReceivedAt: at, PredictedAt: at},
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want, err := EncodePrediction(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := AppendPrediction(nil, &p)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("AppendPrediction differs from EncodePrediction (-want +got):\n%s", diff)
			}
			if _, err := DecodePrediction(got); err != nil {
				t.Errorf("the appended record does not decode: %v", err)
			}
		})
	}
}

func TestAppendPredictionRefusesNonFiniteOutputs(t *testing.T) {
	p := Prediction{ID: "e", Model: "m", Outputs: map[string][]float64{"risk": {math.NaN()}}, PredictedAt: time.Now()}
	if _, err := AppendPrediction(nil, &p); err == nil || !strings.Contains(err.Error(), "outputs.risk[0]") {
		t.Fatalf("err = %v, want it to name outputs.risk[0]", err)
	}
}

func TestAppendPredictionOutputsMatchesAppendPrediction(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 123456789, time.UTC)
	outputs := []Output{{Name: "a", Values: []float32{-2.5e21, 0}}, {Name: "m\u00e9", Values: []float32{1}},
		{Name: "z", Values: []float32{1e-9, 0.954164981842041}}}
	p := Prediction{ID: "a.b_c=d-e", Model: `m"odel\x<&>`, ModelVersion: "v\t2", Outputs: map[string][]float64{},
		Shipment: json.RawMessage(`{"ref":"MSKU 7781203"}`), ReceivedAt: at, PredictedAt: at}
	for _, o := range outputs {
		for _, v := range o.Values {
			p.Outputs[o.Name] = append(p.Outputs[o.Name], float64(v))
		}
	}
	want, err := AppendPrediction(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	p.Outputs = nil
	got, err := AppendPredictionOutputs(nil, &p, outputs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("AppendPredictionOutputs differs from AppendPrediction (-want +got):\n%s", diff)
	}

	inf := []Output{{Name: "risk", Values: []float32{float32(math.Inf(1))}}}
	if _, err := AppendPredictionOutputs(nil, &p, inf); err == nil || !strings.Contains(err.Error(), "outputs.risk[0]") {
		t.Fatalf("err = %v, want it to name outputs.risk[0]", err)
	}
}

func BenchmarkAppendPrediction(b *testing.B) {
	p := Prediction{ID: "shp-20261127-0001", Model: "freight-delay-risk", ModelVersion: "1",
		Outputs:    map[string][]float64{"delay_risk": {0.954164981842041}},
		Shipment:   json.RawMessage(`{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk"}`),
		ReceivedAt: time.Now(), PredictedAt: time.Now()}
	b.Run("AppendPrediction", func(b *testing.B) {
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = AppendPrediction(buf[:0], &p)
		}
	})
	b.Run("EncodePrediction", func(b *testing.B) {
		for b.Loop() {
			_, _ = EncodePrediction(p)
		}
	})
}
