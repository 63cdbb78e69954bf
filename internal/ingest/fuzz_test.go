package ingest

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// oracleEvent is an event as encoding/json reads it.
type oracleEvent struct {
	ID       string             `json:"id"`
	Features map[string]float64 `json:"features"`
	Shipment json.RawMessage    `json:"shipment"`
}

// FuzzDecodeEvents checks the hand-written body parser against encoding/json: it must never
// panic, and whatever it accepts encoding/json must read the same way (same ids, same feature
// values, same shipment bytes). It may refuse more (duplicate keys, strings for numbers).
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(ev("e1")), false)
	f.Add([]byte(array("e1", "e2")), false)
	f.Add([]byte(ndjson("e1", "e2")), true)
	f.Add([]byte(`{"id":"a\u002eb","features":{"port_congestion_index":-0.0,"weather_severity":1E3,"distance_km":2e-308},"shipment":null}`), false)
	f.Add([]byte(`{"id":"a","features":{"port_congestion_index":"NaN","weather_severity":1,"distance_km":2}}`), false)
	d, err := newDecoder(testFeatures, "FP32")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, nd bool) {
		var b batch
		seen := make([]bool, len(testFeatures))
		if nd {
			err = d.decodeNDJSON(body, &b, seen)
		} else {
			err = d.decodeJSON(body, &b, seen)
		}
		if err != nil {
			return
		}
		var want []oracleEvent
		if nd {
			for _, line := range bytes.Split(body, []byte("\n")) {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				var e oracleEvent
				if err := json.Unmarshal(line, &e); err != nil {
					t.Fatalf("accepted line %q that encoding/json refuses: %v", line, err)
				}
				want = append(want, e)
			}
		} else {
			trimmed := bytes.TrimSpace(body)
			if len(trimmed) > 0 && trimmed[0] == '[' {
				if err := json.Unmarshal(body, &want); err != nil {
					t.Fatalf("accepted array that encoding/json refuses: %v", err)
				}
			} else {
				var e oracleEvent
				if err := json.Unmarshal(body, &e); err != nil {
					t.Fatalf("accepted event that encoding/json refuses: %v", err)
				}
				want = append(want, e)
			}
		}
		got := make([]oracleEvent, b.len())
		for i := range got {
			got[i] = oracleEvent{ID: b.ids[i], Features: map[string]float64{}}
			for j, name := range testFeatures {
				got[i].Features[name] = b.values[i*len(testFeatures)+j]
			}
			if b.shipments[i] != nil {
				got[i].Shipment = b.shipments[i]
			}
		}
		for i := range want {
			if bytes.Equal(want[i].Shipment, []byte("null")) {
				want[i].Shipment = nil
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("parser and encoding/json disagree (-encoding/json +parser):\n%s", diff)
		}
	})
}
