package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// typedInputs is a model of four inputs: FP32 columns, an INT64 id, a BOOL flag and a BYTES lane.
var typedInputs = []pipelineconfig.Input{
	{Name: "numeric", DataType: "FP32", Features: []string{"distance_km", "weather_severity"}},
	{Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}},
	{Name: "hazmat", DataType: "BOOL", Features: []string{"hazardous"}},
	{Name: "lane", DataType: "BYTES", Features: []string{"lane"}},
}

// A model of typed inputs gets a v2 message: each feature in its input's type, in the order
// of the inputs, an INT64 beyond 2^53 with every digit.
func TestTypedFeaturesAreQueuedExactly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testSpec(100), Config{Inputs: typedInputs})
	body := `{"id":"t1","features":{"lane":"CNSHA-NLRTM","hazardous":true,"mode":9007199254740993,"weather_severity":3,"distance_km":1200.5}}`
	if a := e.post(t, ctJSON, body); a.Status != 202 {
		t.Fatalf("post: %+v", a)
	}
	s, err := e.js.Stream(context.Background(), e.spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := event.Decode(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	got.ReceivedAt = time.Time{}
	want := event.Event{ID: "t1", Values: []event.Value{event.NumberValue(1200.5), event.NumberValue(3),
		event.IntValue(9007199254740993), event.BoolValue(true), event.StringValue("CNSHA-NLRTM")}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queued event (-want +got):\n%s\nmessage %s", diff, m.Data)
	}
}

// Each feature is checked against the type of the input it feeds; the 400 names the field and
// the input, and nothing of the body is queued.
func TestTypedFeaturesRefusedByTheirInputType(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testSpec(100), Config{Inputs: typedInputs})
	const rest = `"distance_km":1200.5,"weather_severity":3,"hazardous":false,"lane":"x","mode":2`
	cases := map[string]struct{ feature, field, want string }{
		"INT64 fraction":    {`"mode":2.5`, "features.mode", `is 2.5, not an integer, which INT64 holds, the type of the model's input "transport_mode"`},
		"INT64 beyond":      {`"mode":1e30`, "features.mode", `is 1e30, beyond INT64's -9223372036854775808 to 9223372036854775807, the type of the model's input "transport_mode"`},
		"INT64 string":      {`"mode":"air"`, "features.mode", "is a string; features are JSON numbers (NaN and Infinity are not accepted)"},
		"BOOL number":       {`"hazardous":7`, "features.hazardous", `is 7; the model's input "hazmat" is BOOL, which holds true or false`},
		"BOOL string":       {`"hazardous":"yes"`, "features.hazardous", `is not true or false, which the model's input "hazmat" (BOOL) takes`},
		"BYTES number":      {`"lane":12`, "features.lane", `is not a string; the model's input "lane" takes strings (BYTES)`},
		"BYTES null":        {`"lane":null`, "features.lane", `is not a string; the model's input "lane" takes strings (BYTES)`},
		"FP32 beyond range": {`"distance_km":1e300`, "features.distance_km", `is 1e300, beyond the range of FP32 (±3.4028235e+38), the type of the model's input "numeric"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			body := `[{"id":"ok","features":{` + rest + `}},{"id":"bad","features":{` + tc.feature + `,` + rest + `}}]`
			got := e.post(t, ctJSON, body)
			want := answer{Status: 400, Body: map[string]any{"error": tc.want, "index": 1.0, "field": tc.field}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	s, err := e.js.Stream(context.Background(), e.spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(context.Background()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("stream holds %d messages (%v), want none", info.State.Msgs, err)
	}
}
