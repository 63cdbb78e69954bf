package oip

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/tracing"
	"github.com/freightcast/freightcast/internal/version"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// This file serves the Open Inference Protocol over gRPC (inference.GRPCInferenceService, the
// service of KServe's and Triton's clients) from the same Server as REST: the same model, the
// same batcher and typed path, tokens, metrics and tracing. Beside it the standard
// grpc.health.v1 service answers for the server ("") and for the inference service, SERVING
// exactly when REST's /v2/health/ready answers 200.

// GRPCServiceName is the full name of the OIP gRPC service, also a grpc.health.v1 service name.
const GRPCServiceName = "inference.GRPCInferenceService"

// streamWorkers is the size of the gRPC server's pool of stream workers (NewGRPCServer says why).
const streamWorkers = 64

// grpcOpen are the methods that need no token, like REST's health probes.
var grpcOpen = map[string]bool{
	"/inference.GRPCInferenceService/ServerLive":  true,
	"/inference.GRPCInferenceService/ServerReady": true,
	"/grpc.health.v1.Health/Check":                true,
	"/grpc.health.v1.Health/Watch":                true,
	"/grpc.health.v1.Health/List":                 true,
}

// grpcEndpoints are the metric endpoint names of the methods (a fixed set, like REST's).
var grpcEndpoints = map[string]string{
	"/inference.GRPCInferenceService/ServerLive":     "grpc_server_live",
	"/inference.GRPCInferenceService/ServerReady":    "grpc_server_ready",
	"/inference.GRPCInferenceService/ModelReady":     "grpc_model_ready",
	"/inference.GRPCInferenceService/ServerMetadata": "grpc_server_metadata",
	"/inference.GRPCInferenceService/ModelMetadata":  "grpc_model_metadata",
	"/inference.GRPCInferenceService/ModelInfer":     "grpc_model_infer",
	"/grpc.health.v1.Health/Check":                   "grpc_health_check",
}

// grpcReasons are the error metric reasons of the status codes this server answers with.
var grpcReasons = map[codes.Code]string{
	codes.InvalidArgument:   metrics.ReasonBadRequest,
	codes.NotFound:          metrics.ReasonNotFound,
	codes.Unavailable:       metrics.ReasonNotReady,
	codes.ResourceExhausted: metrics.ReasonBusy,
	codes.Unauthenticated:   metrics.ReasonUnauthorized,
	codes.Internal:          metrics.ReasonInternal,
}

// NewGRPCServer returns a gRPC server of the inference and health services of s, over TLS when
// tlsConfig is set (hand it tlsreload's ServerConfig, so that a renewed certificate is served
// without a restart). Serve it on its own listener; GracefulStop it when the HTTP server stops.
// Call it once per Server. extra adds server options (an interceptor in front of the calls).
func (s *Server) NewGRPCServer(tlsConfig *tls.Config, extra ...grpc.ServerOption) *grpc.Server {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(s.cfg.MaxBodyBytes, math.MaxInt32))),
		grpc.UnaryInterceptor(s.grpcUnary),
		// A stream's handler runs on a worker of a fixed pool instead of a goroutine of its
		// own, whose stack grows anew for every call (decoding a message needs more than a
		// new goroutine's stack). A stream finding no worker idle gets its own goroutine, so
		// the pool is sized for the calls in flight, not the cores: with one worker per core,
		// 64 callers spent 5-8 % of the CPU growing stacks, with 32 or 64 workers 2-4 %, with
		// 256 8-11 %, for the garbage collector shrinks the stacks of the workers it finds
		// idle and each grows them back (GODEBUG=gcshrinkstackoff=1 removes that cost).
		grpc.NumStreamWorkers(streamWorkers),
		// Answers are written through one buffer per connection, not one per stream.
		grpc.SharedWriteBuffer(true),
	}
	opts = append(opts, extra...)
	if tlsConfig != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	gs := grpc.NewServer(opts...)
	oippb.RegisterGRPCInferenceServiceServer(gs, &grpcService{s: s})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	s.healthMu.Lock()
	s.health = hs
	s.healthMu.Unlock()
	s.updateHealth()
	return gs
}

