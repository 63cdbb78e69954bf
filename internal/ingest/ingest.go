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
//     a publish fails halfway, the 503 says how many were stored; the client retries the whole
//     body and the stored ones come back as duplicates.
//
// See docs/ingestion.md for the client-facing reference.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/throttle"
	"github.com/freightcast/freightcast/internal/tracing"
)

// maxPendingAcks bounds the events published and not yet acknowledged, across all requests
// of the pod: about 4 MiB of messages held for a possible resend.
const maxPendingAcks = 16384

// DefaultPublishTimeout bounds how long a request waits for the stream's acknowledgements.
const DefaultPublishTimeout = 3 * time.Second

// Retry-After hints: a NATS outage is usually a restart of seconds; a full stream drains only
// as fast as the inference pool works, so clients should back off longer.
const (
	retryUnavailable = 2 * time.Second
	retryStreamFull  = 5 * time.Second
)

// JetStream error codes (nats-server errors.json) that mean "the stream is at its limits":
// JSStreamStoreFailedF carries "maximum messages exceeded", "maximum bytes exceeded" and
// "maximum messages per subject exceeded" under DiscardNew; JSInsufficientResourcesErr is the
// account or server running out of storage.
const (
	errCodeStoreFailed           jetstream.ErrorCode = 10077
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

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
	// MaxBodyBytes caps a request body (413 above it).
	MaxBodyBytes int64
	// TokensFile, when set, holds the accepted bearer tokens, one a line; it is re-read when
	// it changes. Empty means no authentication.
	TokensFile string
	// RateLimit, when set, caps events per second per bearer token, or per client address
	// without authentication.
	RateLimit *pipelineconfig.RateLimit
	// PublishTimeout bounds the wait for acknowledgements; DefaultPublishTimeout when zero.
	PublishTimeout time.Duration
	// Registry receives the ingestion metrics and is served at /metrics.
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now defaults to time.Now; tests replace it to drive the rate limiter.
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
//	GET  /livez                   the process is alive
//	GET  /readyz                  NATS is connected and the stream exists
//	GET  /metrics                 Prometheus metrics
type Handler struct {
	cfg     Config
	log     *slog.Logger
	js      jetstream.JetStream
	dec     *decoder
	tokens  *httpauth.Tokens // nil without authentication
	limits  *limiters        // nil without a rate limit
	metrics *metrics.Ingest
	mux     *http.ServeMux
	states  sync.Pool
	// refusals throttles the log of 5xx answers.
	refusals logThrottle
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// stallWait is the same publish option for every event; built per event, it cost an
	// allocation each.
	stallWait jetstream.PublishOpt

	kvMu sync.Mutex
	kv   jetstream.KeyValue
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
	if len(cfg.Features) == 0 {
		errs = append(errs, errors.New("ingest: the model's feature names are required"))
	}
	if cfg.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("ingest: MaxBodyBytes must be positive, got %d", cfg.MaxBodyBytes))
	}
	if rl := cfg.RateLimit; rl != nil && (rl.EventsPerSecond <= 0 || rl.Burst <= 0) {
		errs = append(errs, fmt.Errorf("ingest: rate limit needs positive eventsPerSecond and burst, got %+v", *rl))
	}
	dec, err := newDecoder(cfg.Features)
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
	if cfg.Now == nil {
		cfg.Now = time.Now
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
		h.limits = newLimiters(float64(rl.EventsPerSecond), int(rl.Burst), cfg.Now)
	}
	if h.metrics, err = metrics.NewIngest(cfg.Registry); err != nil {
		return nil, fmt.Errorf("ingest: registering metrics: %w", err)
	}
	h.states.New = func() any {
		return &requestState{seen: make([]bool, len(cfg.Features)), ids: map[string]struct{}{}}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", h.instrument("events", "/v1/events", h.postEvents))
	mux.Handle("GET /v1/predictions/{eventId}", h.instrument("predictions", "/v1/predictions/{eventId}", h.getPrediction))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { writeRaw(w, http.StatusOK, liveBody) })
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	h.mux = mux
	return h, nil
}

