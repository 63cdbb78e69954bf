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
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/modelsource"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/ratelimit"
	"github.com/freightcast/freightcast/internal/tracing"
	"github.com/freightcast/freightcast/internal/version"
)

// ingestConfig is the `freightcast ingest` command line.
type ingestConfig struct {
	addr            string
	pipelineConfig  string
	features        string
	inputs          string
	modelFile       string
	modelURI        string
	modelSHA256     string
	modelCacheDir   string
	modelCAFile     string
	modelName       string
	modelVersion    string
	shutdownTimeout time.Duration
	metricsAddr     string
	tls             tlsFiles
}

func parseIngestFlags(args []string) (ingestConfig, error) {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	var c ingestConfig
	fs.StringVar(&c.addr, "addr", ":8080", "address of the HTTP API, probes and /metrics")
	fs.StringVar(&c.pipelineConfig, "pipeline-config", "/etc/freightcast/pipeline/"+pipelineconfig.FileName, "the pipeline config the operator renders")
	fs.StringVar(&c.features, "features", "", "the model's feature names in model order, comma-separated (default: the pipeline config's model.features)")
	fs.StringVar(&c.inputs, "inputs", "", "the model's declared inputs as JSON (its spec.inputs), checked against the model file as the serving pods check them")
	fs.StringVar(&c.modelFile, "model-file", "", "the model file; its metadata names the features when neither --features nor the config does, and is checked against them otherwise")
	fs.StringVar(&c.modelName, "model-name", "", "the model's name, for logs")
	fs.StringVar(&c.modelVersion, "model-version", "", "the model's version, for logs")
	fs.StringVar(&c.modelURI, "model-uri", "", "https:// URI of the model, instead of --model-file (needs --model-sha256)")
	fs.StringVar(&c.modelSHA256, "model-sha256", "", "hex SHA-256 the model must have")
	fs.StringVar(&c.modelCAFile, "model-ca-file", "", modelCAFlagUsage)
	fs.StringVar(&c.modelCacheDir, "model-cache-dir", "", "where a downloaded model is kept")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 25*time.Second, "how long in-flight requests may take to finish on SIGTERM")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", metricsAddrUsage)
	c.tls.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := c.tls.validate(); err != nil {
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

// resolveInputs decides what ingestion validates events against: the model's inputs in model
// order, each with its datatype and feature names. The pipeline config declares them (features
// of the one input, or inputs with their features), or --features (the model's spec) does; the
// model file, when given, names the features itself or must agree with the declared ones
// (model.ResolveInputs), so ingestion never accepts events the workers' model would then refuse.
// Without the model file only features of one FP32 input can be declared.
func resolveInputs(ctx context.Context, c ingestConfig, fromConfig pipelineconfig.Model) ([]pipelineconfig.Input, error) {
	declared := fromConfig.Features
	if c.features != "" {
		var err error
		if declared, err = model.ParseFeatures(c.features); err != nil {
			return nil, fmt.Errorf("--features: %w", err)
		}
	}
	if c.modelFile == "" && c.modelURI == "" {
		if len(fromConfig.Inputs) > 0 {
			return nil, errors.New("the pipeline declares model.inputs: give the model (--model-file or --model-uri), whose file orders them")
		}
		if len(declared) == 0 {
			return nil, errors.New("the model's feature names are required: pass --features, set model.features in the pipeline config, " +
				"or give the model (--model-file or --model-uri) whose metadata names them")
		}
		return []pipelineconfig.Input{{DataType: "FP32", Features: declared}}, nil
	}
	data, err := fetchModel(ctx, modelsource.Spec{Path: c.modelFile, URI: c.modelURI, SHA256: c.modelSHA256, CacheDir: c.modelCacheDir}, c.modelCAFile)
	if err != nil {
		return nil, err
	}
	m, err := modelcheck.Load(data, nil)
	if err != nil {
		return nil, err
	}
	if c.inputs != "" {
		if err := checkInputs(c.inputs, m.Metadata()); err != nil {
			return nil, &modelcheck.Unloadable{Kind: modelcheck.Invalid, Err: err}
		}
	}
	inputs, err := model.ResolveInputs(declared, featureInputs(fromConfig.Inputs), m.Metadata())
	if err != nil {
		return nil, &modelcheck.Unloadable{Kind: modelcheck.Invalid, Err: err}
	}
	out := make([]pipelineconfig.Input, len(inputs))
	for i, in := range inputs {
		out[i] = pipelineconfig.Input(in)
	}
	return out, nil
}

// featureInputs is a pipeline config's inputs as the model package takes them.
func featureInputs(inputs []pipelineconfig.Input) []model.FeatureInput {
	out := make([]model.FeatureInput, len(inputs))
	for i, in := range inputs {
		out[i] = model.FeatureInput(in)
	}
	return out
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
	inputs, err := resolveInputs(ctx, c, cfg.Model)
	if err != nil {
		return err
	}
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(os.Stderr, nil))).With("namespace", cfg.Namespace, "pipeline", cfg.Name)
	if c.features != "" && len(cfg.Model.Features) > 0 && !slices.Equal(inputs[0].Features, cfg.Model.Features) {
		log.Warn("--features and the pipeline config disagree; using --features", "flag", inputs[0].Features, "config", cfg.Model.Features)
	}

	// Credentials, TLS, and replies under the pipeline's own inbox prefix, the only one its NATS
	// permissions let it subscribe to.
	natsOpts, err := queue.PipelineOptions(cfg.Queue.Topology, cfg.NATSCredentials)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATSURL, append(natsOpts,
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
	)...)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()

	// The pipeline's rate limit is shared by its ingestion pods: each announces itself and takes
	// the limit divided by the pods it hears. Stopped after the HTTP server (deferred before
	// it), so the goodbye leaves no gap where the others already took over this pod's share.
	var peers func() int
	if cfg.Ingestion.RateLimit != nil {
		p, err := ratelimit.StartPeers(ratelimit.PeersConfig{Conn: nc, Subject: cfg.Queue.PeersSubject(),
			Fallback: ratelimit.MaxIngestionPods, Logger: log})
		if err != nil {
			return err
		}
		defer p.Stop()
		peers = p.Count
	}

	tp, shutdownTracing, err := tracing.Setup(ctx, "freightcast-ingest", log)
	if err != nil {
		return err
	}
	// Runs after the HTTP server's shutdown, so the last requests' spans are exported too.
	defer flushTraces(shutdownTracing, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := ingest.New(ingest.Config{
		Conn:         nc,
		Topology:     cfg.Queue.Topology,
		Inputs:       inputs,
		Transforms:   cfg.Transforms,
		MaxBodyBytes: cfg.Ingestion.MaxBodyBytes,
		TokensFile:   cfg.Ingestion.TokensFile,
		RateLimit:    cfg.Ingestion.RateLimit,
		ReportingURL: cfg.Ingestion.ReportingURL,
		Peers:        peers,
		Registry:     reg,
		Logger:       log,

		TracerProvider: tp,
	})
	if err != nil {
		return err
	}

	cert, err := c.tls.load(log)
	if err != nil {
		return err
	}
	var handler http.Handler = h
	if c.metricsAddr != "" {
		stopMetrics, err := serveMetrics(c.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		handler = withoutMetrics(h)
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	srv := httpserver.New(handler, log)
	log.Info("ingesting", "addr", ln.Addr().String(), "version", version.String(), "stream", cfg.Queue.Stream,
		"subject", cfg.Queue.Subject, "model", c.modelName, "modelVersion", c.modelVersion, "inputs", inputs,
		"auth", cfg.Ingestion.TokensFile != "", "tls", cert != nil, "rateLimit", cfg.Ingestion.RateLimit, "tracing", tp != nil)
	serveErr := make(chan error, 1)
	go func() { serveErr <- serveOn(srv, ln, cert) }()

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

// flushTraces exports the spans still buffered, waiting at most 5 s for the collector.
func flushTraces(shutdown func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("flushing traces", "error", err)
	}
}