// updateHealth sets the health services' status from Ready. It reads Ready under the lock, so
// that of two concurrent updates the last one written is never stale.
func (s *Server) updateHealth() {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if s.health == nil {
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.Ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(GRPCServiceName, st)
}

// grpcUnary checks the bearer token, traces ModelInfer and records the metrics of every call.
func (s *Server) grpcUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	endpoint, ok := grpcEndpoints[info.FullMethod]
	if !ok {
		endpoint = "grpc_other"
	}
	var resp any
	var err error
	// The metadata is copied out of the context only when something reads it: the copy was a
	// fiftieth of a call's CPU without tokens or tracing.
	var md metadata.MD
	if s.cfg.Tokens != nil || s.tracer != nil {
		md, _ = metadata.FromIncomingContext(ctx)
	}
	if s.cfg.Tokens != nil && !grpcOpen[info.FullMethod] && !s.grpcAuthenticated(md) {
		endpoint = "unauthorized"
		err = status.Error(codes.Unauthenticated, "missing or unknown bearer token: send authorization metadata \"Bearer <token>\"")
	} else if s.tracer != nil && endpoint == "grpc_model_infer" {
		ctx, sp := tracing.StartGRPCServerSpan(ctx, s.tracer, tracing.Header(md), info.FullMethod,
			attribute.String("freightcast.model.name", s.cfg.ModelName), attribute.String("freightcast.model.version", s.cfg.ModelVersion))
		resp, err = handler(ctx, req)
		code := status.Code(err)
		tracing.EndGRPCServerSpan(sp, code.String(), serverFault(code))
	} else {
		resp, err = handler(ctx, req)
	}
	code := status.Code(err)
	if reason, ok := grpcReasons[code]; ok {
		s.cfg.Metrics.Errors.WithLabelValues(reason).Inc()
	}
	d := time.Since(start).Seconds()
	if endpoint == "grpc_model_infer" && code == codes.OK {
		s.grpcInferOK.Observe(d)
	} else {
		s.cfg.Metrics.RequestDuration.WithLabelValues(endpoint, code.String()).Observe(d)
	}
	return resp, err
}

func serverFault(c codes.Code) bool {
	switch c {
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return true
	}
	return false
}

func (s *Server) grpcAuthenticated(md metadata.MD) bool {
	for _, v := range md.Get("authorization") {
		if _, ok := s.cfg.Tokens.AuthenticateValue(v); ok {
			return true
		}
	}
	return false
}

// grpcService implements the OIP gRPC service on a Server.
type grpcService struct {
	oippb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(context.Context, *oippb.ServerLiveRequest) (*oippb.ServerLiveResponse, error) {
	return &oippb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *oippb.ServerReadyRequest) (*oippb.ServerReadyResponse, error) {
	return &oippb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *oippb.ServerMetadataRequest) (*oippb.ServerMetadataResponse, error) {
	return &oippb.ServerMetadataResponse{Name: "freightcast", Version: version.Version, Extensions: []string{}}, nil
}

// checkModel answers NotFound unless name (and version, when given) is the server's model.
func (g *grpcService) checkModel(name, version string) error {
	if name == "" {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("the request names no model (this server serves %q)", g.s.cfg.ModelName))
	}
	if name != g.s.cfg.ModelName {
		return status.Error(codes.NotFound, fmt.Sprintf("unknown model %q (this server serves %q)", name, g.s.cfg.ModelName))
	}
	if version != "" && version != g.s.cfg.ModelVersion {
		return status.Error(codes.NotFound, fmt.Sprintf("model %q has no version %q (it has %q)", name, version, g.s.cfg.ModelVersion))
	}
	return nil
}

