package oipgrpc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oipclient"
	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/worker"
)

// MaxAnswerBytes caps one answer, as the REST client caps its bodies: a bigger one fails with
// ResourceExhausted on our side, and the batch is tried again like any answer that did not come.
const MaxAnswerBytes = 64 << 20

// RemoteConfig is how an inference pool reaches a model served over gRPC.
type RemoteConfig struct {
	// URL is grpc://host:port (plaintext, h2c) or grpcs://host:port (TLS).
	URL string
	// TrustFiles, for grpcs, are the PEM files whose certificates the server's must chain to,
	// as the REST client's (oipclient.ServerTrust); none means the system's roots.
	TrustFiles []string
	// Model and Version address the model; an empty Version means the server's choice.
	Model, Version string
	// TokenFile, when set, holds the bearer token sent with every call: its first line.
	TokenFile string
}

// Remote is a worker.RemoteModel over gRPC: inputs sent as raw_input_contents, outputs read
// from raw_output_contents or typed contents, each checked against the model's metadata.
type Remote struct {
	c    *Client
	meta *model.Metadata
}

var _ worker.RemoteModel = (*Remote)(nil)

// DialRemote reads the model's metadata over gRPC. It fails when the server does not answer or
// has not the model; callers retry.
func DialRemote(ctx context.Context, cfg RemoteConfig) (*Remote, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "grpc" && u.Scheme != "grpcs") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("oipgrpc: URL %q is not grpc://host:port or grpcs://host:port", cfg.URL)
	}
	token, err := oipclient.ReadToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	opts := Options{Model: cfg.Model, Version: cfg.Version, Token: token}
	if u.Scheme == "grpcs" {
		opts.TLS = oipclient.ServerTrust(cfg.TrustFiles...)
	}
	// gRPC's own reconnection backoff grows to two minutes: a runtime back after a restart would
	// wait that long for the pool. Cap it as the worker caps its retries.
	reconnect := grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: 5 * time.Second}
	reconnect.Backoff.BaseDelay, reconnect.Backoff.MaxDelay = 100*time.Millisecond, 2*time.Second
	c, err := New(u.Host, opts, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxAnswerBytes)), grpc.WithConnectParams(reconnect))
	if err != nil {
		return nil, err
	}
	md, err := c.Metadata(ctx)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("oipgrpc: model metadata from %s: %w", cfg.URL, err)
	}
	meta, err := oipclient.NewMetadata(tensorMetadata(md.Inputs), tensorMetadata(md.Outputs))
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("oipgrpc: model metadata from %s: %w", cfg.URL, err)
	}
	return &Remote{c: c, meta: meta}, nil
}

func tensorMetadata(ts []*oippb.ModelMetadataResponse_TensorMetadata) []oipclient.TensorMetadata {
	out := make([]oipclient.TensorMetadata, len(ts))
	for i, t := range ts {
		out[i] = oipclient.TensorMetadata{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape}
	}
	return out
}

// Metadata is the model's inputs and outputs as its server describes them.
func (r *Remote) Metadata() *model.Metadata { return r.meta }

// Close closes the connection.
func (r *Remote) Close() error { return r.c.Close() }

