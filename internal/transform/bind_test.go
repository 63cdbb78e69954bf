package transform

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/jsonscan"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// refBind is how Bind converted an event before it bound objects as reusable map[string]any:
// every object a CEL map of CEL values, new for each event. FuzzBindSameAsCELMaps holds the two
// to the same results.
func refBind(id string, shipment []byte) (*Event, error) {
	root := map[ref.Val]ref.Val{types.String("id"): types.String(id)}
	if shipment != nil {
		var p jsonscan.Scanner
		p.Reset(shipment)
		v, err := refValue(&p, 0)
		if err != nil {
			return nil, fmt.Errorf("shipment: %w", err)
		}
		root[types.String("shipment")] = v
	}
	return &Event{act: activation{event: types.NewRefValMap(types.DefaultTypeAdapter, root)}}, nil
}

func refValue(p *jsonscan.Scanner, depth int) (ref.Val, error) {
	p.SkipSpace()
	if depth > maxDepth {
		return nil, fmt.Errorf("nests deeper than %d levels", maxDepth)
	}
	switch c := p.Peek(); {
	case c == '{':
		m := map[ref.Val]ref.Val{}
		err := p.Object(func(key []byte) error {
			k := types.String(key)
			v, err := refValue(p, depth+1)
			m[k] = v
			return err
		})
		return types.NewRefValMap(types.DefaultTypeAdapter, m), err
	case c == '[':
		var l []ref.Val
		err := p.Array(func() error {
			v, err := refValue(p, depth+1)
			l = append(l, v)
			return err
		})
		return types.NewRefValList(types.DefaultTypeAdapter, l), err
	}
	// Scalars as Bind reads them (a string value interned or not is the same CEL string).
	ev := &Event{scan: *p}
	v, err := ev.scalar()
	*p = ev.scan
	return v, err
}

// diffExpressions read the event every way an expression can: fields, optional fields, presence,
// indexes, whole objects and lists (equality, size, membership, comprehensions, conversions),
// and results of every kind, right or wrong for the input.
var diffExpressions = []string{
	`event.shipment.mode == 'ocean' ? 1.0 : 0.0`,
	`geo.distanceKm(event.shipment.origin.lat, event.shipment.origin.lon, event.shipment.destination.lat, event.shipment.destination.lon)`,
	`lookup('t', event.shipment.carrier, 0.85)`,
	`lookup('t', event.shipment.destination.port, 0.3)`,
	`event.shipment.?weather.?severity.orValue(0.0)`,
	`math.sin(2.0 * math.pi * double(timestamp(event.shipment.departure).getMonth(event.shipment.origin.?tz.orValue('UTC')) + 1) / 12.0)`,
	`math.least(1.0, double(size(event.shipment.?customs_codes.orValue([]))) / 5.0)`,
	`double((timestamp(event.shipment.departure) - timestamp(event.shipment.gate_in)).getMinutes()) / 60.0`,
	`has(event.shipment.weight_kg) ? event.shipment.weight_kg / 1000.0 : 0.0`,
	`event.shipment['mode'] == 'air'`,
	`event.shipment[event.shipment.mode]`,
	`event.shipment[0]`,
	`event.shipment.customs_codes[1]`,
	`event.shipment.customs_codes[1.0]`,
	`event.shipment.legs[0].port`,
	`event.shipment.?legs[0].?port.orValue('none')`,
	`double(size(event.shipment))`,
	`double(size(event.shipment.origin))`,
	`event.shipment.origin == event.shipment.destination`,
	`event.shipment.origin != {'port': 'CNSHA'}`,
	`event.shipment == event.shipment`,
	`'mode' in event.shipment`,
	`'x' in event.shipment.origin`,
	`'8471.30' in event.shipment.customs_codes`,
	`event.shipment.all(k, k.size() < 20)`,
	`event.shipment.exists(k, event.shipment[k] == 'ocean')`,
	`double(event.shipment.filter(k, k.startsWith('d')).size())`,
	`event.shipment.exists_one(k, k == 'mode')`,
	`double(event.shipment.customs_codes.map(c, c.size()).size())`,
	`double(event.shipment.legs.map(l, l.port).size())`,
	`event.shipment.legs.exists(l, l.?port.orValue('') == 'NLRTM')`,
	`'%s'.format([event.shipment.origin])`,
	`'%s %s'.format([event.shipment.customs_codes, event.shipment.mode])`,
	`event.shipment.customs_codes.join(',')`,
	`type(event.shipment) == map`,
	`type(event.shipment.origin.lat) == double`,
	`dyn(event.shipment.origin).lat`,
	`event.shipment.origin`,
	`event.shipment.customs_codes`,
	`event.shipment`,
	`event`,
	`event.id`,
	`event.shipment.mode`,
	`event.shipment.weight_kg`,
	`event.shipment.nothing`,
	`event.shipment.origin.lat.x`,
	`event.shipment.mode.lowerAscii()`,
	`event.shipment.customs_codes + ['x'] == ['x']`,
	`[event.shipment.origin, event.shipment.destination][1].port`,
	`{'a': event.shipment.origin}.a.port`,
	`optional.of(event.shipment).?origin.?lat.orValue(0.0)`,
	`event.?shipment.?origin.hasValue()`,
}

