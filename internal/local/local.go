// Package local runs whole pipelines in one process: an embedded nats-server with JetStream, and
// for each pipeline its ingestion API, its model's Open Inference Protocol API, its workers and,
// with reporting, its reporting role — the same packages the operator's pods run, wired together
// without Kubernetes. It is what
// `freightcast run` (and `make run`) starts.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/httpserver"
	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oip"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/report"
	"github.com/freightcast/freightcast/internal/scaler"
	"github.com/freightcast/freightcast/internal/worker"
)

// Model is a loaded model to serve over the Open Inference Protocol.
type Model struct {
	Name, Version string
	Runtime       model.Runtime
	MaxBatchSize  int
	MaxBatchDelay time.Duration
	// TokensFile, when set, holds the bearer tokens every request but the health probes and
	// /metrics needs, one a line, re-read when it changes (spec.auth).
	TokensFile string
}

// Pipeline is one pipeline to run. Config.NATSURL and Config.Ingestion.ReportingURL are ignored:
// local mode uses its own server, and its own reporting role when Config.Reporting is set.
type Pipeline struct {
	Config pipelineconfig.Config
	// Model is the runtime of the pipeline's model; Inputs its inputs with the features each
	// takes, in model order (model.ResolveInputs), or Features, the resolved feature names of
	// a model of one input.
	Model    model.Runtime
	Inputs   []model.FeatureInput
	Features []string
	// Autoscale sizes the pipeline's workers from its queue depth every PollInterval, with the
	// recommender the operator uses for inference pools; Options.Workers > 0 fixes the count
	// instead.
	Autoscale    autoscale.Policy
	PollInterval time.Duration
}

// Options configure Run.
type Options struct {
	// DataDir is where JetStream keeps its files; events survive a restart on the same dir.
	DataDir string
	// MaxStore is the embedded JetStream's store in bytes (max_file_store), which pipelines
	// reserve their streams' maxBytes from; 0 leaves JetStream's default, 75 % of the disk free
	// under DataDir.
	MaxStore int64
	// NATSAddr is the embedded server's client address ("127.0.0.1:4222").
	NATSAddr string
	// IngestAddr and InferAddr are the first listen addresses of the ingestion and OIP APIs;
	// further pipelines and models take the next ports.
	IngestAddr, InferAddr string
	// ReportAddr is where the reporting role of the first pipeline with reporting listens; the
	// i-th pipeline's takes its port plus i, as its ingestion does. Empty: any free loopback port.
	ReportAddr string
	// Workers, when positive, fixes the number of workers per pipeline; zero lets each
	// pipeline's autoscaling policy size them.
	Workers int
	// Out receives the endpoint summary a person reads; Logger the logs.
	Out    io.Writer
	Logger *slog.Logger
	// Ready, when set, is called with the endpoints once everything serves.
	Ready func(Endpoints)
	// OnScale, when set, is called after a pipeline's autoscaled workers change in number.
	OnScale func(pipeline string, from, to int32, reason string)
	// TracerProvider, when set, traces ingestion, workers and the OIP servers; nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Endpoints are the URLs Run serves.
type Endpoints struct {
	NATS string
	// Ingest and Infer map pipeline and model names to their base URLs; Reports the names of
	// the pipelines with reporting to their reporting role's (which their ingestion forwards
	// /v1/reports… to, as in a cluster).
	Ingest  map[string]string
	Infer   map[string]string
	Reports map[string]string
}

// Run starts everything and serves until ctx is cancelled, then stops in order: ingestion first
// (nothing new comes in), then the workers (they finish their batches), then the reporting roles
// (each writes its last snapshot), then the OIP servers, then NATS.
func Run(ctx context.Context, opts Options, models []Model, pipelines []Pipeline) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Workers < 0 {
		return fmt.Errorf("local: workers must not be negative, got %d", opts.Workers)
	}
	ns, err := startNATS(opts.NATSAddr, opts.DataDir, opts.MaxStore)
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	r, err := newRun(ctx, opts, ns.ClientURL())
	if err != nil {
		return err
	}
	r.store = queue.StoreLimit{PerServer: ns.JetStreamConfig().MaxStore, Servers: 1}
	defer r.close()
	for i, m := range models {
		if err := r.serveModel(i, m); err != nil {
			return err
		}
	}
	for i, p := range pipelines {
		if err := r.runPipeline(ctx, i, p); err != nil {
			return err
		}
	}

	printEndpoints(opts.Out, r.eps)
	if opts.Ready != nil {
		opts.Ready(r.eps)
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-r.failed:
	}
	r.shutdown()
	return runErr
}