// ServeHTTP routes a request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Ready reports why the handler cannot accept events now, or nil: NATS must be connected and the
// pipeline's stream must exist (the operator provisions it; ingestion never creates it).
func (h *Handler) Ready(ctx context.Context) error {
	if st := h.cfg.Conn.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection is %s", strings.ToLower(st.String()))
	}
	if _, err := h.js.Stream(ctx, h.cfg.Topology.Stream); err != nil {
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

// maxPooledBytes is the largest body or payload buffer kept for the next request.
const maxPooledBytes = 1 << 20

// requestState is the scratch space of one POST, pooled so that a steady load allocates little.
type requestState struct {
	body    []byte
	batch   batch
	seen    []bool
	payload []byte
	ids     map[string]struct{}
	futures []jetstream.PubAckFuture
}

// apiError is an answer other than 2xx.
type apiError struct {
	status     int
	reason     string // metrics label
	body       errorBody
	retryAfter time.Duration
	err        error // logged, not shown
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	// Index is the 0-based position of the offending event (array element or NDJSON line).
	Index *int `json:"index,omitempty"`
	// Field is the offending field, e.g. "features.port_congestion_index".
	Field string `json:"field,omitempty"`
	// Accepted and Duplicates tell, in a 503 after a partial publish, what was stored anyway.
	Accepted   *int `json:"accepted,omitempty"`
	Duplicates *int `json:"duplicates,omitempty"`
}

func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) {
	received := h.cfg.Now()
	st := h.states.Get().(*requestState)
	reuse := true
	defer func() {
		// A rare huge body should not pin its buffers in the pool.
		if reuse && cap(st.body) <= maxPooledBytes && cap(st.payload) <= maxPooledBytes {
			st.batch.reset()
			h.states.Put(st)
		}
	}()
	accepted, dups, apiErr := h.ingest(r, st, received, &reuse)
	if h.tracer != nil {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.Int("freightcast.events", st.batch.len()),
			attribute.Int("freightcast.events.accepted", accepted), attribute.Int("freightcast.events.duplicates", dups))
	}
	if apiErr != nil {
		h.fail(r.Context(), w, apiErr)
		return
	}
	h.metrics.EventsAccepted.Add(float64(accepted))
	h.metrics.EventsDuplicate.Add(float64(dups))
	buf := make([]byte, 0, 48)
	buf = append(buf, `{"accepted":`...)
	buf = strconv.AppendInt(buf, int64(accepted), 10)
	buf = append(buf, `,"duplicates":`...)
	buf = strconv.AppendInt(buf, int64(dups), 10)
	buf = append(buf, "}\n"...)
	writeRaw(w, http.StatusAccepted, buf)
}

