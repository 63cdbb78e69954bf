// Package oip serves a model over the Open Inference Protocol (KServe v2 REST): server and model
// metadata, liveness and readiness, infer with micro-batching, and Prometheus metrics, all on one
// handler.
package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/jsonenc"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/health"

	"github.com/freightcast/freightcast/internal/tracing"
)

// Platform is the OIP platform string of ONNX models.
const Platform = "onnx_onnxv1"

// binaryHeader announces a body in KServe's binary tensor extension: a JSON header of that many
// bytes, then raw tensor data. The server speaks JSON only and says so.
const binaryHeader = "Inference-Header-Content-Length"

// Config configures a Server.
type Config struct {
	// ModelName and ModelVersion are the names clients address the model by.
	ModelName    string
	ModelVersion string
	// MaxBatchSize caps the rows of one model run; concurrent requests merge up to it.
	MaxBatchSize int
	// MaxBatchDelay is how long a batch may wait for requests that are being decoded.
	MaxBatchDelay time.Duration
	// MaxBodyBytes caps the size of an infer request body.
	MaxBodyBytes int64
	// BodyBudget bounds the body bytes in memory across the process's requests (503 when it
	// is spent); nil sizes one from the Go memory limit (httpbody.BudgetFromMemoryLimit).
	BodyBudget *httpbody.Budget
	// Metrics records the server's metrics; required.
	Metrics *metrics.Inference
	// Gatherer, when set, is served at /metrics.
	Gatherer prometheus.Gatherer
	// Logger logs failures; nil discards.
	Logger *slog.Logger
	// Workers is the number of model runs that may proceed at once; zero means GOMAXPROCS.
	Workers int
	// Tokens, when set, are the bearer tokens every request needs, except the health probes
	// (/v2/health/live and /v2/health/ready) and /metrics.
	Tokens *httpauth.Tokens
	// ProbesOnly serves the health probes and /metrics and nothing else: every other path is
	// a 404. An inference pool pod takes its events from the queue, so no client needs its
	// OIP API, and an API that is not served needs no token to guard it.
	ProbesOnly bool
	// TracerProvider, when set, gives every infer request a server span (child of the
	// client's traceparent, if any) with the model, the request's rows and the size of the
	// model run it joined. Nil turns tracing off at no cost.
	TracerProvider trace.TracerProvider
}

// Server is an http.Handler serving one model. It is not ready until SetModel.
type Server struct {
	cfg      Config
	model    atomic.Pointer[loadedModel]
	draining atomic.Bool
	batcher  *batcher
	calls    sync.Pool
	mux      *http.ServeMux
	metrics  http.Handler
	log      *slog.Logger
	// inferOK is the duration observer of the most common outcome, looked up once.
	inferOK prometheus.Observer
	// tracer is nil when tracing is off.
	tracer trace.Tracer
	// grpcInferOK is inferOK for gRPC's ModelInfer.
	grpcInferOK prometheus.Observer
	// health is the grpc.health.v1 service of NewGRPCServer, nil until then; healthMu orders
	// its updates (updateHealth).
	healthMu sync.Mutex
	health   *health.Server
}

// loadedModel is a model with everything the hot path would otherwise compute per request.
type loadedModel struct {
	rt       model.Runtime
	meta     *model.Metadata
	inRow    []int
	outRow   []int
	metadata []byte // the model metadata response
	// typed is set for a model that Run cannot serve (see Metadata.CheckRows): each request
	// is one Eval on typed tensors instead of rows in a micro-batch.
	typed bool
}