// FuzzBindSameAsCELMaps: every expression above, over any shipment, gives the same value or the
// same error with the event bound as Bind binds it and as CEL maps.
func FuzzBindSameAsCELMaps(f *testing.F) {
	f.Add([]byte(shipment))
	f.Add([]byte(`{"mode":"ocean","origin":{"port":"CNSHA","lat":31.2,"lon":121.4,"tz":"Asia/Shanghai"},"destination":{"port":"NLRTM","lat":51.9,"lon":4.4},` +
		`"gate_in":"2026-11-25T06:00:00+08:00","departure":"2026-11-27T10:00:00+08:00","customs_codes":["8471.30"],"weather":{"severity":0.4},` +
		`"legs":[{"port":"SGSIN"},{"port":"NLRTM","eta":"2026-12-29T12:00:00+01:00"}],"carrier":"Maersk"}`))
	f.Add([]byte(`{"mode":"air","mode":"road","origin":{"port":"NLRTM"},"destination":{"port":"NLRTM"},"legs":[[]],"customs_codes":[1,"a",null,{"b":[true]}]}`))
	f.Add([]byte(`{"ocean":"x","mode":"ocean","d":{},"e":[],"weather":null,"origin":[1,2]}`))
	f.Add([]byte(`[{"port":"x"}, 1]`))
	f.Add([]byte(`"just a string"`))
	f.Add([]byte(`{"origin":{"lat":"31","lon":true},"departure":"2026-13-45T99:00:00Z","gate_in":"x"}`))
	tables := []pipelineconfig.LookupTable{{Name: "t", Values: map[string]string{"Maersk": "0.71", "NLRTM": "0.82"}}}
	var features []*Feature
	for i, e := range diffExpressions {
		features = append(features, compileForDiff(f, fmt.Sprint("f", i), e, tables))
	}
	var ev Event // reused from one input to the next, as ingestion does
	f.Fuzz(func(t *testing.T, ship []byte) {
		want, wantErr := refBind("e-1", ship)
		err := ev.Bind("e-1", ship)
		if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
			t.Fatalf("Bind: got %v, want %v", err, wantErr)
		}
		if err != nil {
			return
		}
		for _, feat := range features {
			got, gotErr := feat.Eval(&ev)
			w, wErr := feat.Eval(want)
			if !sameValue(got, w) || !sameError(gotErr, wErr) {
				t.Errorf("%s: got %+v, %v; want %+v, %v", feat.Expression, got, gotErr, w, wErr)
			}
		}
	})
}

func sameValue(a, b event.Value) bool {
	return a.Kind == b.Kind && math.Float64bits(a.Num) == math.Float64bits(b.Num) && a.Int == b.Int && a.Str == b.Str
}

