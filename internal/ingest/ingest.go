// Package ingest is the HTTP front of a pipeline: it accepts freight events, validates them
// against the model's feature names and queues them on the pipeline's NATS JetStream stream, and
// serves the predictions the inference pool stores. It knows nothing of Kubernetes.
//
// Guarantees, in the words of the data path contract:
//   - Nothing rejected is half-written: a body is parsed and every event validated before the
//     first publish; a 4xx answer means nothing of that body was queued.
//   - Nothing accepted is lost: 202 is sent only after the stream acknowledged every event of
//     the body, so "accepted" means stored on the server.
//   - Retrying is safe: the NATS message id is the event id, so the stream drops an event it
//     already holds (within its duplicate window) and the answer counts it as a duplicate. When
//     a publish fails halfway, the 503 says how many were stored, and how many were sent but not
//     acknowledged (unconfirmed: they may be stored); the client retries the whole body and the
//     stored ones come back as duplicates.
//
// See docs/ingestion.md for the client-facing reference.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/ratelimit"
	"github.com/freightcast/freightcast/internal/tracing"
)

// maxPendingAcks bounds the events published and not yet acknowledged, across all requests
// of the pod: about 4 MiB of messages held for a possible resend.
const maxPendingAcks = 16384

// DefaultPublishTimeout bounds how long a request waits for the stream's acknowledgements.
const DefaultPublishTimeout = 3 * time.Second

// Config is what a Handler needs. Conn, Registry and Features are required.
type Config struct {
	// Conn is the NATS connection. Create it with nats.ReconnectBufSize(-1) so that a publish
	// during a reconnect fails at once (503) instead of waiting in a client-side buffer, and
	// with nats.MaxReconnects(-1) so that the pod heals when the server comes back.
	Conn *nats.Conn
	// Topology names the stream and subject events go to and the predictions bucket.
	Topology queue.Topology
	// Features are the model's feature names, in model order.
	Features []string
	// InputType is the OIP datatype of the model input the features feed; a feature value it
	// cannot hold is refused. Empty means FP32, what the inference pool feeds its models.
	InputType string
	// Inputs, when set, replaces Features and InputType for a model of several inputs, or of
	// an input other than FP32 and FP64: the model's inputs with their datatypes and features,
	// in the model's input order (model.ResolveInputs). Each feature value is checked against
	// the datatype of the input it feeds.
	Inputs []pipelineconfig.Input
	// Transforms compute the features an event does not carry from the raw event
	// (internal/transform); an event that carries a feature keeps its value.
	Transforms pipelineconfig.Transforms
	// MaxBodyBytes caps a request body (413 above it).
	MaxBodyBytes int64
	// BodyBudget bounds the body bytes in memory across the process's requests (503 when it
	// is spent); nil sizes one from the Go memory limit (httpbody.BudgetFromMemoryLimit).
	BodyBudget *httpbody.Budget
	// TokensFile, when set, holds the accepted bearer tokens, one a line with the client each
	// names (httpauth.ParseLine); it is re-read when it changes. Empty means no authentication,
	// and every caller reads every client's data.
	TokensFile string
	// RateLimit, when set, caps the pipeline's events per second per client (httpauth.Identity.Key:
	// every token of a named client shares one budget, a bare token has its own); without
	// authentication all clients share one budget. The limit is the whole pipeline's: this
	// handler admits its share, divided by Peers.
	RateLimit *pipelineconfig.RateLimit
	// Peers, when set, counts the pipeline's live ingestion pods (ratelimit.Peers.Count); nil
	// means this handler is the pipeline's only one (local mode).
	Peers func() int
	// PublishTimeout bounds the wait for acknowledgements; DefaultPublishTimeout when zero.
	PublishTimeout time.Duration
	// FeedReaders bounds the push feed's readers on this handler (503 beyond);
	// DefaultFeedReaders when zero.
	FeedReaders int
	// FeedMaxLag is how many predictions a feed reader may be behind before its feed is
	// closed; DefaultFeedMaxLag when zero.
	FeedMaxLag int
	// FeedHeartbeat is how often an idle feed sends a comment; DefaultFeedHeartbeat when zero.
	FeedHeartbeat time.Duration
	// ReportingURL, when set, is the reporting pod the report API (/v1/reports…) is forwarded
	// to; empty, those paths answer 404 (the pipeline keeps no reports).
	ReportingURL string
	// Registry receives the ingestion metrics and is served at /metrics.
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock of the rate limiter, the token file checks, the received-at stamps, the
	// durations in the metrics and the log throttle; it defaults to time.Now.
	Now func() time.Time
	// TracerProvider, when set, traces requests (server spans) and their publish (a producer
	// span whose context every queued message carries in its traceparent header). Nil turns
	// tracing off at no cost.
	TracerProvider trace.TracerProvider
}

