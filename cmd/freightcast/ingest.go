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
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/version"
)

// ingestConfig is the `freightcast ingest` command line.
type ingestConfig struct {
	addr            string
	pipelineConfig  string
	features        string
	modelFile       string
	modelName       string
	modelVersion    string
	shutdownTimeout time.Duration
}

func parseIngestFlags(args []string) (ingestConfig, error) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var c ingestConfig
	fs.StringVar(&c.addr, "addr", ":8080", "address of the HTTP API, probes and /metrics")
	fs.StringVar(&c.pipelineConfig, "pipeline-config", "/etc/freightcast/pipeline/"+pipelineconfig.FileName, "the pipeline config the operator renders")
	fs.StringVar(&c.features, "features", "", "the model's feature names in model order, comma-separated (default: the pipeline config's model.features)")
	fs.StringVar(&c.modelFile, "model-file", "", "the model file (not read yet: feature names from ONNX metadata come later)")
	fs.StringVar(&c.modelName, "model-name", "", "the model's name, for logs")
	fs.StringVar(&c.modelVersion, "model-version", "", "the model's version, for logs")
	// The operator passes the same model flags to every data-plane pod; ingestion has no use for
	// a model download, but must not refuse to start because of them.
	fs.String("model-uri", "", "ignored by ingest")
	fs.String("model-sha256", "", "ignored by ingest")
	fs.String("model-cache-dir", "", "ignored by ingest")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 25*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.shutdownTimeout <= 0 {
		return c, fmt.Errorf("--shutdown-timeout must be positive, got %s", c.shutdownTimeout)
	}
	return c, nil
}

// resolveFeatures picks the model's feature names: --features (from the model's spec) first,
// then the pipeline config. The model file's metadata is not read yet, so one of the two must
// name them.
func resolveFeatures(flagValue string, fromConfig []string) ([]string, error) {
	if flagValue != "" {
		names := strings.Split(flagValue, ",")
		for i, n := range names {
			names[i] = strings.TrimSpace(n)
			if names[i] == "" {
				return nil, fmt.Errorf("--features %q: name %d is empty", flagValue, i)
			}
		}
		return names, nil
	}
	if len(fromConfig) > 0 {
		return fromConfig, nil
	}
	return nil, errors.New("the model's feature names are required: pass --features or set model.features in the pipeline config " +
		"(reading them from the model file's metadata is not supported yet)")
}

func runIngest(ctx context.Context, args []string) error {
	c, err := parseIngestFlags(args)
	if err != nil {
		return err
	}
	cfg, err := pipelineconfig.Load(c.pipelineConfig)
	if err != nil {
		return err
	}
	features, err := resolveFeatures(c.features, cfg.Model.Features)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("namespace", cfg.Namespace, "pipeline", cfg.Name)
	if c.features != "" && len(cfg.Model.Features) > 0 && !slices.Equal(features, cfg.Model.Features) {
		log.Warn("--features and the pipeline config disagree; using --features", "flag", features, "config", cfg.Model.Features)
	}

	nc, err := nats.Connect(cfg.NATSURL,
		nats.Name("freightcast-ingest/"+cfg.Namespace+"/"+cfg.Name),
		// Start and stay up without NATS: the pod reports not ready until it connects.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// Publishing into a client-side buffer during an outage would hold requests until their
		// deadline; without one they fail at once with 503 and the client retries.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS disconnected", "error", err) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := ingest.New(ingest.Config{
		Conn:         nc,
		Topology:     cfg.Queue.Topology,
		Features:     features,
		MaxBodyBytes: cfg.Ingestion.MaxBodyBytes,
		TokensFile:   cfg.Ingestion.TokensFile,
		RateLimit:    cfg.Ingestion.RateLimit,
		Registry:     reg,
		Logger:       log,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("ingesting", "addr", ln.Addr().String(), "version", version.String(), "stream", cfg.Queue.Stream,
		"subject", cfg.Queue.Subject, "model", c.modelName, "modelVersion", c.modelVersion, "features", features,
		"auth", cfg.Ingestion.TokensFile != "", "rateLimit", cfg.Ingestion.RateLimit)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving HTTP: %w", err)
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight requests get their acks, and only then drop NATS (deferred).
	log.Info("shutting down", "timeout", c.shutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down HTTP: %w", err)
	}
	log.Info("stopped")
	return nil
}
