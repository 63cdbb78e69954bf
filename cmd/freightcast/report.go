package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/report"
	"github.com/freightcast/freightcast/internal/report/page"
	"github.com/freightcast/freightcast/internal/version"
)

// reportConfig is the `freightcast report` command line.
type reportConfig struct {
	addr             string
	pipelineConfig   string
	metricsAddr      string
	shutdownTimeout  time.Duration
	snapshotInterval time.Duration
}

func parseReportFlags(args []string) (reportConfig, error) {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	var c reportConfig
	fs.StringVar(&c.addr, "addr", ":8080", "address of the report API, probes and /metrics")
	fs.StringVar(&c.pipelineConfig, "config", "/etc/freightcast/pipeline/"+pipelineconfig.FileName, "the pipeline config the operator renders (it must have reporting)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", metricsAddrUsage)
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 25*time.Second, "how long in-flight requests and the last snapshot may take on SIGTERM")
	fs.DurationVar(&c.snapshotInterval, "snapshot-interval", 30*time.Second, "how often the aggregates are written to the snapshot store while predictions arrive")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.shutdownTimeout <= 0 || c.snapshotInterval <= 0 {
		return c, fmt.Errorf("--shutdown-timeout and --snapshot-interval must be positive, got %s and %s", c.shutdownTimeout, c.snapshotInterval)
	}
	return c, nil
}

func runReport(ctx context.Context, args []string) error {
	c, err := parseReportFlags(args)
	if err != nil {
		return err
	}
	cfg, err := pipelineconfig.Load(c.pipelineConfig)
	if err != nil {
		return err
	}
	if cfg.Reporting == nil {
		return fmt.Errorf("pipeline config %s has no reporting section: nothing to report", c.pipelineConfig)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("namespace", cfg.Namespace, "pipeline", cfg.Name)
	natsOpts, err := queue.ReportingOptions(cfg.Queue.Topology, cfg.NATSCredentials)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts,
		nats.Name("freightcast-report/"+cfg.Namespace+"/"+cfg.Name),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
	)...)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, svc, err := newReportServer(js, cfg, c.snapshotInterval, reg, log)
	if err != nil {
		return err
	}
	if c.metricsAddr != "" {
		stopMetrics, err := serveMetrics(c.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		handler = withoutMetrics(handler)
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	return serveReport(ctx, svc, httpserver.New(handler, log), ln, c.shutdownTimeout, log)
}

// newReportServer builds the reporting role's HTTP handler (the API, /livez, /readyz, /metrics)
// and its service; local mode builds its own from the same function.
func newReportServer(js jetstream.JetStream, cfg pipelineconfig.Config, interval time.Duration, reg *prometheus.Registry, log *slog.Logger) (http.Handler, *report.Service, error) {
	svc, err := report.NewService(js, cfg.Queue, *cfg.Reporting, report.Options{SnapshotInterval: interval, Log: log})
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
	api := report.NewAPI(svc, tokens, nil)
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

// serveReport runs the service and the HTTP server until ctx ends, then stops serving and
// writes a last snapshot so that the next start replays little.
func serveReport(ctx context.Context, svc *report.Service, srv *http.Server, ln net.Listener, shutdown time.Duration, log *slog.Logger) error {
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
