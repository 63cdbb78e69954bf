package oip

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestInferServerSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ts := newTestServer(t, true, func(c *Config) { c.TracerProvider = tp })
	body := `{"inputs":[{"name":"features","shape":[2,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `,` + jsonNumbers(featureRow(1)) + `]}]}`
	post := func(body, traceparent string) int {
		req, err := http.NewRequest(http.MethodPost, ts.URL+"/v2/models/freight/infer", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(body, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); code != 200 {
		t.Fatalf("infer: %d", code)
	}
	if code := post(`{"inputs":[]}`, ""); code != 400 {
		t.Fatalf("bad infer: %d", code)
	}
	// Probes and metadata are not traced.
	ts.do(t, http.MethodGet, "/v2/health/ready", "", "")
	ts.do(t, http.MethodGet, "/v2/models/freight", "", "")

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want one per infer request", len(spans))
	}
	ok, bad := spans[0], spans[1]
	wantTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if ok.Name() != "POST /v2/models/{model}/infer" || ok.SpanKind() != trace.SpanKindServer || ok.SpanContext().TraceID() != wantTrace {
		t.Errorf("span %q kind %v trace %v: want the server span in the client's trace", ok.Name(), ok.SpanKind(), ok.SpanContext().TraceID())
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[string]any {
		m := map[string]any{}
		for _, a := range s.Attributes() {
			m[string(a.Key)] = a.Value.AsInterface()
		}
		return m
	}
	want := map[string]any{
		"http.request.method": "POST", "http.route": "/v2/models/{model}/infer", "url.path": "/v2/models/freight/infer",
		"http.response.status_code": int64(200), "freightcast.model.name": "freight", "freightcast.model.version": "1",
		"freightcast.request.rows": int64(2), "freightcast.batch.rows": int64(2), "freightcast.batch.requests": int64(1),
	}
	if diff := cmp.Diff(want, attrs(ok)); diff != "" {
		t.Errorf("attributes (-want +got):\n%s", diff)
	}
	if got := attrs(bad)[string(attribute.Key("http.response.status_code"))]; got != int64(400) || bad.Parent().IsValid() {
		t.Errorf("bad request span: status %v, parent %v; want 400 and a root span", got, bad.Parent())
	}
}