func (g *grpcService) ModelReady(_ context.Context, req *oippb.ModelReadyRequest) (*oippb.ModelReadyResponse, error) {
	if err := g.checkModel(req.GetName(), req.GetVersion()); err != nil {
		return nil, err
	}
	return &oippb.ModelReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) loaded() (*loadedModel, error) {
	lm := g.s.model.Load()
	if lm == nil {
		return nil, status.Error(codes.Unavailable, fmt.Sprintf("model %q is not loaded yet", g.s.cfg.ModelName))
	}
	return lm, nil
}

func (g *grpcService) ModelMetadata(_ context.Context, req *oippb.ModelMetadataRequest) (*oippb.ModelMetadataResponse, error) {
	if err := g.checkModel(req.GetName(), req.GetVersion()); err != nil {
		return nil, err
	}
	lm, err := g.loaded()
	if err != nil {
		return nil, err
	}
	resp := &oippb.ModelMetadataResponse{
		Name:     g.s.cfg.ModelName,
		Versions: []string{g.s.cfg.ModelVersion},
		Platform: Platform,
		Inputs:   grpcTensorMetadata(lm.meta.Inputs),
		Outputs:  grpcTensorMetadata(lm.meta.Outputs),
	}
	if len(lm.meta.Features) > 0 {
		resp.Properties = map[string]string{"features": strings.Join(lm.meta.Features, ",")}
	}
	return resp, nil
}

func grpcTensorMetadata(ts []model.TensorInfo) []*oippb.ModelMetadataResponse_TensorMetadata {
	out := make([]*oippb.ModelMetadataResponse_TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = &oippb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: t.DataType, Shape: t.Shape}
	}
	return out
}

func (g *grpcService) ModelInfer(ctx context.Context, req *oippb.ModelInferRequest) (*oippb.ModelInferResponse, error) {
	s := g.s
	if err := g.checkModel(req.GetModelName(), req.GetModelVersion()); err != nil {
		return nil, err
	}
	lm, err := g.loaded()
	if err != nil {
		return nil, err
	}
	// The message is in memory already (at most MaxBodyBytes); the budget still bounds how
	// many are decoded and run at once, as for REST bodies.
	held := int64(proto.Size(req))
	if !s.cfg.BodyBudget.Take(held) {
		return nil, status.Error(codes.ResourceExhausted, "the server holds as many requests as its memory allows; retry later")
	}
	defer s.cfg.BodyBudget.Release(held)
	c := s.calls.Get().(*call)
	defer s.putCall(c)
	c.model, c.err = lm, nil
	c.req.typed = lm.typed
	if lm.typed {
		return g.inferTyped(ctx, req, c, lm)
	}
	s.batcher.pending.Add(1)
	err = decodeGRPCRequest(req, &c.req, lm.meta.Inputs)
	if err == nil {
		err = matchRows(c, lm)
	}
	if err != nil {
		s.batcher.pending.Add(-1)
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.batcher.submit(c)
	batchAttributes(ctx, c.rows, c.batchRows, c.batchCalls)
	if c.err != nil {
		s.log.ErrorContext(ctx, "model run failed", "model", s.cfg.ModelName, "rows", c.rows, "err", c.err)
		return nil, status.Error(codes.Internal, "model run failed: "+c.err.Error())
	}
	resp := g.responseHead(req)
	for j, mo := range lm.meta.Outputs {
		if !wanted(c.req.outputs, mo.Name) {
			continue
		}
		shape := make([]int64, len(mo.Shape))
		shape[0] = int64(c.rows)
		copy(shape[1:], mo.Shape[1:])
		raw := make([]byte, 4*len(c.out[j]))
		for i, v := range c.out[j] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, status.Error(codes.InvalidArgument, nonFinite(mo.Name, i, float64(v)).Error())
			}
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
		resp.Outputs = append(resp.Outputs, &oippb.ModelInferResponse_InferOutputTensor{Name: mo.Name, Datatype: "FP32", Shape: shape})
		resp.RawOutputContents = append(resp.RawOutputContents, raw)
	}
	return resp, nil
}

