package event

import (
	"reflect"
	"testing"
	"time"
)

func scanSeeds(t testing.TB) [][]byte {
	at := time.Date(2026, 12, 3, 1, 2, 3, 456789000, time.UTC)
	p := Prediction{ID: "e1", Model: "delay", ModelVersion: "3", Outputs: map[string][]Value{"risk": Numbers(0.25, 1e-300), "class": {IntValue(2), StringValue("late"), BoolValue(true)}},
		Shipment: []byte(`{"origin":"CNSHA","w":[1,2.5e3,{"x":null}],"s":"\u00e9\"\\"}`), ReceivedAt: at, PredictedAt: at.Add(time.Millisecond)}
	good, err := EncodePrediction(p)
	if err != nil {
		t.Fatal(err)
	}
	withLabels := p
	withLabels.Labels = map[string][]Value{"class": {StringValue("a")}}
	labelled, err := EncodePrediction(withLabels)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{good, labelled,
		[]byte(` {"v":1,"id":"e2","model":"m","outputs":{"r":[0.5]},"predictedAt":"2026-12-03T00:00:00Z"} `),
		[]byte(`{"v":1,"ID":"e2","model":"m","outputs":{"r":[0.5]},"predictedAt":"2026-12-03T00:00:00Z"}`),
		[]byte(`{"v":1,"id":"e2","id":"e3","model":"m","outputs":{"r":[0.5]},"predictedAt":"2026-12-03T00:00:00Z"}`),
		[]byte(`{"v":1,"id":"e2","model":"m","outputs":{"r":[0.5],"r":[1]},"predictedAt":"2026-12-03T00:00:00Z"}`),
		[]byte(`{"v":1.0,"id":"e2","model":"m","outputs":{"r":[1e400]},"predictedAt":"2026-12-03T00:00:00Z"}`),
		[]byte(`{"v":1,"i\u0064":"e2","model":"m","outputs":{"r":[]},"shipment":null,"predictedAt":"2026-12-03T24:00:00Z"}`),
		[]byte(`{"v":1,"id":"e2","model":"","outputs":{},"predictedAt":null}`),
	}
}

// TestScanPredictionReadsWhatEncodePredictionWrites: the fast path must answer for the records
// the workers write, or it saves nothing.
func TestScanPredictionReadsWhatEncodePredictionWrites(t *testing.T) {
	seeds := scanSeeds(t)
	for i, data := range seeds[:3] {
		var got Prediction
		if i == 1 {
			if ScanPrediction(data, &got) {
				t.Fatal("a record with labels was read by the fast path")
			}
			continue
		}
		if !ScanPrediction(data, &got) {
			t.Fatalf("the fast path did not read %s", data)
		}
		want, err := DecodePrediction(data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("fast path %+v, DecodePrediction %+v (%v)", got, want, err)
		}
	}
}

// FuzzScanPrediction: whatever ScanPrediction accepts, DecodePrediction accepts and reads the same.
func FuzzScanPrediction(f *testing.F) {
	for _, s := range scanSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Prediction
		if !ScanPrediction(data, &got) {
			return
		}
		want, err := DecodePrediction(data)
		if err != nil {
			t.Fatalf("ScanPrediction accepted what DecodePrediction refuses (%v): %q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("ScanPrediction read %+v, DecodePrediction %+v: %q", got, want, data)
		}
	})
}