// ingest runs a POST from authentication to the last ack. *reuse is cleared when st must not go
// back to the pool because publishes may still read its buffers.
func (h *Handler) ingest(r *http.Request, st *requestState, received time.Time, reuse *bool) (accepted, dups int, _ *apiError) {
	key, aerr := h.authenticate(r)
	if aerr != nil {
		return 0, 0, aerr
	}
	ndjson, aerr := mediaType(r.Header.Get("Content-Type"))
	if aerr != nil {
		return 0, 0, aerr
	}
	if aerr := h.readBody(r, st); aerr != nil {
		return 0, 0, aerr
	}
	var err error
	if ndjson {
		err = h.dec.decodeNDJSON(st.body, &st.batch, st.seen)
	} else {
		err = h.dec.decodeJSON(st.body, &st.batch, st.seen)
	}
	if err != nil {
		var ee *eventError
		if !errors.As(err, &ee) {
			return 0, 0, &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid, body: errorBody{Error: err.Error()}}
		}
		body := errorBody{Error: ee.msg, Field: ee.field}
		if ee.index >= 0 {
			body.Index = &ee.index
		}
		return 0, 0, &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid, body: body}
	}
	n := st.batch.len()
	if h.limits != nil {
		if n > h.limits.burst {
			return 0, 0, &apiError{status: http.StatusRequestEntityTooLarge, reason: metrics.ReasonTooLarge,
				body: errorBody{Error: fmt.Sprintf("the body holds %d events, more than the rate limit's burst of %d; send smaller bodies", n, h.limits.burst)}}
		}
		if ok, wait := h.limits.take(rateKey(r, key, h.tokens != nil), n); !ok {
			return 0, 0, &apiError{status: http.StatusTooManyRequests, reason: metrics.ReasonRateLimited, retryAfter: wait,
				body: errorBody{Error: fmt.Sprintf("rate limit of %s events/s exceeded", strconv.FormatFloat(float64(h.limits.limit), 'f', -1, 64))}}
		}
	}
	if status := h.cfg.Conn.Status(); status != nats.CONNECTED {
		return 0, 0, &apiError{status: http.StatusServiceUnavailable, reason: metrics.ReasonUnavailable, retryAfter: retryUnavailable,
			body: errorBody{Error: "the queue is unavailable (NATS " + strings.ToLower(status.String()) + "); nothing was stored, retry later"}}
	}
	return h.publish(r.Context(), st, received, reuse)
}

func (h *Handler) authenticate(r *http.Request) (httpauth.Digest, *apiError) {
	if h.tokens == nil {
		return httpauth.Digest{}, nil
	}
	key, ok := h.tokens.Authenticate(r)
	if !ok {
		return httpauth.Digest{}, &apiError{status: http.StatusUnauthorized, reason: metrics.ReasonUnauthorized,
			body: errorBody{Error: "missing or unknown bearer token"}}
	}
	return key, nil
}