// Handler serves the ingestion API:
//
//	POST /v1/events               queue events (202, 400, 401, 413, 415, 429, 503)
//	GET  /v1/predictions/{eventId} read a prediction (200, 400, 401, 404, 503)
//	GET  /v1/events/{eventId}     read an event's status (200, 400, 401, 404, 503)
//	POST /v1/predictions:batchGet read the status of up to MaxBatchGetIDs events (200, 400, 401, 413, 415, 503)
//	GET  /v1/predictions:stream   follow the predictions as server-sent events (200, 400, 401, 503)
//	GET  /v1/reports…             forwarded to the reporting pod (404 without one, 503 when it is down)
//	GET  /livez                   the process is alive
//	GET  /readyz                  NATS is connected and answers for the stream
//	GET  /metrics                 Prometheus metrics
type Handler struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	dec     *decoder
	tokens  *httpauth.Tokens  // nil without authentication
	limits  *ratelimit.Budget // nil without a rate limit
	metrics *metrics.Ingest
	mux     *http.ServeMux
	reports http.Handler
	states  sync.Pool
	// refusals throttles the log of 5xx answers.
	refusals logThrottle
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// stallWait is the same publish option for every event; built per event, it cost an
	// allocation each.
	stallWait jetstream.PublishOpt

	// streams holds the handles of the streams reads go to.
	streams streams
	// feedSlots holds a token per feed reader, up to FeedReaders.
	feedSlots chan struct{}
}

var _ http.Handler = (*Handler)(nil)

// New checks cfg and returns a Handler. It does not talk to NATS: a pod starts, and reports
// not ready, while the server or the stream is missing.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if cfg.Conn == nil {
		errs = append(errs, errors.New("ingest: Conn is nil"))
	}
	if cfg.Registry == nil {
		errs = append(errs, errors.New("ingest: Registry is nil"))
	}
	if cfg.Topology.Stream == "" || cfg.Topology.Subject == "" || cfg.Topology.Bucket == "" {
		errs = append(errs, fmt.Errorf("ingest: topology needs a stream, subject and bucket, got %+v", cfg.Topology))
	}
	if len(cfg.Inputs) > 0 {
		cfg.Features = nil
		for _, in := range cfg.Inputs {
			cfg.Features = append(cfg.Features, in.Features...)
		}
	}
	if len(cfg.Features) == 0 {
		errs = append(errs, errors.New("ingest: the model's feature names are required"))
	}
	if cfg.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("ingest: MaxBodyBytes must be positive, got %d", cfg.MaxBodyBytes))
	}
	if rl := cfg.RateLimit; rl != nil && (rl.EventsPerSecond <= 0 || rl.Burst <= 0) {
		errs = append(errs, fmt.Errorf("ingest: rate limit needs positive eventsPerSecond and burst, got %+v", *rl))
	}
	if cfg.InputType == "" {
		cfg.InputType = "FP32"
	}
	var dec *decoder
	var err error
	if len(cfg.Inputs) > 0 {
		dec, err = newInputsDecoder(cfg.Inputs)
	} else {
		dec, err = newDecoder(cfg.Features, cfg.InputType)
	}
	if err == nil {
		err = dec.withTransforms(cfg.Transforms)
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("ingest: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FeedReaders <= 0 {
		cfg.FeedReaders = DefaultFeedReaders
	}
	if cfg.FeedMaxLag <= 0 {
		cfg.FeedMaxLag = DefaultFeedMaxLag
	}
	if cfg.FeedHeartbeat <= 0 {
		cfg.FeedHeartbeat = DefaultFeedHeartbeat
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BodyBudget == nil {
		cfg.BodyBudget = httpbody.BudgetFromMemoryLimit()
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, dec: dec, tracer: tracing.Tracer(cfg.TracerProvider),
		stallWait: jetstream.WithStallWait(cfg.PublishTimeout)}
	h.js, err = jetstream.New(cfg.Conn,
		jetstream.WithDefaultTimeout(cfg.PublishTimeout),
		// The library times out each ack itself, so a publish lost in a disconnect does not
		// stay pending for ever; the request's own deadline is a little longer.
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
	)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if cfg.TokensFile != "" {
		if h.tokens, err = httpauth.NewTokens(cfg.TokensFile, h.log, cfg.Now); err != nil {
			return nil, fmt.Errorf("ingest: %w", err)
		}
	}
	if rl := cfg.RateLimit; rl != nil {
		h.limits = ratelimit.NewBudget(float64(rl.EventsPerSecond), float64(rl.Burst), cfg.Peers, cfg.Now)
	}
	if h.metrics, err = metrics.NewIngest(cfg.Registry); err != nil {
		return nil, fmt.Errorf("ingest: registering metrics: %w", err)
	}
	if cfg.RateLimit != nil && cfg.Peers != nil {
		if err := metrics.RegisterRateLimitPods(cfg.Registry, cfg.Peers); err != nil {
			return nil, fmt.Errorf("ingest: registering metrics: %w", err)
		}
	}
	h.streams.lookups = h.js
	h.feedSlots = make(chan struct{}, cfg.FeedReaders)
	h.states.New = func() any {
		return &requestState{seen: make([]bool, len(cfg.Features)), ids: map[string]struct{}{}}
	}
	// Patterns carry no method: each route checks it, so that a wrong one gets this API's JSON
	// 405 rather than the mux's plain text; "/" answers every unknown path with a JSON 404.
	mux := http.NewServeMux()
	mux.Handle("/v1/events", only(http.MethodPost, h.instrument("events", "/v1/events", h.postEvents)))
	mux.Handle("/v1/predictions/{eventId}", only(http.MethodGet, h.instrument("predictions", "/v1/predictions/{eventId}", h.getPrediction)))
	// Not instrumented: a feed lasts as long as its reader, which would say nothing in the
	// request-duration histogram; feed metrics of its own count readers and closes.
	mux.Handle("/v1/predictions:stream", only(http.MethodGet, http.HandlerFunc(h.feed)))
	mux.Handle("/v1/events/{eventId}", only(http.MethodGet, h.instrument("event_status", "/v1/events/{eventId}", h.getEvent)))
	mux.Handle("/v1/predictions:batchGet", only(http.MethodPost, h.instrument("batch_get", "/v1/predictions:batchGet", h.batchGet)))
	mux.Handle("/livez", only(http.MethodGet, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeRaw(w, http.StatusOK, liveBody) })))
	mux.Handle("/readyz", only(http.MethodGet, http.HandlerFunc(h.readyz)))
	mux.Handle("/metrics", only(http.MethodGet, promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry})))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such path: " + r.URL.Path +
			"; this API serves POST /v1/events, GET /v1/events/{eventId}, GET /v1/predictions/{eventId}, POST /v1/predictions:batchGet and GET /v1/predictions:stream"})
	})
	h.mux = mux
	if h.reports, err = newReportProxy(cfg.ReportingURL); err != nil {
		return nil, err
	}
	return h, nil
}