// NewServer checks cfg and starts the batch workers.
func NewServer(cfg Config) (*Server, error) {
	switch {
	case cfg.ModelName == "":
		return nil, errors.New("oip: model name is empty")
	case strings.Contains(cfg.ModelName, "/"):
		return nil, fmt.Errorf("oip: model name %q contains '/'", cfg.ModelName)
	case cfg.ModelVersion == "" || strings.Contains(cfg.ModelVersion, "/"):
		return nil, fmt.Errorf("oip: model version %q must be non-empty and free of '/'", cfg.ModelVersion)
	case cfg.MaxBatchSize < 1:
		return nil, fmt.Errorf("oip: max batch size %d must be at least 1", cfg.MaxBatchSize)
	case cfg.MaxBatchDelay < 0:
		return nil, fmt.Errorf("oip: max batch delay %v is negative", cfg.MaxBatchDelay)
	case cfg.MaxBodyBytes < 1:
		return nil, fmt.Errorf("oip: max body bytes %d must be positive", cfg.MaxBodyBytes)
	case cfg.Metrics == nil:
		return nil, errors.New("oip: metrics are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.BodyBudget == nil {
		cfg.BodyBudget = httpbody.BudgetFromMemoryLimit()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, tracer: tracing.Tracer(cfg.TracerProvider)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer != nil {
		s.metrics = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	}
	s.inferOK = cfg.Metrics.RequestDuration.WithLabelValues("infer", "200")
	s.grpcInferOK = cfg.Metrics.RequestDuration.WithLabelValues("grpc_model_infer", "OK")
	s.batcher = newBatcher(cfg.Workers, cfg.MaxBatchSize, cfg.MaxBatchDelay, cfg.Metrics)
	s.calls.New = func() any { return &call{done: make(chan struct{}, 1)} }
	s.mux = s.routes()
	return s, nil
}

// SetModel makes the server ready with rt. It may be called once.
func (s *Server) SetModel(rt model.Runtime) error {
	meta := rt.Metadata()
	lm := &loadedModel{rt: rt, meta: meta, typed: meta.CheckRows() != nil}
	for _, t := range meta.Inputs {
		lm.inRow = append(lm.inRow, t.RowSize())
	}
	for _, t := range meta.Outputs {
		lm.outRow = append(lm.outRow, t.RowSize())
	}
	md, err := json.Marshal(modelMetadata{
		Name:     s.cfg.ModelName,
		Versions: []string{s.cfg.ModelVersion},
		Platform: Platform,
		Inputs:   tensorMetadata(meta.Inputs),
		Outputs:  tensorMetadata(meta.Outputs),
		Parameters: map[string]any{
			"features": meta.Features,
		},
	})
	if err != nil {
		return err
	}
	lm.metadata = md
	if !s.model.CompareAndSwap(nil, lm) {
		return errors.New("oip: a model is already set")
	}
	s.updateHealth()
	return nil
}

// Ready tells whether the server wants traffic: the model is loaded and it is not draining.
func (s *Server) Ready() bool { return s.model.Load() != nil && !s.draining.Load() }

// Drain turns readiness false while requests are still served, so that load balancers stop
// sending new ones before the listener closes.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.updateHealth()
}

// Close releases the server. Call it after http.Server.Shutdown has returned; requests run on
// their own goroutines, so there is nothing left to drain by then.
func (s *Server) Close() {}

type modelMetadata struct {
	Name       string         `json:"name"`
	Versions   []string       `json:"versions"`
	Platform   string         `json:"platform"`
	Inputs     []tensorMeta   `json:"inputs"`
	Outputs    []tensorMeta   `json:"outputs"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

type tensorMeta struct {
	Name       string         `json:"name"`
	Datatype   string         `json:"datatype"`
	Shape      []int64        `json:"shape"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

func tensorMetadata(ts []model.TensorInfo) []tensorMeta {
	out := make([]tensorMeta, len(ts))
	for i, t := range ts {
		out[i] = tensorMeta{Name: t.Name, Datatype: t.DataType, Shape: t.Shape, Parameters: outputParameters(t)}
	}
	return out
}

func (s *Server) methodNotAllowed(w http.ResponseWriter, allow string) int {
	w.Header().Set("Allow", allow)
	return s.fail(w, http.StatusMethodNotAllowed, metrics.ReasonMethodNotAllowed, "method not allowed; use "+allow)
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return s.fail(w, http.StatusInternalServerError, metrics.ReasonInternal, err.Error())
	}
	return s.write(w, code, b)
}

// jsonContentType is shared by every response, so setting the header allocates nothing; net/http
// only reads it. Content-Length is left to net/http, which computes it for bodies that fit its
// buffer and otherwise streams them chunked.
var jsonContentType = []string{"application/json"}

func (s *Server) write(w http.ResponseWriter, code int, b []byte) int {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	_, _ = w.Write(b)
	return code
}

// fail writes {"error": msg} and counts the error.
func (s *Server) fail(w http.ResponseWriter, code int, reason, msg string) int {
	s.cfg.Metrics.Errors.WithLabelValues(reason).Inc()
	b := append([]byte(`{"error":`), jsonenc.AppendString(nil, msg)...)
	b = append(b, '}')
	return s.write(w, code, b)
}

// ServeHTTP routes OIP paths (see routes).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is one infer request on its way through the batcher; pooled with all its buffers.
type call struct {
	body  []byte
	req   inferRequest
	model *loadedModel
	rows  int
	in    [][]float32
	out   [][]float32
	resp  []byte
	err   error
	done  chan struct{}
	// typed holds the tensors of a request to a typed model (loadedModel.typed).
	typed typedCall
	// batchRows and batchCalls describe the model run the call joined: its rows and calls.
	batchRows, batchCalls int
}

// tracedInfer is infer inside a server span.
func (s *Server) tracedInfer(w http.ResponseWriter, r *http.Request) int {
	ctx, span := tracing.StartServerSpan(s.tracer, r, "/v2/models/{model}/infer",
		attribute.String("freightcast.model.name", s.cfg.ModelName), attribute.String("freightcast.model.version", s.cfg.ModelVersion))
	code := s.infer(w, r.WithContext(ctx), span)
	tracing.EndServerSpan(span, code)
	return code
}

// infer answers one infer request; span is the request's span, nil when tracing is off.
func (s *Server) infer(w http.ResponseWriter, r *http.Request, span trace.Span) int {
	if r.Header.Get(binaryHeader) != "" {
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest,
			binaryHeader+": the binary tensor extension is not supported; send and receive tensors as JSON data")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return s.fail(w, http.StatusUnsupportedMediaType, metrics.ReasonUnsupportedMediaType,
				fmt.Sprintf("content type %q is not supported; send application/json", ct))
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
			return s.fail(w, http.StatusUnsupportedMediaType, metrics.ReasonUnsupportedMediaType,
				fmt.Sprintf("charset %q is not supported, only utf-8; send application/json", cs))
		}
	}
	lm := s.model.Load()
	if lm == nil {
		return s.fail(w, http.StatusServiceUnavailable, metrics.ReasonNotReady, fmt.Sprintf("model %q is not loaded yet", s.cfg.ModelName))
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return s.refuse(w, r, s.tooLarge)
	}
	c := s.calls.Get().(*call)
	defer s.putCall(c)
	var err error
	var held int64
	c.body, held, err = httpbody.Read(r.Body, c.body[:0], s.cfg.MaxBodyBytes, s.cfg.BodyBudget)
	// The body, and what was decoded from it, are done with once the answer is encoded.
	defer s.cfg.BodyBudget.Release(held)
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		return s.refuse(w, r, s.tooLarge)
	case errors.Is(err, httpbody.ErrBusy):
		return s.refuse(w, r, func(w http.ResponseWriter) int {
			w.Header().Set("Retry-After", "1")
			return s.fail(w, http.StatusServiceUnavailable, metrics.ReasonBusy,
				"the server holds as many request bodies as its memory allows; retry later")
		})
	case err != nil:
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, "reading the body: "+err.Error())
	}
	if lm.typed {
		return s.inferTyped(w, r, c, lm, span)
	}
	s.batcher.pending.Add(1)
	err = s.prepare(c, lm)
	if err != nil {
		s.batcher.pending.Add(-1)
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, err.Error())
	}
	s.batcher.submit(c)
	if span != nil {
		span.SetAttributes(attribute.Int("freightcast.request.rows", c.rows),
			attribute.Int("freightcast.batch.rows", c.batchRows), attribute.Int("freightcast.batch.requests", c.batchCalls))
	}
	if c.err != nil {
		if span != nil {
			span.RecordError(c.err)
		}
		s.log.ErrorContext(r.Context(), "model run failed", "model", s.cfg.ModelName, "rows", c.rows, "err", c.err)
		return s.fail(w, http.StatusInternalServerError, metrics.ReasonInternal, "model run failed: "+c.err.Error())
	}
	c.resp, err = s.encodeResponse(c.resp[:0], c, lm)
	if err != nil {
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, err.Error())
	}
	return s.write(w, http.StatusOK, c.resp)
}

