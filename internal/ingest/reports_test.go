package ingest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The report API reaches the reporting pod through ingestion over real listeners: paths,
// query and Authorization as the client sent them; its absence or its silence are JSON errors.
func TestReportsAreForwardedToTheReportingPod(t *testing.T) {
	type seen struct{ path, query, auth, method string }
	got := make(chan seen, 8)
	reporting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), r.Method}
		w.Header().Set("Content-Type", "text/csv")
		_, _ = io.WriteString(w, "value,count\nCNSHA-NLRTM,3\n")
	}))
	t.Cleanup(reporting.Close)
	e := newEnv(t, testSpec(100), Config{ReportingURL: reporting.URL})

	for _, path := range []string{"/v1/reports/lane?from=2026-12-01T00:00:00Z&format=csv", "/v1/reports:describe", "/v1/reports", "/v1/reports/lane/CNSHA-NLRTM?bucket=1h"} {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "value,count\nCNSHA-NLRTM,3\n" || resp.Header.Get("Content-Type") != "text/csv" {
			t.Errorf("GET %s: %d %q %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		s := <-got
		u, _ := http.NewRequest(http.MethodGet, path, nil)
		if s.path != u.URL.Path || s.query != u.URL.RawQuery || s.auth != "Bearer s3cret" || s.method != http.MethodGet {
			t.Errorf("GET %s reached the reporting pod as %+v", path, s)
		}
	}
	if a := e.do(t, http.MethodPost, "/v1/reports/lane", "application/json", "", "{}"); a.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %+v", a)
	}
	// The rest of the API is ingestion's own.
	if a := e.do(t, http.MethodGet, "/v1/reportsX", "", "", ""); a.Status != http.StatusNotFound {
		t.Errorf("/v1/reportsX: %+v", a)
	}
	select {
	case s := <-got:
		t.Errorf("forwarded what it must not: %+v", s)
	default:
	}
}

func TestReportsWithoutReporting(t *testing.T) {
	e := newEnv(t, testSpec(100), Config{})
	a := e.do(t, http.MethodGet, "/v1/reports/lane", "", "", "")
	if a.Status != http.StatusNotFound || a.Body["error"] != "this pipeline keeps no reports: its FreightPipeline has no spec.reporting" {
		t.Errorf("%+v", a)
	}
}

// A reporting pod that is down (nothing listens) or does not answer in time is a 503 with
// Retry-After, in JSON.
func TestReportsWhileTheReportingPodIsDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t, testSpec(100), Config{ReportingURL: "http://" + addr})
	a := e.do(t, http.MethodGet, "/v1/reports:riskiest", "", "", "")
	if a.Status != http.StatusServiceUnavailable || a.RetryAfter != "5" || a.Body["error"] != "reports are unavailable: the reporting pod does not answer (no connection); see the FreightPipeline's ReportingReady condition" {
		t.Errorf("%+v", a)
	}
}

func TestReportingURLIsChecked(t *testing.T) {
	for _, bad := range []string{"nats://x:4222", "http://", "http://host:8080/v1", "::"} {
		if _, err := newReportProxy(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
