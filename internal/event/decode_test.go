package event

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var decoderCases = map[string]string{
	"with shipment":         `{"v":1,"id":"evt-1","features":[0.7,12,-3.5],"shipment":{"from":"NLRTM","to":"SGSIN"},"receivedAt":"2026-11-27T08:41:36.123456789Z"}`,
	"null shipment":         `{"v":1,"id":"a","features":[1e308],"shipment":null,"receivedAt":"2026-11-27T08:41:36Z"}`,
	"escaped id":            `{"v":1,"id":"a\u0062","features":[1],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"spaces":                " {\"v\" : 1 , \"id\":\"a\",\"features\":[ 1 , 2 ],\"receivedAt\":\"2026-11-27T08:41:36Z\"}\n",
	"features twice":        `{"v":1,"id":"a","features":[1,2],"features":[3],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"non-UTF-8 shipment":    "{\"v\":1,\"id\":\"a\",\"features\":[1],\"shipment\":{\"r\":\"\xff\xfe\"},\"receivedAt\":\"2026-11-27T08:41:36Z\"}",
	"other version":         `{"v":3,"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"typed values":          `{"v":2,"id":"a","features":[0.5,3,true,"rail"],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"typed, bad value":      `{"v":2,"id":"a","features":[{}],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"version 1.0":           `{"v":1.0,"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"no version":            `{"id":"a","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"bad id":                `{"v":1,"id":"a b","features":[],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"no features":           `{"v":1,"id":"a","receivedAt":"2026-11-27T08:41:36Z"}`,
	"string feature":        `{"v":1,"id":"a","features":["NaN"],"receivedAt":"2026-11-27T08:41:36Z"}`,
	"no receivedAt":         `{"v":1,"id":"a","features":[1]}`,
	"unparsable receivedAt": `{"v":1,"id":"a","features":[1],"receivedAt":"yesterday"}`,
	"unknown field":         `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z","x":1}`,
	"trailing data":         `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z"} {}`,
	"truncated":             `{"v":1`,
	"oversize shipment":     `{"v":1,"id":"a","features":[1],"receivedAt":"2026-11-27T08:41:36Z","shipment":"` + strings.Repeat("x", MaxShipmentBytes) + `"}`,
}

// TestDecoderAgreesWithDecode: the worker's allocation-free decoder accepts what Decode accepts,
// with the same result, and refuses what it refuses.
func TestDecoderAgreesWithDecode(t *testing.T) {
	t.Parallel()
	var d Decoder
	for name, data := range decoderCases {
		var got Event
		gotErr := d.DecodeInto([]byte(data), &got)
		want, wantErr := Decode([]byte(data))
		if (name == "typed values" || name == "with shipment") && gotErr != nil {
			t.Errorf("%s: %v", name, gotErr)
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: DecodeInto error %v, Decode error %v", name, gotErr, wantErr)
			continue
		}
		if gotErr == nil {
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: DecodeInto (-Decode +DecodeInto):\n%s", name, diff)
			}
		}
	}
}

// TestDecoderAllocatesNothing: decoding a queue message into a reused Event allocates nothing.
func TestDecoderAllocatesNothing(t *testing.T) {
	data, err := Encode(&Event{ID: "shp-20261127-0001",
		Features:   []float64{8450.25, 1, 0, 0, 0, 0.81, 0.73, 0.2, 0.5, 0.866, 0.3, 36},
		Shipment:   json.RawMessage(`{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk","legs":[{"port":"CNSHA"}]}`),
		ReceivedAt: received})
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var e Event
	allocs := testing.AllocsPerRun(100, func() {
		if err := d.DecodeInto(data, &e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeInto allocates %v times per message, want 0", allocs)
	}
}

// FuzzDecoder checks that DecodeInto never panics and accepts nothing Decode refuses, with the
// same result.
func FuzzDecoder(f *testing.F) {
	for _, data := range decoderCases {
		f.Add([]byte(data))
	}
	var d Decoder
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Event
		if err := d.DecodeInto(data, &got); err != nil {
			return
		}
		want, err := Decode(data)
		if err != nil {
			t.Fatalf("DecodeInto accepts what Decode refuses (%v): %q", err, data)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("DecodeInto (-Decode +DecodeInto):\n%s", diff)
		}
	})
}

// BenchmarkDecoder is BenchmarkDecode for the worker's decoder.
func BenchmarkDecoder(b *testing.B) {
	data, err := Encode(&Event{ID: "shp-20261127-0001",
		Features:   []float64{8450.25, 1, 0, 0, 0, 0.81, 0.73, 0.2, 0.5, 0.866, 0.3, 36},
		Shipment:   json.RawMessage(`{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk"}`),
		ReceivedAt: received})
	if err != nil {
		b.Fatal(err)
	}
	var d Decoder
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		if err := d.DecodeInto(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}