// inferTyped answers an infer request to a typed model, whose body c holds.
func (s *Server) inferTyped(w http.ResponseWriter, r *http.Request, c *call, lm *loadedModel, span trace.Span) int {
	c.model, c.err = lm, nil
	c.req.typed = true
	err := decodeInferRequest(c.body, &c.req)
	if err == nil {
		err = prepareTyped(c, lm)
	}
	if err != nil {
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, err.Error())
	}
	if span != nil {
		span.SetAttributes(attribute.Int("freightcast.request.rows", c.rows),
			attribute.Int("freightcast.batch.rows", c.rows), attribute.Int("freightcast.batch.requests", 1))
	}
	if err := s.runTyped(c, lm); err != nil {
		if inputError(err) {
			return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, err.Error())
		}
		if span != nil {
			span.RecordError(err)
		}
		s.log.ErrorContext(r.Context(), "model run failed", "model", s.cfg.ModelName, "rows", c.rows, "err", err)
		return s.fail(w, http.StatusInternalServerError, metrics.ReasonInternal, "model run failed: "+err.Error())
	}
	c.resp, err = s.encodeTyped(c.resp[:0], c, lm)
	if err != nil {
		return s.fail(w, http.StatusBadRequest, metrics.ReasonBadRequest, err.Error())
	}
	return s.write(w, http.StatusOK, c.resp)
}

// maxPooledBody is the largest body whose call goes back to the pool: a burst of large bodies
// must not stay in memory after it.
const maxPooledBody = 1 << 20

