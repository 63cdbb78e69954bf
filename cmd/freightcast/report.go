package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/report"
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
	handler, svc, err := report.NewServer(js, cfg, c.snapshotInterval, reg, log)
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
	return report.Serve(ctx, svc, httpserver.New(handler, log), ln, c.shutdownTimeout, log)
}
