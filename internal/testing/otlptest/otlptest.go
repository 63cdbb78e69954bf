// Package otlptest is an in-process OTLP/HTTP traces endpoint for tests: it decodes every export
// request the OpenTelemetry exporter sends and keeps the spans, so a test can check what really
// left a process (or a pod) rather than what a fake tracer saw.
package otlptest

import (
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is a received span with the service.name of the resource that sent it.
type Span struct {
	Service string
	*tracepb.Span
}

// Receiver serves POST /v1/traces (protobuf, optionally gzip) and records the spans.
type Receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests int
	spans    []Span
}

// NewReceiver listens on addr (host:port; "" means a free loopback port) until the test ends.
// Malformed export requests fail the test.
func NewReceiver(t testing.TB, addr string) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := r.record(req); err != nil {
			t.Errorf("OTLP receiver: %s %s: %v", req.Method, req.URL.Path, err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("OTLP receiver: %v", err)
		}
		r.srv.Listener.Close()
		r.srv.Listener = ln
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

type badRequest string

func (e badRequest) Error() string { return string(e) }

func (r *Receiver) record(req *http.Request) error {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		return badRequest("not POST /v1/traces")
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return badRequest("content type " + ct)
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return err
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &export); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	for _, rs := range export.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, Span{Service: service, Span: s})
			}
		}
	}
	return nil
}

// URL is the receiver's base URL, what OTEL_EXPORTER_OTLP_ENDPOINT takes.
func (r *Receiver) URL() string { return r.srv.URL }

// Received returns how many export requests arrived and a copy of every span so far.
func (r *Receiver) Received() (requests int, spans []Span) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, append([]Span(nil), r.spans...)
}