// ServeHTTP routes a request; the report API's paths, among them /v1/reports:describe that no
// mux pattern can express, go to the reporting pod.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isReportPath(r.URL.Path) {
		h.reports.ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// Ready reports why this pod cannot serve now, or nil: NATS must be connected and answer for the
// pipeline's stream with this pod's credentials. A stream that does not exist (the operator could
// not provision it: the store is full, say) keeps the pod ready: every pod of the pipeline shares
// that problem, so taking them out of the Service would turn the 503 + Retry-After clients get,
// with a message pointing at the pipeline's QueueReady condition, into refused connections.
func (h *Handler) Ready(ctx context.Context) error {
	if st := h.cfg.Conn.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection is %s", strings.ToLower(st.String()))
	}
	if _, err := h.js.Stream(ctx, h.cfg.Topology.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", h.cfg.Topology.Stream, err)
	}
	return nil
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.Ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "not ready: " + err.Error()})
		return
	}
	writeRaw(w, http.StatusOK, readyBody)
}

// instrument records the duration of each answer by handler and status code and, with tracing
// on, a server span named after the route, child of the client's traceparent if it sent one.
func (h *Handler) instrument(name, route string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := h.cfg.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var span trace.Span
		if h.tracer != nil {
			var ctx context.Context
			ctx, span = tracing.StartServerSpan(h.tracer, r, route)
			r = r.WithContext(ctx)
		}
		next(rec, r)
		h.metrics.RequestDuration.WithLabelValues(name, strconv.Itoa(rec.status)).Observe(h.cfg.Now().Sub(start).Seconds())
		if span != nil {
			tracing.EndServerSpan(span, rec.status)
		}
	})
}

// only answers any method but method (and HEAD along with GET) with a JSON 405 that carries
// Allow.
func only(method string, next http.Handler) http.Handler {
	allow := method
	if method == http.MethodGet {
		allow = "GET, HEAD"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " is not allowed on " + r.URL.Path + "; use " + method})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (httpbody.Refuse needs it).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

var (
	liveBody  = []byte(`{"live":true}` + "\n")
	readyBody = []byte(`{"ready":true}` + "\n")
)
