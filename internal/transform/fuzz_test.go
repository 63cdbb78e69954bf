package transform

import (
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// FuzzCompile: any expression compiles or is refused with an error naming its feature; none
// panics, and one that compiles evaluates without panicking.
func FuzzCompile(f *testing.F) {
	for _, e := range []string{
		`event.shipment.mode == 'ocean' ? 1.0 : 0.0`,
		`math.sin(2.0 * math.pi * double(timestamp(event.shipment.departure).getMonth('UTC') + 1) / 12.0)`,
		`geo.distanceKm(event.shipment.origin.lat, event.shipment.origin.lon, event.shipment.destination.lat, event.shipment.destination.lon)`,
		`lookup('t', event.shipment.carrier, 0.5)`,
		`event.shipment.?weather.?severity.orValue(0.0)`,
		`[1,2,3].map(x, x * 2).size()`,
		`"a".matches("(")`,
	} {
		f.Add(e)
	}
	tables := []pipelineconfig.LookupTable{{Name: "t", Values: map[string]string{"Maersk": "0.7"}}}
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Compile(pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: "f", Expression: expr}}, Tables: tables}, nil)
		if err != nil {
			if !strings.Contains(err.Error(), `feature "f"`) {
				t.Fatalf("the error does not name the feature: %v", err)
			}
			return
		}
		var ev Event
		if err := ev.Bind("e", []byte(shipment)); err != nil {
			t.Fatal(err)
		}
		_, _ = s.Get("f").Eval(&ev)
	})
}

// FuzzEval: the sample's transforms over any shipment bytes answer a value or an error, never a
// panic.
func FuzzEval(f *testing.F) {
	f.Add([]byte(shipment))
	f.Add([]byte(`{"mode": null, "origin": {"lat": "x"}}`))
	f.Add([]byte(`[1, {"a": [true, false, null]}]`))
	f.Add([]byte(`{"departure": "2026-13-45T99:00:00Z"}`))
	s, err := Compile(pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{
		{Name: "mode", Expression: `event.shipment.mode == 'ocean' ? 1.0 : 0.0`},
		{Name: "month", Expression: `math.cos(2.0 * math.pi * double(timestamp(event.shipment.departure).getMonth('Europe/Amsterdam') + 1) / 12.0)`},
		{Name: "distance", Expression: `geo.distanceKm(event.shipment.origin.lat, event.shipment.origin.lon, event.shipment.destination.lat, event.shipment.destination.lon)`},
		{Name: "codes", Expression: `double(size(event.shipment.?customs_codes.orValue([])))`},
		{Name: "dwell", Expression: `double((timestamp(event.shipment.departure) - timestamp(event.shipment.gate_in)).getMinutes()) / 60.0`},
	}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ship []byte) {
		var ev Event
		if err := ev.Bind("e", ship); err != nil {
			return
		}
		for _, feat := range s.Features() {
			_, _ = feat.Eval(&ev)
		}
	})
}
