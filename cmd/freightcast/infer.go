package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/modelsource"
	"github.com/freightcast/freightcast/internal/oip"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/tracing"
	"github.com/freightcast/freightcast/internal/version"
	"github.com/freightcast/freightcast/internal/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// inferOptions are the flags of freightcast infer. The operator starts model-serving pods with
// exactly these names.
type inferOptions struct {
	addr            string
	grpcAddr        string
	modelName       string
	modelVersion    string
	modelFile       string
	modelURI        string
	modelSHA256     string
	modelCacheDir   string
	modelCAFile     string
	features        string
	inputs          string
	maxBatchSize    int
	maxBatchDelay   time.Duration
	maxBodyBytes    int64
	shutdownTimeout time.Duration
	worker          bool
	pipelineConfig  string
	workers         int
	tokensFile      string
	metricsAddr     string
	tls             tlsFiles
	// drainDelay is how long the server keeps serving with readiness false after SIGTERM, so
	// that the pod leaves the Service's endpoints before the listener closes. A fifth of the
	// shutdown timeout, at most 5 s.
	drainDelay time.Duration
	// client downloads --model-uri; nil means modelsource's default. Tests set it to trust
	// their TLS server.
	client *http.Client
	// tracerProvider traces infer requests and worker batches; nil when tracing is off.
	tracerProvider trace.TracerProvider
	// grpcListener serves the OIP over gRPC (from --grpc-addr); nil serves none.
	grpcListener net.Listener
}

func parseInferFlags(args []string) (*inferOptions, error) {
	o := &inferOptions{}
	fs := flag.NewFlagSet("infer", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", ":8080", "listen address of the Open Inference Protocol API and /metrics")
	fs.StringVar(&o.grpcAddr, "grpc-addr", ":8081", "listen address of the Open Inference Protocol over gRPC (inference.GRPCInferenceService and grpc.health.v1), with the same tokens and TLS as --addr; empty serves none (nor does --worker)")
	fs.StringVar(&o.modelName, "model-name", "", "name clients address the model by (required)")
	fs.StringVar(&o.modelVersion, "model-version", "1", "model version")
	fs.StringVar(&o.modelFile, "model-file", "", "path of the ONNX model file")
	fs.StringVar(&o.modelURI, "model-uri", "", "https:// URI of the ONNX model (needs --model-sha256)")
	fs.StringVar(&o.modelSHA256, "model-sha256", "", "hex SHA-256 the model bytes must have")
	fs.StringVar(&o.modelCAFile, "model-ca-file", "", modelCAFlagUsage)
	fs.StringVar(&o.modelCacheDir, "model-cache-dir", "", "directory for downloaded models (default: a directory under the system temp dir)")
	fs.StringVar(&o.features, "features", "", "comma-separated feature names in input column order; must match the model's own list if it declares one")
	fs.StringVar(&o.inputs, "inputs", "", `the model's declared inputs as JSON, [{"name","datatype","shape","features"}] (a PredictionModel's spec.inputs); the model file must agree`)
	fs.IntVar(&o.maxBatchSize, "max-batch-size", 64, "most rows merged into one model run")
	fs.DurationVar(&o.maxBatchDelay, "max-batch-delay", 2*time.Millisecond, "longest a batch waits for requests that are being decoded")
	fs.Int64Var(&o.maxBodyBytes, "max-body-bytes", 4<<20, "largest infer request body accepted")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 25*time.Second, "how long the process may take to exit on SIGTERM: a drain with readiness false (a fifth, at most 5s), then in-flight requests finish")
	fs.BoolVar(&o.worker, "worker", false, "consume the pipeline's queue as an inference pool worker (needs --pipeline-config); the port then serves only the health probes and /metrics")
	fs.StringVar(&o.pipelineConfig, "pipeline-config", "", "the pipeline's config file (pipeline.json), with --worker")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "concurrent queue consumers, with --worker")
	fs.StringVar(&o.tokensFile, "tokens-file", "", "file of accepted bearer tokens, one a line, re-read when it changes; every request but /v2/health/* and /metrics then needs one")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", metricsAddrUsage)
	o.tls.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.modelName == "":
		return nil, errors.New("--model-name is required")
	case o.modelFile != "" && o.modelURI != "":
		return nil, errors.New("give exactly one of --model-file and --model-uri, not both")
	case o.modelFile == "" && o.modelURI == "" && !o.worker:
		// A pool may score through a remote model, which its pipeline config names.
		return nil, errors.New("give exactly one of --model-file and --model-uri")
	case o.maxBatchSize < 1:
		return nil, fmt.Errorf("--max-batch-size %d must be at least 1", o.maxBatchSize)
	case o.maxBatchDelay < 0:
		return nil, fmt.Errorf("--max-batch-delay %v must not be negative", o.maxBatchDelay)
	case o.maxBodyBytes < 1:
		return nil, fmt.Errorf("--max-body-bytes %d must be positive", o.maxBodyBytes)
	case o.worker && o.pipelineConfig == "":
		return nil, errors.New("--worker needs --pipeline-config")
	case !o.worker && o.pipelineConfig != "":
		return nil, errors.New("--pipeline-config is only read with --worker")
	case o.worker && o.tokensFile != "":
		// A pool pod serves no API for a token to guard (see oip.Config.ProbesOnly).
		return nil, errors.New("--tokens-file is not read with --worker: an inference pool pod serves only its probes and /metrics")
	case o.workers < 1:
		return nil, fmt.Errorf("--workers %d must be at least 1", o.workers)
	case o.shutdownTimeout <= 0:
		return nil, fmt.Errorf("--shutdown-timeout %v must be positive", o.shutdownTimeout)
	}
	if err := o.tls.validate(); err != nil {
		return nil, err
	}
	o.drainDelay = min(5*time.Second, o.shutdownTimeout/5)
	return o, nil
}