// run is what one Run started, and what it must stop.
type run struct {
	opts Options
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	eps  Endpoints
	// failed holds the first failure of a server or worker; see report.
	failed chan error
	// bodies is the process's one budget of request bodies in memory, shared by every
	// ingestion and model server it runs, as a pod's is by its one server.
	bodies *httpbody.Budget

	oipServers []*oip.Server
	models     []*http.Server // the OIP servers' listeners
	ingest     []*http.Server

	// Workers outlive ctx until shutdown stops them, after ingestion, so that they finish
	// what was accepted.
	workersCtx  context.Context
	stopWorkers context.CancelFunc
	autoscalers sync.WaitGroup
	pools       []*worker.Pool
	// Reporting roles outlive ctx until shutdown stops them, after the workers, so that their
	// last snapshot covers every prediction; each has a NATS connection of its own, as the pod.
	reportsCtx  context.Context
	stopReports context.CancelFunc
	reports     sync.WaitGroup
	reportConns []*nats.Conn
	// store is the embedded server's JetStream store.
	store queue.StoreLimit
}

// newRun connects to the embedded NATS.
func newRun(ctx context.Context, opts Options, natsURL string) (*run, error) {
	nc, err := nats.Connect(natsURL, nats.Name("freightcast-run"), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		return nil, fmt.Errorf("local: connecting to the embedded NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	r := &run{opts: opts, log: opts.Logger, nc: nc, js: js, failed: make(chan error, 1), bodies: httpbody.BudgetFromMemoryLimit(),
		eps: Endpoints{NATS: natsURL, Ingest: map[string]string{}, Infer: map[string]string{}, Reports: map[string]string{}}}
	r.workersCtx, r.stopWorkers = context.WithCancel(context.WithoutCancel(ctx))
	r.reportsCtx, r.stopReports = context.WithCancel(context.WithoutCancel(ctx))
	return r, nil
}

// report hands a failure to Run, which stops at the first and reads no other. Every server and
// every worker reports here, workers in numbers the autoscaler decides, so a report must never
// block: a worker stuck on it would hang the shutdown's wait for the workers. Once an error
// waits unread, later ones are only logged.
func (r *run) report(err error) {
	select {
	case r.failed <- err:
	default:
		r.log.Error("local: a further failure", "error", err)
	}
}

// serve serves h on addr's port plus offset, adds the server to the list it is shut down with
// and returns its URL.
func (r *run) serve(addr string, offset int, h http.Handler, list *[]*http.Server) (string, error) {
	ln, err := listenOffset(addr, offset)
	if err != nil {
		return "", err
	}
	hs := httpserver.New(h, r.log)
	*list = append(*list, hs)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.report(err)
		}
	}()
	return "http://" + ln.Addr().String(), nil
}

// serveModel serves the i-th model over the Open Inference Protocol.
func (r *run) serveModel(i int, m Model) error {
	reg := prometheus.NewRegistry()
	im, err := metrics.NewInference(reg)
	if err != nil {
		return err
	}
	var tokens *httpauth.Tokens
	if m.TokensFile != "" {
		if tokens, err = httpauth.NewTokens(m.TokensFile, r.log, nil); err != nil {
			return fmt.Errorf("local: model %s: %w", m.Name, err)
		}
	}
	srv, err := oip.NewServer(oip.Config{Tokens: tokens, TracerProvider: r.opts.TracerProvider, ModelName: m.Name, ModelVersion: m.Version, MaxBatchSize: m.MaxBatchSize,
		MaxBatchDelay: m.MaxBatchDelay, MaxBodyBytes: 4 << 20, BodyBudget: r.bodies, Metrics: im, Gatherer: reg, Logger: r.log.With("model", m.Name)})
	if err != nil {
		return err
	}
	r.oipServers = append(r.oipServers, srv)
	if err := srv.SetModel(m.Runtime); err != nil {
		return fmt.Errorf("local: model %s: %w", m.Name, err)
	}
	url, err := r.serve(r.opts.InferAddr, i, srv, &r.models)
	if err != nil {
		return err
	}
	r.eps.Infer[m.Name] = url
	return nil
}