// rateKey names the client's bucket: its token's digest, or its address without tokens.
func rateKey(r *http.Request, token httpauth.Digest, authenticated bool) string {
	if authenticated {
		return string(token[:])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// mediaType accepts application/json and application/x-ndjson, with a UTF-8 charset if any.
func mediaType(header string) (ndjson bool, _ *apiError) {
	fail := func(msg string) (bool, *apiError) {
		return false, &apiError{status: http.StatusUnsupportedMediaType, reason: metrics.ReasonMediaType,
			body: errorBody{Error: msg + "; send application/json or application/x-ndjson"}}
	}
	if header == "" {
		return fail("Content-Type is missing")
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return fail(fmt.Sprintf("Content-Type %q does not parse", header))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fail(fmt.Sprintf("charset %q is not supported, only utf-8", cs))
	}
	switch mt {
	case "application/json":
		return false, nil
	case "application/x-ndjson":
		return true, nil
	}
	return fail(fmt.Sprintf("Content-Type %q is not supported", mt))
}

// readBody reads the whole body into st.body, up to MaxBodyBytes. Reading it all first is what
// makes all-or-nothing cheap: the body is bounded anyway, and parsing from memory is fastest.
func (h *Handler) readBody(r *http.Request, st *requestState) *apiError {
	limit := h.cfg.MaxBodyBytes
	// Built only when needed: most bodies fit, and building it cost every request allocations.
	tooLarge := func() *apiError {
		return &apiError{status: http.StatusRequestEntityTooLarge, reason: metrics.ReasonTooLarge,
			body: errorBody{Error: fmt.Sprintf("the body is larger than %d bytes; send fewer events per request", limit)}}
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	buf := st.body[:0]
	if r.ContentLength > 0 && int64(cap(buf)) < r.ContentLength {
		buf = make([]byte, 0, r.ContentLength)
	}
	buf, err := httpbody.Read(r.Body, buf, limit)
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		st.body = buf[:0]
		return tooLarge()
	case err != nil:
		st.body = buf[:0]
		return &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid,
			body: errorBody{Error: "reading the body: " + err.Error()}}
	}
	st.body = buf
	return nil
}

// publish queues every distinct event of the batch asynchronously and then waits for all acks,
// so that a body costs about one round trip, not one per event.
func (h *Handler) publish(ctx context.Context, st *requestState, received time.Time, reuse *bool) (accepted, dups int, _ *apiError) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout+500*time.Millisecond)
	defer cancel()
	b := &st.batch
	nf := len(h.cfg.Features)
	clear(st.ids)
	st.futures = st.futures[:0]
	st.payload = st.payload[:0]
	start := time.Now()
	// One producer span for the body; every message carries its context, so a worker can tell
	// which request queued the event it scores. The header values are computed once and shared.
	var traceHeader nats.Header
	if h.tracer != nil {
		var span trace.Span
		ctx, span = h.tracer.Start(ctx, "send "+h.cfg.Topology.Subject, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(h.cfg.Topology.Subject), semconv.MessagingBatchMessageCount(len(b.ids))))
		defer func() {
			span.SetAttributes(attribute.Int("freightcast.events.accepted", accepted), attribute.Int("freightcast.events.duplicates", dups))
			span.End()
		}()
		traceHeader = tracing.Inject(ctx)
	}
	var pubErr error
	for i, id := range b.ids {
		if _, dup := st.ids[id]; dup {
			dups++ // first one wins, like the server's deduplication
			continue
		}
		st.ids[id] = struct{}{}
		from := len(st.payload)
		ev := event.Event{ID: id, Features: b.values[i*nf : (i+1)*nf], Shipment: b.shipments[i], ReceivedAt: received}
		st.payload = event.AppendEncode(st.payload, &ev)
		// A later append may move st.payload; this message keeps the bytes it was given.
		data := st.payload[from:len(st.payload):len(st.payload)]
		// A body may hold more events than the pending-ack window; wait for room as long as
		// the request may take rather than failing after the library's default 200 ms.
		msg := &nats.Msg{Subject: h.cfg.Topology.Subject, Data: data}
		if traceHeader != nil {
			// Room for the message id the library adds.
			msg.Header = make(nats.Header, len(traceHeader)+1)
			maps.Copy(msg.Header, traceHeader)
		}
		f, err := h.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), h.stallWait)
		if err != nil {
			pubErr = err
			break
		}
		st.futures = append(st.futures, f)
	}
	resolved := 0
	for _, f := range st.futures {
		select {
		case ack := <-f.Ok():
			resolved++
			if ack.Duplicate {
				dups++
			} else {
				accepted++
			}
		case err := <-f.Err():
			resolved++
			if pubErr == nil {
				pubErr = err
			}
		case <-ctx.Done():
			if pubErr == nil {
				pubErr = fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Published messages may still be resent by the library (no-responders retry) until their
	// futures resolve; only a fully resolved batch may hand its buffers back to the pool.
	*reuse = resolved == len(st.futures)
	h.metrics.PublishDuration.Observe(time.Since(start).Seconds())
	if pubErr == nil {
		return accepted, dups, nil
	}
	if h.tracer != nil {
		span := trace.SpanFromContext(ctx)
		span.RecordError(pubErr)
		span.SetStatus(codes.Error, "publish failed")
	}
	aerr := classifyPublishError(pubErr)
	if accepted > 0 || dups > 0 {
		aerr.reason = metrics.ReasonPartialAccept
		aerr.body.Error += fmt.Sprintf("; %d events of this body were stored and %d were duplicates: retry the whole body, the stored ones will count as duplicates", accepted, dups)
		stored, repeated := accepted, dups // not the results, which the return below zeroes
		aerr.body.Accepted, aerr.body.Duplicates = &stored, &repeated
		h.metrics.EventsAccepted.Add(float64(accepted))
		h.metrics.EventsDuplicate.Add(float64(dups))
	}
	return 0, 0, aerr
}

// classifyPublishError maps a publish failure to a 503 with the right hint.
func classifyPublishError(err error) *apiError {
	unavailable := func(msg string, retry time.Duration, reason string) *apiError {
		return &apiError{status: http.StatusServiceUnavailable, reason: reason, retryAfter: retry, err: err,
			body: errorBody{Error: msg}}
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeInsufficientResources ||
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "exceeded")):
		return unavailable("the pipeline's queue is full ("+apiErr.Description+"); retry later", retryStreamFull, metrics.ReasonStreamFull)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return unavailable("the pipeline's stream does not exist yet; retry later", retryStreamFull, metrics.ReasonUnavailable)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return unavailable("ingestion is overloaded; retry later", retryUnavailable, metrics.ReasonUnavailable)
	}
	return unavailable("the queue is unavailable; retry later", retryUnavailable, metrics.ReasonUnavailable)
}