// sameError: the same error, but for how a result that holds objects prints them (the error
// says the result is not a feature, and what it holds): the keys of a CEL map in the random
// order of Go's maps, before as now, and a map that is the result itself as a Go map of CEL
// values before, with its nested objects in CEL's notation, and now in Go's; and the Go type
// cel-go names when an object is used as a key (`event.shipment[event.shipment.origin]`), and a
// map that strings.join refuses.
func sameError(a, b error) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	if a == nil || a.Error() == b.Error() {
		return true
	}
	return withoutObjects(a.Error()) == withoutObjects(b.Error())
}

func withoutObjects(s string) string {
	// cel-go's strings.join prints the element it refuses, a map in Go's random key order.
	for _, prefix := range []string{"invalid qualifier type: ", "join: invalid input: "} {
		if i := strings.Index(s, prefix); i >= 0 {
			return s[:i+len(prefix)] + "…"
		}
	}
	i := strings.Index(s, "results in ")
	j := strings.LastIndex(s, ";")
	if i < 0 || j < i || !strings.Contains(s[i:j], "{") && !strings.Contains(s[i:j], "map[") {
		return s
	}
	return s[:i] + "results in …" + s[j:]
}

// compileForDiff compiles expr as Compile does, and a comprehension over the event's maps and
// lists, which Compile refuses for its worst-case cost, without the bound.
func compileForDiff(tb testing.TB, name, expr string, tables []pipelineconfig.LookupTable) *Feature {
	s, err := Compile(pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{{Name: name, Expression: expr}}, Tables: tables}, nil)
	if err == nil {
		return s.Get(name)
	}
	if !strings.Contains(err.Error(), "may cost up to") {
		tb.Fatal(err)
	}
	parsed, _ := compileTables(tables)
	env, err := newEnv(parsed)
	if err != nil {
		tb.Fatal(err)
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		tb.Fatal(iss.Err())
	}
	prg, err := env.Program(checked, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		tb.Fatal(err)
	}
	return &Feature{Name: name, Expression: expr, prg: prg}
}

// TestBindReuse: an Event bound again sees only the new event — none of the previous one's
// fields, list elements or objects, whose storage it reuses — and after a failed Bind, none.
func TestBindReuse(t *testing.T) {
	s := mustCompile(t, pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{
		{Name: "weather", Expression: `event.shipment.?weather.?severity.orValue(-1.0)`},
		{Name: "codes", Expression: `double(size(event.shipment.?customs_codes.orValue([])))`},
		{Name: "origin", Expression: `double(size(event.shipment.origin))`},
	}}, nil)
	var ev Event
	eval := func() []string {
		var got []string
		for _, f := range s.Features() {
			v, err := f.Eval(&ev)
			got = append(got, fmt.Sprint(v.Num, err))
		}
		return got
	}
	steps := []struct {
		shipment string
		want     []string
	}{
		{`{"weather": {"severity": 0.4}, "customs_codes": ["a", "b", "c"], "origin": {"port": "CNSHA", "lat": 31.2}}`, []string{"0.4 <nil>", "3 <nil>", "2 <nil>"}},
		{`{"customs_codes": ["d"], "origin": {"tz": "UTC"}}`, []string{"-1 <nil>", "1 <nil>", "1 <nil>"}},
		{`{"origin": {}}`, []string{"-1 <nil>", "0 <nil>", "0 <nil>"}},
	}
	for i, step := range steps {
		if err := ev.Bind(fmt.Sprint("e-", i), []byte(step.shipment)); err != nil {
			t.Fatal(err)
		}
		if got := eval(); fmt.Sprint(got) != fmt.Sprint(step.want) {
			t.Errorf("event %d: got %q, want %q", i, got, step.want)
		}
	}
	if err := ev.Bind("bad", []byte(`{"weather": {"severity": 0.9}, "origin": {`)); err == nil {
		t.Fatal("Bind accepted a truncated shipment")
	}
	for _, got := range eval() {
		if !strings.Contains(got, "no such attribute") {
			t.Errorf("after a failed Bind: got %q, want no event", got)
		}
	}
}