func (s *Server) putCall(c *call) {
	if cap(c.body) <= maxPooledBody && cap(c.resp) <= maxPooledBody {
		s.calls.Put(c)
	}
}

// refuse answers with answer a request whose body was not read whole (httpbody.Refuse).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, answer func(http.ResponseWriter) int) int {
	var code int
	httpbody.Refuse(w, r, func() { code = answer(w) })
	return code
}

func (s *Server) tooLarge(w http.ResponseWriter) int {
	return s.fail(w, http.StatusRequestEntityTooLarge, metrics.ReasonBodyTooLarge,
		fmt.Sprintf("request body exceeds %d bytes", s.cfg.MaxBodyBytes))
}

// prepare decodes the body and matches it to the model's inputs and outputs.
func (s *Server) prepare(c *call, lm *loadedModel) error {
	c.model, c.err = lm, nil
	c.req.typed = false
	if err := decodeInferRequest(c.body, &c.req); err != nil {
		return err
	}
	return matchRows(c, lm)
}

// matchRows matches a decoded request of FP32 rows to the model's inputs and outputs, and sizes
// the output buffers.
func matchRows(c *call, lm *loadedModel) error {
	c.model, c.err = lm, nil
	req := &c.req
	meta := lm.meta
	if cap(c.in) < len(meta.Inputs) {
		c.in = make([][]float32, len(meta.Inputs))
	}
	c.in = c.in[:len(meta.Inputs)]
	clear(c.in)
	c.rows = 0
	for i := range req.inputs {
		t := &req.inputs[i]
		idx := -1
		for j, mi := range meta.Inputs {
			if string(t.name) == mi.Name {
				idx = j
				break
			}
		}
		if idx < 0 {
			return fmt.Errorf("unknown input %q; the model takes %s", t.name, inputNames(meta.Inputs))
		}
		if c.in[idx] != nil {
			return fmt.Errorf("input %q appears twice", t.name)
		}
		if string(t.datatype) == "BYTES" {
			return fmt.Errorf("input %q is BYTES; the model takes %s", t.name, meta.Inputs[idx].DataType)
		}
		rows, err := checkInput(t, meta.Inputs[idx])
		if err != nil {
			return err
		}
		if c.rows != 0 && rows != c.rows {
			return fmt.Errorf("input %q has %d rows, another input has %d", t.name, rows, c.rows)
		}
		c.rows = rows
		c.in[idx] = t.data
	}
	for j, mi := range meta.Inputs {
		if c.in[j] == nil {
			return fmt.Errorf("missing input %q (%s %s)", mi.Name, mi.DataType, shapeString(mi.Shape))
		}
	}
	if err := checkOutputNames(req.outputs, meta.Outputs); err != nil {
		return err
	}
	if cap(c.out) < len(meta.Outputs) {
		c.out = make([][]float32, len(meta.Outputs))
	}
	c.out = c.out[:len(meta.Outputs)]
	for j, r := range lm.outRow {
		n := c.rows * r
		if cap(c.out[j]) < n {
			c.out[j] = make([]float32, n)
		}
		c.out[j] = c.out[j][:n]
	}
	return nil
}

// checkInput matches a request tensor to the model input it names and returns its row count.
func checkInput(t *inputTensor, want model.TensorInfo) (int, error) {
	shape := t.shape
	if len(shape) != len(want.Shape) {
		return 0, fmt.Errorf("input %q has shape %s; the model takes %s", t.name, shapeString(shape), shapeString(want.Shape))
	}
	for d := 1; d < len(shape); d++ {
		if shape[d] != want.Shape[d] {
			return 0, fmt.Errorf("input %q has shape %s; the model takes %s", t.name, shapeString(shape), shapeString(want.Shape))
		}
	}
	rows := shape[0]
	if rows < 1 {
		return 0, fmt.Errorf("input %q has shape %s: at least one row is needed", t.name, shapeString(shape))
	}
	if want.Shape[0] > 0 && rows != want.Shape[0] {
		return 0, fmt.Errorf("input %q has shape %s; the model takes exactly %d rows", t.name, shapeString(shape), want.Shape[0])
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	if int64(len(t.data)) != n {
		return 0, fmt.Errorf("input %q: shape %s needs %d values, data has %d", t.name, shapeString(shape), n, len(t.data))
	}
	if len(t.dims) > 1 {
		for d, v := range t.dims {
			if int64(v) != shape[d] {
				return 0, fmt.Errorf("input %q: nested data of shape %v does not match shape %s", t.name, t.dims, shapeString(shape))
			}
		}
	}
	return int(rows), nil
}

func shapeString(shape []int64) string {
	b := []byte{'['}
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return string(append(b, ']'))
}

func inputNames(ts []model.TensorInfo) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = strconv.Quote(t.Name)
	}
	return strings.Join(names, ", ")
}
