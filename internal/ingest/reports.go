package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The report API (/v1/reports, /v1/reports/…, /v1/reports:…) is served by the pipeline's
// reporting pod; ingestion forwards it, so that clients read reports on the endpoint, host,
// TLS and port they send events to. The reporting pod checks the token itself: Authorization
// goes through untouched.

// Bounds of a forwarded report request. Report answers are computed from memory: a reporting
// pod that does not answer within them is stuck or gone, and the client gets a 503 it may
// retry rather than a connection held open.
const (
	reportDialTimeout   = 2 * time.Second
	reportAnswerTimeout = 30 * time.Second
	// retryReporting: the reporting pod is one pod, replaced once it is gone; it is back after
	// its snapshot loads.
	retryReporting = 5 * time.Second
)

// isReportPath tells whether path belongs to the report API.
func isReportPath(path string) bool {
	return path == "/v1/reports" || strings.HasPrefix(path, "/v1/reports/") || strings.HasPrefix(path, "/v1/reports:")
}

// newReportProxy forwards report requests to the reporting pod at target (http(s)://host:port);
// with target empty it answers that the pipeline has no reporting.
func newReportProxy(target string) (http.Handler, error) {
	if target == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "this pipeline keeps no reports: its FreightPipeline has no spec.reporting"})
		}), nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("ingest: reporting URL %q is not http(s)://host:port", target)
	}
	transport := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: reportDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: reportAnswerTimeout,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		Transport: transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(r.Context().Err(), context.Canceled) {
				return // the client left; nobody reads an answer
			}
			w.Header().Set("Retry-After", strconv.Itoa(int(retryReporting.Seconds())))
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "reports are unavailable: the reporting pod does not answer (" +
				reportCause(err) + "); see the FreightPipeline's ReportingReady condition"})
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " is not allowed on " + r.URL.Path + "; reports are read with GET"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), reportAnswerTimeout)
		defer cancel()
		proxy.ServeHTTP(w, r.WithContext(ctx))
	}), nil
}

// reportCause says in a few words why the reporting pod did not answer, without the
// cluster-internal address.
func reportCause(err error) string {
	var ne net.Error
	var op *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.As(err, &op) && op.Op == "dial":
		return "no connection"
	}
	return "connection lost"
}