func (h *Handler) fail(ctx context.Context, w http.ResponseWriter, e *apiError) {
	h.metrics.RequestsRejected.WithLabelValues(e.reason).Inc()
	if e.status >= 500 {
		// During an outage every request fails the same way; one line a second tells as much.
		if ok, suppressed := h.refusals.allow(time.Now()); ok {
			attrs := []any{"status", e.status, "reason", e.reason, "error", e.body.Error, "alikeSuppressed", suppressed}
			if e.err != nil {
				attrs = append(attrs, "cause", e.err.Error())
			}
			h.log.WarnContext(ctx, "refusing events", attrs...)
		}
	}
	switch e.status {
	case http.StatusUnauthorized:
		httpauth.SetChallenge(w.Header())
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(e.retryAfter))
	}
	writeJSON(w, e.status, e.body)
}

func (h *Handler) getPrediction(w http.ResponseWriter, r *http.Request) {
	if _, aerr := h.authenticate(r); aerr != nil {
		h.fail(r.Context(), w, aerr)
		return
	}
	id := r.PathValue("eventId")
	if err := event.ValidID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: "eventId"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	kv, err := h.bucket(ctx)
	if err != nil {
		h.log.WarnContext(ctx, "predictions bucket unavailable", "bucket", h.cfg.Topology.Bucket, "error", err)
		w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the predictions store is unavailable; retry later"})
		return
	}
	entry, err := kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no prediction for event " + id + " (yet)"})
		return
	case err != nil:
		h.log.WarnContext(ctx, "reading a prediction", "id", id, "error", err)
		w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the predictions store is unavailable; retry later"})
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(entry.Value())
}

// bucket returns the predictions bucket, looked up once and then kept: the lookup is a round
// trip, and the bucket outlives the connection's reconnects.
func (h *Handler) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	h.kvMu.Lock()
	defer h.kvMu.Unlock()
	if h.kv != nil {
		return h.kv, nil
	}
	kv, err := h.js.KeyValue(ctx, h.cfg.Topology.Bucket)
	if err != nil {
		return nil, err
	}
	h.kv = kv
	return kv, nil
}

// instrument records the duration of each answer by handler and status code and, with tracing
// on, a server span named after the route, child of the client's traceparent if it sent one.
func (h *Handler) instrument(name, route string, next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var span trace.Span
		if h.tracer != nil {
			var ctx context.Context
			ctx, span = tracing.StartServerSpan(h.tracer, r, route)
			r = r.WithContext(ctx)
		}
		next(rec, r)
		h.metrics.RequestDuration.WithLabelValues(name, strconv.Itoa(rec.status)).Observe(time.Since(start).Seconds())
		if span != nil {
			tracing.EndServerSpan(span, rec.status)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// logThrottle lets one log line through per second and counts the ones it held back.
type logThrottle struct {
	gate       throttle.Gate
	suppressed atomic.Int64
}

func (t *logThrottle) allow(now time.Time) (bool, int64) {
	if !t.gate.Allow(now, time.Second) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	writeRaw(w, status, append(data, '\n'))
}

// jsonContentType is shared by every answer, so setting the header allocates nothing; net/http
// only reads it.
var jsonContentType = []string{"application/json"}

var (
	liveBody  = []byte(`{"live":true}` + "\n")
	readyBody = []byte(`{"ready":true}` + "\n")
)

// writeRaw answers body, which ends with the newline every answer has.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
