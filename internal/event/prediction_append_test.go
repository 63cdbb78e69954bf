package event

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestAppendPredictionMatchesEncodePrediction(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 27, 9, 0, 0, 123456789, time.UTC)
	cases := map[string]Prediction{
		"one output": {ID: "evt-1", Model: "freight", ModelVersion: "3", Outputs: map[string][]Value{"delay_risk": Numbers(0.8125)},
			ReceivedAt: at, PredictedAt: at.Add(time.Millisecond)},
		"several outputs, shipment, odd names": {ID: "a.b_c=d-e", Model: `m"odel\x<&>`, ModelVersion: "v\t2",
			Outputs:  map[string][]Value{"z": Numbers(1e-9, 3), "a": Numbers(-2.5e21, 0), "m\u00e9": Numbers(1)},
			Shipment: json.RawMessage(`{"ref":"MSKU 7781203","legs":[1,2]}`), ReceivedAt: at, PredictedAt: at},
		// encoding/json writes each invalid byte as \ufffd; raw, they made the record invalid UTF-8.
		"invalid UTF-8, separators, short escapes": {ID: "evt-2", Model: "m\xffodel\xe2\x82", ModelVersion: "v\u2028\b\f",
			Outputs: map[string][]Value{"r\xc0isk": Numbers(0.5), "risk": Numbers(0.25)}, ReceivedAt: at, PredictedAt: at},
		"a classifier: label, probabilities and their labels": {ID: "evt-3", Model: "late", ModelVersion: "1",
			Outputs: map[string][]Value{"output_label": {IntValue(1)}, "output_probability": Numbers(0.125, 0.875), "flag": {BoolValue(true)}},
			Labels:  map[string][]Value{"output_probability": {StringValue("on_time"), StringValue("late")}}, ReceivedAt: at, PredictedAt: at},
		// recordInputs: the features the model saw, in model order (not sorted by name).
		"the features the model saw": {ID: "evt-4", Model: "m", ModelVersion: "1", Outputs: map[string][]Value{"risk": Numbers(0.5)},
			Shipment:   json.RawMessage(`{"mode":"ocean"}`),
			Features:   &Features{Names: []string{"zeta", "alpha", "mode"}, Values: []Value{NumberValue(8927.118871242441), NumberValue(-0.5), IntValue(2)}},
			ReceivedAt: at, PredictedAt: at},
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
	p := Prediction{ID: "e", Model: "m", Outputs: map[string][]Value{"risk": Numbers(math.NaN())}, PredictedAt: time.Now()}
	if _, err := AppendPrediction(nil, &p); err == nil || !strings.Contains(err.Error(), "outputs.risk[0]") {
		t.Fatalf("err = %v, want it to name outputs.risk[0]", err)
	}
}

func TestAppendPredictionOutputsMatchesAppendPrediction(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 0, 0, 123456789, time.UTC)
	outputs := []Output{{Name: "a", Values: []float32{-2.5e21, 0}}, {Name: "m\u00e9", Values: []float32{1}},
		{Name: "z", Values: []float32{1e-9, 0.954164981842041}}}
	p := Prediction{ID: "a.b_c=d-e", Model: `m"odel\x<&>`, ModelVersion: "v\t2", Outputs: map[string][]Value{},
		Shipment: json.RawMessage(`{"ref":"MSKU 7781203"}`), ReceivedAt: at, PredictedAt: at}
	for _, o := range outputs {
		for _, v := range o.Values {
			p.Outputs[o.Name] = append(p.Outputs[o.Name], NumberValue(float64(v)))
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
		Outputs:    map[string][]Value{"delay_risk": Numbers(0.954164981842041)},
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

// An event queued before ingestion refused text that is not UTF-8 still gets a record that every
// client can decode: the bytes become U+FFFD.
func TestAppendPredictionWritesUTF8Only(t *testing.T) {
	t.Parallel()
	p := Prediction{ID: "e", Model: "m", Outputs: map[string][]Value{"risk": Numbers(0.5)}, PredictedAt: time.Now(),
		Shipment: json.RawMessage("{\"ref\":\"MSKU\xff\xfe\"}")}
	got, err := AppendPrediction(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(got) {
		t.Fatalf("record %q is not UTF-8", got)
	}
	back, err := DecodePrediction(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ref":"MSKU\ufffd\ufffd"}`; string(back.Shipment) != want {
		t.Errorf("shipment %s, want %s", back.Shipment, want)
	}
}

func TestRecordedFeaturesRoundTripInOrder(t *testing.T) {
	f := &Features{Names: []string{"zeta", "alpha", "label", "flag"}, Values: []Value{NumberValue(1.5), IntValue(9007199254740993), StringValue("air"), BoolValue(true)}}
	rec, err := AppendPrediction(nil, &Prediction{ID: "e", Model: "m", ModelVersion: "1", Outputs: map[string][]Value{"r": Numbers(1)}, Features: f,
		ReceivedAt: time.Unix(1, 0), PredictedAt: time.Unix(2, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(rec), `"features":{"zeta":1.5,"alpha":9007199254740993,"label":"air","flag":true}`) {
		t.Errorf("record %s", rec)
	}
	p, err := DecodePrediction(rec)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f, p.Features); diff != "" {
		t.Errorf("decoded features (-want +got):\n%s", diff)
	}
}