// runPipeline provisions the i-th pipeline's queue and starts its ingestion and its workers.
func (r *run) runPipeline(ctx context.Context, i int, p Pipeline) error {
	cfg := p.Config
	log := r.log.With("pipeline", cfg.Name)
	// What local mode cannot honour is refused by name rather than ignored.
	switch {
	case cfg.Queue.Replicas > 1:
		return fmt.Errorf("local: pipeline %s: spec.queue.replicas is %d, but local mode runs one embedded NATS server: leave it unset or set 1", cfg.Name, cfg.Queue.Replicas)
	case !cfg.NATSCredentials.IsZero():
		return fmt.Errorf("local: pipeline %s: spec.queue.credentials and spec.queue.tls name Secrets of a cluster; local mode runs its own NATS without authentication or TLS: remove them for a local run", cfg.Name)
	}
	if _, err := queue.Provision(ctx, r.js, cfg.Queue, queue.WithStoreLimit(r.store)); err != nil {
		if errors.Is(err, queue.ErrInsufficientStorage) {
			return fmt.Errorf("local: pipeline %s does not fit in the embedded NATS store of %s (--store-size; by default 75 %% of the disk free under --data-dir): %w",
				cfg.Name, queue.FormatBytes(r.store.PerServer), err)
		}
		return fmt.Errorf("local: provisioning pipeline %s: %w", cfg.Name, err)
	}
	if p.Inputs == nil {
		var err error
		if p.Inputs, err = model.ResolveInputs(p.Features, nil, p.Model.Metadata()); err != nil {
			return fmt.Errorf("local: pipeline %s: %w", cfg.Name, err)
		}
	}
	inputs := make([]pipelineconfig.Input, len(p.Inputs))
	for k, in := range p.Inputs {
		inputs[k] = pipelineconfig.Input(in)
	}
	reportingURL := ""
	if cfg.Reporting != nil {
		var err error
		if reportingURL, err = r.runReporting(i, cfg, log); err != nil {
			return fmt.Errorf("local: pipeline %s reporting: %w", cfg.Name, err)
		}
	}
	reg := prometheus.NewRegistry()
	h, err := ingest.New(ingest.Config{TracerProvider: r.opts.TracerProvider, Conn: r.nc, Topology: cfg.Queue.Topology, Inputs: inputs, Transforms: cfg.Transforms,
		MaxBodyBytes: cfg.Ingestion.MaxBodyBytes, BodyBudget: r.bodies, TokensFile: cfg.Ingestion.TokensFile, RateLimit: cfg.Ingestion.RateLimit,
		ReportingURL: reportingURL, Registry: reg, Logger: log})
	if err != nil {
		return fmt.Errorf("local: pipeline %s: %w", cfg.Name, err)
	}
	url, err := r.serve(r.opts.IngestAddr, i, h, &r.ingest)
	if err != nil {
		return err
	}
	r.eps.Ingest[cfg.Name] = url

	wm, err := metrics.NewWorker(reg)
	if err != nil {
		return err
	}
	wp, err := worker.NewPool(r.workersCtx, worker.PoolConfig{
		New: func(int) (*worker.Worker, error) {
			return worker.New(worker.Config{TracerProvider: r.opts.TracerProvider, JetStream: r.js, Topology: cfg.Queue.Topology, Model: p.Model, Inputs: p.Inputs,
				ModelName: cfg.Model.Name, ModelVersion: cfg.Model.Version, BatchSize: cfg.Inference.BatchSize,
				MaxDeliver: cfg.Queue.MaxDeliver, RecordInputs: cfg.Output.RecordInputs, Metrics: wm, PipelineName: cfg.Name, Logger: log})
		},
		OnError: func(_ int, err error) { r.report(fmt.Errorf("pipeline %s worker: %w", cfg.Name, err)) },
	})
	if err != nil {
		return err
	}
	r.pools = append(r.pools, wp)
	if r.opts.Workers > 0 {
		if err := wp.Resize(r.opts.Workers); err != nil {
			return fmt.Errorf("local: pipeline %s: %w", cfg.Name, err)
		}
		return nil
	}
	sampler, err := scaler.New(p.Autoscale, p.PollInterval)
	if err != nil {
		return fmt.Errorf("local: pipeline %s autoscaling: %w", cfg.Name, err)
	}
	pool := &workerPool{pool: wp, name: cfg.Name, onScale: r.opts.OnScale}
	r.autoscalers.Go(func() {
		pool.autoscale(r.workersCtx, scaler.ConsumerLag(r.js, cfg.Queue.Topology), sampler, p.PollInterval, log)
	})
	return nil
}

// runReporting starts the i-th pipeline's reporting role as `freightcast report` runs it
// (report.NewServer and report.Serve, connected as the reporting role connects) and returns its
// URL. Its snapshots go to the pipeline's report store in the embedded JetStream, under DataDir,
// so a restart on the same directory resumes from the last one.
func (r *run) runReporting(i int, cfg pipelineconfig.Config, log *slog.Logger) (string, error) {
	log = log.With("role", "reporting")
	natsOpts, err := queue.ReportingOptions(cfg.Queue.Topology, cfg.NATSCredentials)
	if err != nil {
		return "", err
	}
	nc, err := nats.Connect(r.eps.NATS, append(natsOpts, nats.Name("freightcast-run/report/"+cfg.Name), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))...)
	if err != nil {
		return "", fmt.Errorf("connecting to the embedded NATS: %w", err)
	}
	r.reportConns = append(r.reportConns, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	handler, svc, err := report.NewServer(js, cfg, 0, prometheus.NewRegistry(), log) // 0: the pod's snapshot interval
	if err != nil {
		return "", err
	}
	addr := r.opts.ReportAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := listenOffset(addr, i)
	if err != nil {
		return "", err
	}
	url := "http://" + ln.Addr().String()
	r.eps.Reports[cfg.Name] = url
	r.reports.Go(func() {
		if err := report.Serve(r.reportsCtx, svc, httpserver.New(handler, log), ln, 25*time.Second, log); err != nil {
			r.report(fmt.Errorf("pipeline %s reporting: %w", cfg.Name, err))
		}
	})
	return url, nil
}

