package ingest

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/event"
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

// FuzzDecodeTypedEvents is FuzzDecodeEvents for a model of typed inputs (typedInputs: FP32,
// INT64, BOOL, BYTES): whatever the parser accepts, encoding/json reads the same way, each value
// is one its input's type holds (an INT64 exactly as written), and its queue message decodes
// back to the same values.
func FuzzDecodeTypedEvents(f *testing.F) {
	f.Add([]byte(`{"id":"t1","features":{"lane":"CNSHA","hazardous":true,"mode":9007199254740993,"weather_severity":3,"distance_km":1200.5}}`), false)
	f.Add([]byte(`{"id":"t2","features":{"lane":"\u00e9","hazardous":false,"mode":-1e3,"weather_severity":-0.0,"distance_km":3.4e38}}`+"\n"+
		`{"id":"t3","features":{"lane":"","hazardous":true,"mode":9223372036854775807,"weather_severity":1,"distance_km":2}}`), true)
	f.Add([]byte(`{"id":"t4","features":{"lane":7,"hazardous":1,"mode":2.5,"weather_severity":1e300,"distance_km":"x"}}`), false)
	d, err := newInputsDecoder(typedInputs)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, nd bool) {
		var b batch
		seen := make([]bool, len(d.features))
		if nd {
			err = d.decodeNDJSON(body, &b, seen)
		} else {
			err = d.decodeJSON(body, &b, seen)
		}
		if err != nil {
			return
		}
		var objects [][]byte
		if nd {
			for _, line := range bytes.Split(body, []byte("\n")) {
				if len(bytes.TrimSpace(line)) > 0 {
					objects = append(objects, line)
				}
			}
		} else if trimmed := bytes.TrimSpace(body); trimmed[0] == '[' {
			var raws []json.RawMessage
			if err := json.Unmarshal(body, &raws); err != nil {
				t.Fatalf("accepted array that encoding/json refuses: %v", err)
			}
			for _, r := range raws {
				objects = append(objects, r)
			}
		} else {
			objects = append(objects, body)
		}
		if len(objects) != b.len() {
			t.Fatalf("parser read %d events, encoding/json %d", b.len(), len(objects))
		}
		nf := len(d.features)
		for i, obj := range objects {
			var e struct {
				Features map[string]any `json:"features"`
			}
			dec := json.NewDecoder(bytes.NewReader(obj))
			dec.UseNumber()
			if err := dec.Decode(&e); err != nil {
				t.Fatalf("accepted event %q that encoding/json refuses: %v", obj, err)
			}
			vals := b.typed[i*nf : (i+1)*nf]
			for j, name := range d.features {
				checkTypedFeature(t, d.inputs[j].datatype, name, vals[j], e.Features[name])
			}
			ev := event.Event{ID: b.ids[i], Values: vals, ReceivedAt: time.Unix(1, 0)}
			back, err := event.Decode(event.AppendEncode(nil, &ev))
			if err != nil {
				t.Fatalf("queue message of %q does not decode: %v", obj, err)
			}
			if diff := cmp.Diff(ev.Values, back.Values); diff != "" {
				t.Fatalf("queue message round trip (-queued +decoded):\n%s", diff)
			}
		}
	})
}

// checkTypedFeature compares a parsed value with encoding/json's reading of it.
func checkTypedFeature(t *testing.T, datatype, name string, got event.Value, oracle any) {
	t.Helper()
	switch datatype {
	case "BYTES":
		if s, ok := oracle.(string); !ok || got.Kind != event.String || got.Str != s {
			t.Fatalf("%s: parsed %+v, encoding/json %#v", name, got, oracle)
		}
	case "BOOL":
		if v, ok := oracle.(bool); !ok || got.Kind != event.Bool || (got.Num != 0) != v {
			t.Fatalf("%s: parsed %+v, encoding/json %#v", name, got, oracle)
		}
	case "INT64":
		n, ok := oracle.(json.Number)
		if !ok || got.Kind != event.Integer {
			t.Fatalf("%s: parsed %+v, encoding/json %#v", name, got, oracle)
		}
		if i, err := n.Int64(); err == nil && i != got.Int {
			t.Fatalf("%s: parsed %d, written %s", name, got.Int, n)
		}
		if f, _ := n.Float64(); f != math.Trunc(f) || float64(got.Int) != f {
			t.Fatalf("%s: parsed %d, written %s", name, got.Int, n)
		}
	default:
		n, ok := oracle.(json.Number)
		f, _ := n.Float64()
		if !ok || got.Kind != event.Number || got.Num != f || math.Abs(f) > math.MaxFloat32 {
			t.Fatalf("%s: parsed %+v, encoding/json %#v", name, got, oracle)
		}
	}
}

// FuzzParseBatchGet: any body is refused with a message or gives 1 to MaxBatchGetIDs valid ids.
func FuzzParseBatchGet(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, bad := parseBatchGet(body)
		if bad != nil {
			if bad.Error == "" || ids != nil {
				t.Fatalf("refusal %+v with ids %v", bad, ids)
			}
			return
		}
		if len(ids) == 0 || len(ids) > MaxBatchGetIDs {
			t.Fatalf("%d ids accepted", len(ids))
		}
		for _, id := range ids {
			if err := event.ValidID(id); err != nil {
				t.Fatalf("accepted id %q: %v", id, err)
			}
		}
	})
}

// FuzzParseLastEventID: any header value is refused with a message, or is a position in both
// streams (one, in the older form) whose next sequences fit, and which the feed writes back as
// an id that reads the same.
func FuzzParseLastEventID(f *testing.F) {
	f.Fuzz(func(t *testing.T, v string) {
		id, err := parseLastEventID(v)
		switch {
		case err != nil:
			if id != (feedID{}) || err.Error() == "" {
				t.Fatalf("refusal %v with %+v", err, id)
			}
		case v == "":
			if id.resume {
				t.Fatal("an empty header resumes")
			}
		case !id.resume || id.pred == ^uint64(0) || id.dead == ^uint64(0) || (id.predOnly && id.dead != 0):
			t.Fatalf("%q: %+v", v, id)
		default:
			again, err := parseLastEventID(string(appendFeedID(nil, id.pred, id.dead)))
			if want := (feedID{pred: id.pred, dead: id.dead, resume: true}); err != nil || again != want {
				t.Fatalf("%q: %+v written back reads %+v, %v", v, id, again, err)
			}
		}
	})
}