// Infer sends one ModelInfer call within ctx's deadline and fills outputs from the answer.
func (r *Remote) Infer(ctx context.Context, inputs, outputs []*model.Tensor) error {
	if len(inputs) != len(r.meta.Inputs) || len(outputs) != len(r.meta.Outputs) {
		return fmt.Errorf("oipgrpc: %d inputs and %d outputs given, the model has %d and %d", len(inputs), len(outputs), len(r.meta.Inputs), len(r.meta.Outputs))
	}
	req := &oippb.ModelInferRequest{ModelName: r.c.opts.Model, ModelVersion: r.c.opts.Version,
		Inputs: make([]*oippb.ModelInferRequest_InferInputTensor, len(inputs)), RawInputContents: make([][]byte, len(inputs))}
	for i, t := range inputs {
		raw, err := appendRaw(nil, t)
		if err != nil {
			return fmt.Errorf("oipgrpc: input %s: %w", r.meta.Inputs[i].Name, err)
		}
		shape := make([]int64, len(t.Shape))
		for k, d := range t.Shape {
			shape[k] = int64(d)
		}
		req.Inputs[i] = &oippb.ModelInferRequest_InferInputTensor{Name: r.meta.Inputs[i].Name, Datatype: r.meta.Inputs[i].DataType, Shape: shape}
		req.RawInputContents[i] = raw
	}
	ctx, cancel := r.c.ctx(ctx)
	defer cancel()
	resp, err := r.c.rpc().ModelInfer(ctx, req)
	if err != nil {
		return callError(err)
	}
	return FillOutputs(resp, r.meta.Outputs, outputs)
}

// callError marks the codes that say the request's own values are wrong (InvalidArgument,
// OutOfRange: what a REST server answers with a 400) as worker.ErrRejected. Every other code
// is the model not answering now, and the batch is sent again: Unavailable, DeadlineExceeded,
// ResourceExhausted, Internal and Unknown obviously; FailedPrecondition and NotFound too (the
// server is not in the state to score, a model not loaded yet), and Unauthenticated and
// PermissionDenied (a token being rotated is the pool's problem, not the events': refusing
// them would dead-letter the whole stream), as the REST client retries a 401, 403 or 404.
func callError(err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		return fmt.Errorf("%w: %s: %s", worker.ErrRejected, st.Code(), truncate(st.Message(), 512))
	}
	return fmt.Errorf("oipgrpc: ModelInfer: %s: %s", st.Code(), truncate(st.Message(), 512))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// rawSize is the bytes of one element of each fixed-size element type in raw contents.
var rawSize = map[model.DType]int{
	model.Float32: 4, model.Float64: 8, model.Int8: 1, model.Int16: 2, model.Int32: 4, model.Int64: 8,
	model.Uint8: 1, model.Uint16: 2, model.Uint32: 4, model.Uint64: 8, model.Bool: 1,
}

// appendRaw appends t's values to b in the protocol's raw layout: little-endian, a BOOL one
// byte, a BYTES element its 4-byte length and then its bytes.
func appendRaw(b []byte, t *model.Tensor) ([]byte, error) {
	le := binary.LittleEndian
	switch t.DType {
	case model.Float32:
		for _, v := range t.Float32 {
			b = le.AppendUint32(b, math.Float32bits(v))
		}
	case model.Float64:
		for _, v := range t.Float64 {
			b = le.AppendUint64(b, math.Float64bits(v))
		}
	case model.Int8:
		for _, v := range t.Int8 {
			b = append(b, byte(v))
		}
	case model.Int16:
		for _, v := range t.Int16 {
			b = le.AppendUint16(b, uint16(v))
		}
	case model.Int32:
		for _, v := range t.Int32 {
			b = le.AppendUint32(b, uint32(v))
		}
	case model.Int64:
		for _, v := range t.Int64 {
			b = le.AppendUint64(b, uint64(v))
		}
	case model.Uint8:
		b = append(b, t.Uint8...)
	case model.Uint16:
		for _, v := range t.Uint16 {
			b = le.AppendUint16(b, v)
		}
	case model.Uint32:
		for _, v := range t.Uint32 {
			b = le.AppendUint32(b, v)
		}
	case model.Uint64:
		for _, v := range t.Uint64 {
			b = le.AppendUint64(b, v)
		}
	case model.Bool:
		for _, v := range t.Bool {
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		}
	case model.String:
		for _, v := range t.String {
			if uint64(len(v)) > math.MaxUint32 {
				return nil, errors.New("a BYTES element longer than 4 GiB")
			}
			b = le.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		}
	default:
		return nil, fmt.Errorf("element type %s has no OIP datatype", t.DType)
	}
	return b, nil
}