// shutdown stops ingestion, then the workers, once they drained, then the reporting roles, once
// they wrote their last snapshot, then the model servers.
func (r *run) shutdown() {
	shutdownAll(r.ingest)
	r.stopWorkers()
	r.autoscalers.Wait()
	for _, wp := range r.pools {
		wp.Wait()
	}
	r.stopReports()
	r.reports.Wait()
	shutdownAll(r.models)
}

// close releases what Run holds, also when it returns early: workers are cancelled (not waited
// for), reporting roles stopped (their last snapshot written while NATS still runs), the
// listeners closed (after a start that failed half-way, the servers already started would
// otherwise keep their ports for the life of the process), the OIP servers closed, NATS
// disconnected.
func (r *run) close() {
	r.stopWorkers()
	r.stopReports()
	r.reports.Wait()
	for _, s := range slices.Concat(r.ingest, r.models) {
		_ = s.Close()
	}
	for _, s := range r.oipServers {
		s.Close()
	}
	for _, nc := range r.reportConns {
		nc.Close()
	}
	r.nc.Close()
}

func shutdownAll(list []*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	for _, s := range list {
		_ = s.Shutdown(ctx)
	}
}

func startNATS(addr, dataDir string, maxStore int64) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("local: NATS address %q: %w", addr, err)
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, fmt.Errorf("local: NATS port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("local: data dir: %w", err)
	}
	if port != server.RANDOM_PORT {
		// nats-server listens in its own goroutine and, without a log, keeps why it could not
		// to itself; a listen of our own first names the cause ("address already in use").
		ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("local: the embedded NATS cannot listen: %w", err)
		}
		_ = ln.Close()
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, JetStream: true, StoreDir: dataDir, JetStreamMaxStore: maxStore, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, fmt.Errorf("local: NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("local: the embedded NATS did not start on %s", addr)
	}
	return ns, nil
}

// listenOffset listens on addr's port plus offset (port 0 stays 0: any free port).
func listenOffset(addr string, offset int) (net.Listener, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("local: address %q: %w", addr, err)
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, fmt.Errorf("local: address %q: %w", addr, err)
	}
	if port != 0 {
		port += offset
	}
	return net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
}

func printEndpoints(w io.Writer, eps Endpoints) {
	fmt.Fprintf(w, "\nFreightcast is running (Ctrl-C stops it).\n\n  NATS JetStream: %s\n", eps.NATS)
	for name, url := range eps.Ingest {
		fmt.Fprintf(w, "\n  pipeline %s\n    send events:     curl -XPOST %s/v1/events -H 'Content-Type: application/json' -d @models/freight-delay-risk.events.json\n    read prediction: curl %s/v1/predictions/EVENT_ID\n    metrics:         %s/metrics\n", name, url, url, url)
		if rep, ok := eps.Reports[name]; ok {
			fmt.Fprintf(w, "    reports:         curl %s/v1/reports:describe   (the page: %s/v1/reports/)\n    reporting role:  %s (its /metrics, /readyz)\n", url, url, rep)
		}
	}
	for name, url := range eps.Infer {
		fmt.Fprintf(w, "\n  model %s (Open Inference Protocol v2)\n    metadata: curl %s/v2/models/%s\n    infer:    curl -XPOST %s/v2/models/%s/infer -H 'Content-Type: application/json' -d @models/freight-delay-risk.request.json\n", name, url, name, url, name)
	}
	fmt.Fprintln(w)
}

// workerPool is one pipeline's workers in this process, resized as pods would be.
type workerPool struct {
	pool    *worker.Pool
	name    string
	onScale func(pipeline string, from, to int32, reason string)
}

// autoscale samples the queue every interval and sizes the pool with the operator's loop body
// (internal/scaler), until ctx ends.
func (wp *workerPool) autoscale(ctx context.Context, read scaler.Reader, sampler *scaler.Sampler, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		current := int32(wp.pool.Size())
		d := sampler.Sample(ctx, read, time.Now(), current, current).Decision
		if d.Desired != current {
			log.Info("scaling workers", "from", current, "to", d.Desired, "reason", d.Reason)
			if err := wp.pool.Resize(int(d.Desired)); err != nil {
				log.Error("scaling workers", "error", err)
			} else if wp.onScale != nil {
				wp.onScale(wp.name, current, d.Desired, d.Reason)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
