package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metricsAddrUsage is the --metrics-addr flag of the data-plane servers.
const metricsAddrUsage = "address of a listener of its own for /metrics (plain HTTP), so that a NetworkPolicy can admit the scraper to it and clients to --addr only; empty serves /metrics on --addr"

// serveMetrics serves g's /metrics on addr until stop, which waits at most a few seconds for a
// scrape in flight.
func serveMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("serving /metrics", "addr", addr, "error", err)
		}
	}()
	log.Info("serving /metrics", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

// withoutMetrics answers 404 for /metrics on the API port once it is served on a port of its own.
func withoutMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"/metrics is served on the metrics port"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