// batchAttributes records on the call's span, if it is traced, its rows and the model run it
// joined, as REST's spans do.
func batchAttributes(ctx context.Context, rows, batchRows, batchCalls int) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(attribute.Int("freightcast.request.rows", rows),
			attribute.Int("freightcast.batch.rows", batchRows), attribute.Int("freightcast.batch.requests", batchCalls))
	}
}

func (g *grpcService) responseHead(req *oippb.ModelInferRequest) *oippb.ModelInferResponse {
	return &oippb.ModelInferResponse{ModelName: g.s.cfg.ModelName, ModelVersion: g.s.cfg.ModelVersion, Id: req.GetId()}
}

// inferTyped answers a request to a typed model: one Eval, as for REST.
func (g *grpcService) inferTyped(ctx context.Context, req *oippb.ModelInferRequest, c *call, lm *loadedModel) (*oippb.ModelInferResponse, error) {
	s := g.s
	err := decodeGRPCRequest(req, &c.req, lm.meta.Inputs)
	if err == nil {
		err = prepareTyped(c, lm)
	}
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	batchAttributes(ctx, c.rows, c.rows, 1)
	if err := s.runTyped(c, lm); err != nil {
		if inputError(err) {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		s.log.ErrorContext(ctx, "model run failed", "model", s.cfg.ModelName, "rows", c.rows, "err", err)
		return nil, status.Error(codes.Internal, "model run failed: "+err.Error())
	}
	resp := g.responseHead(req)
	for j, mo := range lm.meta.Outputs {
		o := c.typed.out[j]
		if o == nil {
			continue
		}
		raw, err := rawTensor(mo.Name, o)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		shape := make([]int64, len(o.Shape))
		for d, v := range o.Shape {
			shape[d] = int64(v)
		}
		out := &oippb.ModelInferResponse_InferOutputTensor{Name: mo.Name, Datatype: o.DType.OIP(), Shape: shape}
		if o.Keys != nil {
			// A ZipMap's labels, as REST's parameters.labels: a JSON array in a string (a
			// parameter holds one scalar).
			labels, err := appendData(nil, mo.Name+" labels", o.Keys)
			if err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
			out.Parameters = map[string]*oippb.InferParameter{"labels": {ParameterChoice: &oippb.InferParameter_StringParam{StringParam: string(labels)}}}
		}
		resp.Outputs = append(resp.Outputs, out)
		resp.RawOutputContents = append(resp.RawOutputContents, raw)
	}
	return resp, nil
}

// rawTensor writes a tensor's values in the protocol's raw layout: little-endian, BYTES as a
// 4-byte length before each element.
func rawTensor(name string, o *model.Tensor) ([]byte, error) {
	n := o.Len()
	var b []byte
	for i := range n {
		switch o.DType {
		case model.Float32:
			v := o.Float32[i]
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, nonFinite(name, i, float64(v))
			}
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case model.Float64:
			v := o.Float64[i]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nonFinite(name, i, v)
			}
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		case model.Int64:
			b = binary.LittleEndian.AppendUint64(b, uint64(o.Int64[i]))
		case model.Int32:
			b = binary.LittleEndian.AppendUint32(b, uint32(o.Int32[i]))
		case model.Int16:
			b = binary.LittleEndian.AppendUint16(b, uint16(o.Int16[i]))
		case model.Int8:
			b = append(b, byte(o.Int8[i]))
		case model.Uint64:
			b = binary.LittleEndian.AppendUint64(b, o.Uint64[i])
		case model.Uint32:
			b = binary.LittleEndian.AppendUint32(b, o.Uint32[i])
		case model.Uint16:
			b = binary.LittleEndian.AppendUint16(b, o.Uint16[i])
		case model.Uint8:
			b = append(b, o.Uint8[i])
		case model.Bool:
			if o.Bool[i] {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case model.String:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(o.String[i])))
			b = append(b, o.String[i]...)
		default:
			return nil, fmt.Errorf("output %q is %s, which this server cannot send", name, o.DType)
		}
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}