// FillOutputs reads a ModelInfer answer into outputs, in the order of want (the model's
// metadata): each output found by name, its datatype the metadata's, its shape's element count
// the number of values it carries, raw (raw_output_contents) or typed (contents). An answer that
// is not what the metadata promised is the server's fault, not the request's: no ErrRejected.
func FillOutputs(resp *oippb.ModelInferResponse, want []model.TensorInfo, outputs []*model.Tensor) error {
	raw := len(resp.RawOutputContents) > 0
	if raw && len(resp.RawOutputContents) != len(resp.Outputs) {
		return fmt.Errorf("oipgrpc: the answer has %d outputs and %d raw contents", len(resp.Outputs), len(resp.RawOutputContents))
	}
	for j, w := range want {
		i := -1
		for k, o := range resp.Outputs {
			if o.GetName() == w.Name {
				i = k
				break
			}
		}
		if i < 0 {
			return fmt.Errorf("oipgrpc: the answer lacks output %q", w.Name)
		}
		var content []byte
		if raw {
			content = resp.RawOutputContents[i]
		}
		if err := fillTensor(outputs[j], resp.Outputs[i], content, raw, w); err != nil {
			return fmt.Errorf("oipgrpc: output %q: %w", w.Name, err)
		}
	}
	return nil
}

// fillTensor decodes one answer tensor into dst.
func fillTensor(dst *model.Tensor, o *oippb.ModelInferResponse_InferOutputTensor, content []byte, raw bool, want model.TensorInfo) error {
	if o.Datatype != want.DataType {
		return fmt.Errorf("datatype %q, the metadata says %q", o.Datatype, want.DataType)
	}
	dt, ok := oipclient.DType(o.Datatype)
	if !ok {
		return fmt.Errorf("datatype %q is not one a pipeline stores", o.Datatype)
	}
	if len(o.Shape) != len(want.Shape) {
		return fmt.Errorf("shape %v, the metadata says %v", o.Shape, want.Shape)
	}
	n := 1
	shape := dst.Shape[:0]
	for k, d := range o.Shape {
		if d < 0 || (want.Shape[k] >= 0 && d != want.Shape[k]) {
			return fmt.Errorf("shape %v, the metadata says %v", o.Shape, want.Shape)
		}
		// Bounded by what the answer can carry: raw, at least a byte a value (BYTES four); typed,
		// the answer is already decoded. Larger products cannot match and overflow nothing.
		if d > MaxAnswerBytes || int64(n)*d > MaxAnswerBytes {
			return fmt.Errorf("shape %v holds more values than an answer can carry", o.Shape)
		}
		n *= int(d)
		shape = append(shape, int(d))
	}
	*dst = model.Tensor{DType: dt, Shape: shape}
	if raw {
		return decodeRaw(dst, content, n)
	}
	return decodeContents(dst, o.Contents, n)
}