func runInfer(ctx context.Context, args []string) error {
	o, err := parseInferFlags(args)
	if err != nil {
		return err
	}
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(os.Stderr, nil))).With("component", "infer", "model", o.modelName, "version", o.modelVersion)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	if o.grpcAddr != "" && !o.worker {
		if o.grpcListener, err = net.Listen("tcp", o.grpcAddr); err != nil {
			ln.Close()
			return fmt.Errorf("--grpc-addr: %w", err)
		}
	}
	service := "freightcast-predictor"
	if o.worker {
		service = "freightcast-inference"
	}
	tp, shutdownTracing, err := tracing.Setup(ctx, service, log)
	if err != nil {
		return err
	}
	defer flushTraces(shutdownTracing, log)
	o.tracerProvider = tp
	return serveInfer(ctx, o, ln, log)
}

// serveInfer serves on ln until ctx ends, loading the model in the background so that liveness
// answers at once and readiness turns true when the model is in.
func serveInfer(ctx context.Context, o *inferOptions, ln net.Listener, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.NewInference(reg)
	if err != nil {
		return err
	}
	// Tokens and certificate are read before serving: a missing or unreadable file is a clear
	// startup error, not a server that answers every request with a failure.
	var tokens *httpauth.Tokens
	if o.tokensFile != "" {
		if tokens, err = httpauth.NewTokens(o.tokensFile, log, nil); err != nil {
			return fmt.Errorf("--tokens-file: %w", err)
		}
	}
	cert, err := o.tls.load(log)
	if err != nil {
		return err
	}
	// /metrics on the API port, unless it has a port of its own.
	var gatherer prometheus.Gatherer = reg
	if o.metricsAddr != "" {
		stopMetrics, err := serveMetrics(o.metricsAddr, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
		gatherer = nil
	}
	srv, err := oip.NewServer(oip.Config{
		ModelName:      o.modelName,
		ModelVersion:   o.modelVersion,
		MaxBatchSize:   o.maxBatchSize,
		MaxBatchDelay:  o.maxBatchDelay,
		MaxBodyBytes:   o.maxBodyBytes,
		Metrics:        m,
		Gatherer:       gatherer,
		Logger:         log,
		Tokens:         tokens,
		ProbesOnly:     o.worker,
		TracerProvider: o.tracerProvider,
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	hs := httpserver.New(srv, log)
	served := make(chan error, 1)
	go func() { served <- serveOn(hs, ln, cert) }()
	log.Info("serving the Open Inference Protocol", "addr", ln.Addr().String(), "freightcast", version.String(),
		"tls", cert != nil, "auth", tokens != nil, "probesOnly", o.worker)
	if o.grpcListener != nil {
		var tlsConfig *tls.Config
		if cert != nil {
			tlsConfig = cert.ServerConfig()
		}
		gs := srv.NewGRPCServer(tlsConfig)
		go func() {
			if err := gs.Serve(o.grpcListener); err != nil {
				select {
				case served <- fmt.Errorf("gRPC: %w", err):
				default: // the HTTP server failed first, which is what ends serveInfer
				}
			}
		}()
		// On return, after the HTTP server's shutdown: in-flight calls finish, as HTTP's do,
		// and the gRPC health service has said NOT_SERVING since the drain began.
		defer stopGRPC(gs, o.shutdownTimeout)
		log.Info("serving the Open Inference Protocol over gRPC", "addr", o.grpcListener.Addr().String())
	}

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	var pipeline *pipelineconfig.Config
	if o.worker {
		cfg, err := pipelineconfig.Load(o.pipelineConfig)
		if err != nil {
			return err
		}
		pipeline = &cfg
	}
	var rt model.Runtime
	var remote worker.RemoteModel
	loaded := make(chan error, 1)
	go func() {
		start := time.Now()
		var err error
		if pipeline != nil && pipeline.Model.Remote != nil {
			remote, err = dialRemote(loadCtx, pipeline.Model, log)
			rt = probeRuntime{remote}
		} else if o.modelFile == "" && o.modelURI == "" {
			err = errors.New("the pipeline config names no remote model: give --model-file or --model-uri")
		} else {
			rt, err = loadModel(loadCtx, o)
		}
		if err == nil {
			err = srv.SetModel(rt)
		}
		if err == nil {
			d := time.Since(start)
			m.ModelLoadDuration.Set(d.Seconds())
			meta := rt.Metadata()
			log.Info("model loaded", "duration", d.String(), "inputs", meta.Inputs, "outputs", meta.Outputs, "features", meta.Features, "producer", meta.Producer)
		}
		loaded <- err
	}()

	var pool *workerPool
	select {
	case err := <-loaded:
		if err != nil {
			shutdown(hs, o.shutdownTimeout, log)
			return fmt.Errorf("load model: %w", err)
		}
		if pipeline != nil {
			if pool, err = startWorkerPool(*pipeline, rt, remote, o.workers, reg, log, o.tracerProvider); err != nil {
				shutdown(hs, o.shutdownTimeout, log)
				return err
			}
		}
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if pool != nil {
		// Workers stop first: they finish and acknowledge what they hold while the pod is still
		// up, which is what makes a scale-in lose nothing.
		defer pool.stop()
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("draining: readiness is false, requests are still served", "for", o.drainDelay.String())
	srv.Drain()
	if pool != nil {
		pool.stop()
	}
	select {
	case <-time.After(o.drainDelay):
	case err := <-served:
		return err
	}
	// The drain is part of the shutdown budget, so the whole exit stays within --shutdown-timeout.
	rest := o.shutdownTimeout - o.drainDelay
	log.Info("shutting down", "timeout", rest.String())
	return shutdown(hs, rest, log)
}

// stopGRPC stops gs gracefully, or at once after timeout.
func stopGRPC(gs *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		gs.Stop()
	}
}

func shutdown(hs *http.Server, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		log.Error("shutdown did not finish in-flight requests in time", "err", err)
		return err
	}
	return nil
}

func loadModel(ctx context.Context, o *inferOptions) (*model.Model, error) {
	data, err := fetchModel(ctx, modelsource.Spec{
		Path:     o.modelFile,
		URI:      o.modelURI,
		SHA256:   o.modelSHA256,
		CacheDir: o.modelCacheDir,
		Client:   o.client,
	}, o.modelCAFile)
	if err != nil {
		return nil, err
	}
	var features []string
	if o.features != "" {
		if features, err = model.ParseFeatures(o.features); err != nil {
			return nil, fmt.Errorf("--features: %w", err)
		}
	}
	// The operator checks a model it can read with the same call before rolling it out.
	m, err := modelcheck.Load(data, features)
	if err != nil {
		return nil, err
	}
	if o.inputs != "" {
		if err := checkInputs(o.inputs, m.Metadata()); err != nil {
			return nil, &modelcheck.Unloadable{Kind: modelcheck.Invalid, Err: err}
		}
	}
	return m, nil
}

// declaredInput is one entry of --inputs, a PredictionModel's spec.inputs.
type declaredInput struct {
	Name     string   `json:"name"`
	DataType string   `json:"datatype,omitempty"`
	Shape    []int64  `json:"shape,omitempty"`
	Features []string `json:"features,omitempty"`
}

// checkInputs compares the declared inputs with the model file: each names one of its inputs,
// with its datatype and shape where declared (-1 matches any size), and features that fit it.
// A mismatch stops the pod with both sides named, instead of a model serving other inputs than
// its spec says.
func checkInputs(flag string, meta *model.Metadata) error {
	var declared []declaredInput
	dec := json.NewDecoder(strings.NewReader(flag))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&declared); err != nil {
		return fmt.Errorf("--inputs: %w", err)
	}
	var fed []model.FeatureInput
	for _, d := range declared {
		i := slices.IndexFunc(meta.Inputs, func(t model.TensorInfo) bool { return t.Name == d.Name })
		if i < 0 {
			names := make([]string, len(meta.Inputs))
			for k, t := range meta.Inputs {
				names[k] = t.Name
			}
			return fmt.Errorf("spec.inputs names %q, but the model's inputs are %s", d.Name, strings.Join(names, ", "))
		}
		have := meta.Inputs[i]
		if d.DataType != "" && d.DataType != have.DataType {
			return fmt.Errorf("spec.inputs %q is %s, the model file says %s", d.Name, d.DataType, have.DataType)
		}
		if d.Shape != nil && !shapeFits(d.Shape, have.Shape) {
			return fmt.Errorf("spec.inputs %q has shape %v, the model file says %v", d.Name, d.Shape, have.Shape)
		}
		if len(d.Features) > 0 {
			fed = append(fed, model.FeatureInput{Name: d.Name, DataType: d.DataType, Features: d.Features})
		}
	}
	if len(fed) > 0 {
		if _, err := model.ResolveInputs(nil, fed, meta); err != nil {
			return fmt.Errorf("spec.inputs: %w", err)
		}
	}
	return nil
}

// shapeFits tells whether a declared shape agrees with the model's: same rank, and each
// dimension equal where both are fixed.
func shapeFits(declared, have []int64) bool {
	if len(declared) != len(have) {
		return false
	}
	for i, d := range declared {
		if d >= 0 && have[i] >= 0 && d != have[i] {
			return false
		}
	}
	return true
}
