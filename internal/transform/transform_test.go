package transform

import (
	"math"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

const shipment = `{"mode": "ocean", "carrier": "Maersk", "weight_kg": 18200,
	"origin": {"port": "CNSHA", "lat": 31.2304, "lon": 121.4737},
	"destination": {"port": "NLRTM", "lat": 51.9244, "lon": 4.4777},
	"gate_in": "2026-11-25T04:00:00Z", "departure": "2026-11-27T08:00:00+08:00",
	"customs_codes": ["8471.30", "8517.62", "8542.31"]}`

func mustCompile(t *testing.T, tr pipelineconfig.Transforms, datatype func(string) string) *Set {
	t.Helper()
	s, err := Compile(tr, datatype)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return s
}

func TestEval(t *testing.T) {
	cases := map[string]struct {
		expr     string
		datatype string
		want     event.Value
	}{
		"one-hot":        {expr: `event.shipment.mode == 'ocean' ? 1.0 : 0.0`, want: event.NumberValue(1)},
		"month in UTC":   {expr: `double(timestamp(event.shipment.departure).getMonth('UTC') + 1)`, want: event.NumberValue(11)},
		"month sin":      {expr: `math.sin(2.0 * math.pi * 11.0 / 12.0)`, want: event.NumberValue(math.Sin(2 * math.Pi * 11 / 12))},
		"hour in a zone": {expr: `timestamp(event.shipment.departure).getHours('Asia/Shanghai')`, want: event.NumberValue(8)},
		// 2026-11-27T00:00Z minus 2026-11-25T04:00Z.
		"duration in hours":      {expr: `double((timestamp(event.shipment.departure) - timestamp(event.shipment.gate_in)).getMinutes()) / 60.0`, want: event.NumberValue(44)},
		"hour at an offset":      {expr: `timestamp(event.shipment.departure).getHours('-05:30')`, want: event.NumberValue(18)},
		"day in a zone, cached":  {expr: `timestamp(event.shipment.departure).getDate('Asia/Shanghai') + timestamp(event.shipment.departure).getDate('Asia/Shanghai')`, want: event.NumberValue(54)},
		"lookup":                 {expr: `lookup('carrier_on_time', event.shipment.carrier, 0.5)`, want: event.NumberValue(0.71)},
		"lookup default":         {expr: `lookup('carrier_on_time', 'Nobody', 0.5)`, want: event.NumberValue(0.5)},
		"optional default":       {expr: `event.shipment.?weather.?severity.orValue(0.25)`, want: event.NumberValue(0.25)},
		"has":                    {expr: `has(event.shipment.weight_kg) ? event.shipment.weight_kg / 1000.0 : 0.0`, want: event.NumberValue(18.2)},
		"list size":              {expr: `math.least(1.0, double(size(event.shipment.customs_codes)) / 5.0)`, want: event.NumberValue(0.6)},
		"int input":              {expr: `size(event.shipment.customs_codes)`, datatype: "INT64", want: event.IntValue(3)},
		"integral double to int": {expr: `event.shipment.weight_kg`, datatype: "INT32", want: event.IntValue(18200)},
		"bool input":             {expr: `event.shipment.mode == 'air'`, datatype: "BOOL", want: event.BoolValue(false)},
		"bytes input":            {expr: `event.shipment.carrier.lowerAscii()`, datatype: "BYTES", want: event.StringValue("maersk")},
		"id":                     {expr: `event.id.startsWith('shp-') ? 1 : 0`, want: event.NumberValue(1)},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := mustCompile(t, pipelineconfig.Transforms{
				Features: []pipelineconfig.FeatureTransform{{Name: "f", Expression: tc.expr}},
				Tables:   []pipelineconfig.LookupTable{{Name: "carrier_on_time", Values: map[string]string{"Maersk": "0.71"}}},
			}, func(string) string { return tc.datatype })
			var ev Event
			if err := ev.Bind("shp-1", []byte(shipment)); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get("f").Eval(&ev)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got.Kind != tc.want.Kind || math.Abs(got.Num-tc.want.Num) > 1e-9 || got.Str != tc.want.Str || got.Int != tc.want.Int {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Distances whose great circles are known in closed form, on the mean Earth radius, to within a
// kilometre.
func TestDistanceKm(t *testing.T) {
	cases := map[string]struct {
		lat1, lon1, lat2, lon2, want float64
	}{
		"equator to pole":          {0, 0, 90, 0, math.Pi / 2 * earthRadiusKm},
		"a quarter of the equator": {0, -45, 0, 45, math.Pi / 2 * earthRadiusKm},
		"one degree of meridian":   {10, 20, 11, 20, math.Pi / 180 * earthRadiusKm},
		"same":                     {10, 10, 10, 10, 0},
		"antipodes on the equator": {0, 0, 0, 180, math.Pi * earthRadiusKm},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := haversineKm(tc.lat1, tc.lon1, tc.lat2, tc.lon2)
			if err != nil || math.Abs(got-tc.want) > 1 {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := haversineKm(91, 0, 0, 0); err == nil || !strings.Contains(err.Error(), "latitude 91") {
		t.Errorf("a latitude of 91: got %v", err)
	}
}

func TestCompileRefuses(t *testing.T) {
	cases := map[string]struct {
		expr     string
		datatype string
		want     string
	}{
		"syntax":          {expr: `event.shipment.mode ==`, want: "Syntax error"},
		"undeclared":      {expr: `shipment.mode == 'ocean' ? 1.0 : 0.0`, want: "undeclared reference to 'shipment'"},
		"string result":   {expr: `'ocean'`, datatype: "FP32", want: "results in string, but the feature must be a number"},
		"bool for int":    {expr: `true`, datatype: "INT64", want: "must be an int"},
		"unknown table":   {expr: `lookup('nope', 'k', 0.5)`, want: `no table "nope"`},
		"computed table":  {expr: `lookup(event.shipment.carrier, 'k', 0.5)`, want: "must be a string literal"},
		"empty":           {expr: `  `, want: "is empty"},
		"too long":        {expr: strings.Repeat("1 + ", 2000) + "1", want: "the limit is 4096"},
		"costly":          {expr: `event.shipment.customs_codes.all(a, event.shipment.customs_codes.all(b, a == b)) ? 1.0 : 0.0`, want: "may cost up to"},
		"wrong arg types": {expr: `math.sin(1)`, want: "no matching overload"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Compile(pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: "risk", Expression: tc.expr}}},
				func(string) string { return tc.datatype })
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `feature "risk"`) {
				t.Errorf("got %v, want an error naming the feature and containing %q", err, tc.want)
			}
		})
	}
}

func TestCompileRefusesSpec(t *testing.T) {
	_, err := Compile(pipelineconfig.Transforms{
		Features: []pipelineconfig.FeatureTransform{{Name: "a", Expression: "1.0"}, {Name: "a", Expression: "2.0"}, {Expression: "1.0"}},
		Tables:   []pipelineconfig.LookupTable{{Name: "t", Values: map[string]string{"k": "fast"}}, {Name: "t"}},
	}, nil)
	for _, want := range []string{`feature "a" has two transforms`, "features[2]: name is empty", `table "t": the value of "k" is "fast"`, `table "t" is declared twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}

func TestEvalFails(t *testing.T) {
	cases := map[string]struct {
		expr, shipment, want string
	}{
		"missing field": {expr: `event.shipment.weather.severity`, shipment: `{}`, want: "no such key: weather"},
		"wrong type":    {expr: `event.shipment.mode * 2.0`, shipment: `{"mode": "air"}`, want: "no such overload"},
		"not a number":  {expr: `event.shipment.mode`, shipment: `{"mode": "air"}`, want: "results in string air; the feature must be a number"},
		"infinite":      {expr: `1.0 / event.shipment.x`, shipment: `{"x": 0}`, want: "a feature must be a finite number"},
		"bad timestamp": {expr: `double(timestamp(event.shipment.t).getMonth())`, shipment: `{"t": "yesterday"}`, want: "Timestamp"},
		"unknown zone":  {expr: `double(timestamp(event.shipment.t).getMonth('Mars/Olympus'))`, shipment: `{"t": "2026-11-27T10:00:00Z"}`, want: "unknown time zone Mars/Olympus"},
		"bad offset":    {expr: `double(timestamp(event.shipment.t).getMonth('+25:00'))`, shipment: `{"t": "2026-11-27T10:00:00Z"}`, want: "neither a zone name nor an offset"},
		"bad latitude":  {expr: `geo.distanceKm(event.shipment.lat, 0.0, 0.0, 0.0)`, shipment: `{"lat": 95}`, want: "latitude 95"},
		"no shipment":   {expr: `event.shipment.x`, want: "no such key: shipment"},
		"runtime cost":  {expr: `double(event.shipment.l.map(a, event.shipment.l.map(b, a + b)).size())`, shipment: `{"l": [` + strings.Repeat(`"aaaaaaaaaa",`, 999) + `"a"]}`, want: "cost"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Compile(pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: "f", Expression: tc.expr}}}, func(string) string { return "FP32" })
			if err != nil {
				if strings.Contains(err.Error(), tc.want) {
					return // refused before it runs: better still
				}
				t.Fatalf("Compile: %v", err)
			}
			var ev Event
			var ship []byte
			if tc.shipment != "" {
				ship = []byte(tc.shipment)
			}
			if err := ev.Bind("e", ship); err != nil {
				t.Fatal(err)
			}
			_, err = s.Get("f").Eval(&ev)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