// decodeRaw reads n values of dst's type from little-endian raw contents b.
func decodeRaw(dst *model.Tensor, b []byte, n int) error {
	if dst.DType == model.String {
		dst.String = make([]string, 0, n)
		for len(b) > 0 {
			if len(b) < 4 {
				return errors.New("raw BYTES contents end inside an element's length")
			}
			l := binary.LittleEndian.Uint32(b)
			if uint64(l) > uint64(len(b)-4) {
				return fmt.Errorf("a BYTES element of %d bytes where %d are left", l, len(b)-4)
			}
			dst.String = append(dst.String, string(b[4:4+l]))
			b = b[4+l:]
		}
		if len(dst.String) != n {
			return fmt.Errorf("%d BYTES elements for %d in the shape", len(dst.String), n)
		}
		return nil
	}
	size := rawSize[dst.DType]
	if len(b) != n*size {
		return fmt.Errorf("%d raw bytes, the shape needs %d values of %d bytes", len(b), n, size)
	}
	le := binary.LittleEndian
	switch dst.DType {
	case model.Float32:
		dst.Float32 = rawValues(b, 4, func(p []byte) float32 { return math.Float32frombits(le.Uint32(p)) })
	case model.Float64:
		dst.Float64 = rawValues(b, 8, func(p []byte) float64 { return math.Float64frombits(le.Uint64(p)) })
	case model.Int8:
		dst.Int8 = rawValues(b, 1, func(p []byte) int8 { return int8(p[0]) })
	case model.Int16:
		dst.Int16 = rawValues(b, 2, func(p []byte) int16 { return int16(le.Uint16(p)) })
	case model.Int32:
		dst.Int32 = rawValues(b, 4, func(p []byte) int32 { return int32(le.Uint32(p)) })
	case model.Int64:
		dst.Int64 = rawValues(b, 8, func(p []byte) int64 { return int64(le.Uint64(p)) })
	case model.Uint8:
		dst.Uint8 = append([]uint8(nil), b...)
	case model.Uint16:
		dst.Uint16 = rawValues(b, 2, le.Uint16)
	case model.Uint32:
		dst.Uint32 = rawValues(b, 4, le.Uint32)
	case model.Uint64:
		dst.Uint64 = rawValues(b, 8, le.Uint64)
	case model.Bool:
		dst.Bool = make([]bool, len(b))
		for i, v := range b {
			if v > 1 {
				return fmt.Errorf("BOOL value %d at %d is neither 0 nor 1", v, i)
			}
			dst.Bool[i] = v == 1
		}
	}
	return nil
}

func rawValues[T any](b []byte, size int, read func([]byte) T) []T {
	out := make([]T, len(b)/size)
	for i := range out {
		out[i] = read(b[i*size:])
	}
	return out
}

// decodeContents reads n values of dst's type from the typed contents field that carries it;
// the narrow integers travel in 32-bit fields and are checked to fit.
func decodeContents(dst *model.Tensor, c *oippb.InferTensorContents, n int) error {
	var got int
	var err error
	switch dst.DType {
	case model.Float32:
		dst.Float32, got = c.GetFp32Contents(), len(c.GetFp32Contents())
	case model.Float64:
		dst.Float64, got = c.GetFp64Contents(), len(c.GetFp64Contents())
	case model.Int8:
		dst.Int8, err = narrow[int8](c.GetIntContents(), math.MinInt8, math.MaxInt8)
		got = len(c.GetIntContents())
	case model.Int16:
		dst.Int16, err = narrow[int16](c.GetIntContents(), math.MinInt16, math.MaxInt16)
		got = len(c.GetIntContents())
	case model.Int32:
		dst.Int32, got = c.GetIntContents(), len(c.GetIntContents())
	case model.Int64:
		dst.Int64, got = c.GetInt64Contents(), len(c.GetInt64Contents())
	case model.Uint8:
		dst.Uint8, err = narrow[uint8](c.GetUintContents(), 0, math.MaxUint8)
		got = len(c.GetUintContents())
	case model.Uint16:
		dst.Uint16, err = narrow[uint16](c.GetUintContents(), 0, math.MaxUint16)
		got = len(c.GetUintContents())
	case model.Uint32:
		dst.Uint32, got = c.GetUintContents(), len(c.GetUintContents())
	case model.Uint64:
		dst.Uint64, got = c.GetUint64Contents(), len(c.GetUint64Contents())
	case model.Bool:
		dst.Bool, got = c.GetBoolContents(), len(c.GetBoolContents())
	case model.String:
		dst.String = make([]string, len(c.GetBytesContents()))
		for i, v := range c.GetBytesContents() {
			dst.String[i] = string(v)
		}
		got = len(dst.String)
	}
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%d typed values for %d in the shape", got, n)
	}
	return nil
}

func narrow[T int8 | int16 | uint8 | uint16, W int32 | uint32](vs []W, lo, hi W) ([]T, error) {
	out := make([]T, len(vs))
	for i, v := range vs {
		if v < lo || v > hi {
			return nil, fmt.Errorf("value %d at %d is out of the datatype's range", v, i)
		}
		out[i] = T(v)
	}
	return out, nil
}
