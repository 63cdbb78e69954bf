package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/report/page"
	"github.com/freightcast/freightcast/internal/version"
)

// NewServer builds the reporting role of pipeline cfg (which must have reporting): its service,
// writing a snapshot every interval (0: the default of Options), and the HTTP handler of the API, the clients' page, /livez, /readyz and /metrics (of reg, on
// which the service's collector is registered). `freightcast report` and local mode both run
// the role from here.
func NewServer(js jetstream.JetStream, cfg pipelineconfig.Config, interval time.Duration, reg *prometheus.Registry, log *slog.Logger) (http.Handler, *Service, error) {
	if cfg.Reporting == nil {
		return nil, nil, fmt.Errorf("pipeline %s has no reporting section: nothing to report", cfg.Name)
	}
	svc, err := NewService(js, cfg.Queue, *cfg.Reporting, Options{SnapshotInterval: interval, Log: log})
	if err != nil {
		return nil, nil, err
	}
	var tokens *httpauth.Tokens
	if cfg.Ingestion.TokensFile != "" {
		if tokens, err = httpauth.NewTokens(cfg.Ingestion.TokensFile, log, nil); err != nil {
			return nil, nil, err
		}
	}
	if err := reg.Register(metrics.ReportCollector{Read: svc.Stats}); err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	api := NewAPI(svc, tokens, nil)
	api.Page = page.Handler()
	api.Register(mux)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !svc.Ready() {
			http.Error(w, "not ready: restoring the report snapshot or attaching the consumer", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux, svc, nil
}

// Serve runs the service and the HTTP server until ctx ends, then stops serving and writes a
// last snapshot so that the next start replays little.
func Serve(ctx context.Context, svc *Service, srv *http.Server, ln net.Listener, shutdown time.Duration, log *slog.Logger) error {
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() {
		// Run fails only before it consumes (no NATS, no store yet): retry until stopped.
		for {
			err := svc.Run(runCtx)
			if err == nil || runCtx.Err() != nil {
				runErr <- nil
				return
			}
			log.Warn("reporting cannot consume yet; retrying", "error", err)
			select {
			case <-runCtx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("reporting", "addr", ln.Addr().String(), "version", version.String())
	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			stopRun()
			<-runErr
			return fmt.Errorf("serving HTTP: %w", err)
		}
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdown)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	stopRun()
	<-runErr
	if serr := svc.Snapshot(shutdownCtx); serr != nil {
		log.Warn("writing the last report snapshot", "error", serr)
	}
	log.Info("stopped")
	return err
}
