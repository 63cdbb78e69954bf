// Package oipgrpc is a small client of the Open Inference Protocol over gRPC, for the data plane
// to score batches on a model served elsewhere (a PredictionModel's Service, or any OIP v2
// runtime: Triton, KServe's servers): one model over one or a few connections, tensors raw, a deadline on
// every call, the bearer token as metadata. It retries nothing: whoever calls it knows whether a
// second attempt may duplicate a prediction.
package oipgrpc

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/freightcast/freightcast/internal/oippb"
)

// DefaultTimeout is the deadline of a call whose context has none.
const DefaultTimeout = 10 * time.Second

// Options configure a Client.
type Options struct {
	// Model and Version name the model; an empty Version lets the server choose.
	Model, Version string
	// TLS, when set, connects over TLS with it; nil connects in plaintext (h2c).
	TLS *tls.Config
	// Token, when set, is sent as "authorization: Bearer <token>" on every call.
	Token string
	// Timeout is the deadline of a call whose context has none; zero means DefaultTimeout.
	Timeout time.Duration
	// Conns is how many connections the client spreads its calls over, in turn; zero means
	// one. One HTTP/2 connection frames its streams through one reader and one writer on each
	// side, which caps a busy client well below what the server can do; a few connections
	// let the server's cores work side by side, as REST's many keep-alive connections do.
	Conns int
}

// Client calls one model over gRPC. It is safe for concurrent use.
type Client struct {
	conns []*grpc.ClientConn
	rpcs  []oippb.GRPCInferenceServiceClient
	next  atomic.Uint32
	opts  Options
}

// New returns a client of the server at target (host:port, or any gRPC target). It connects
// lazily, on the first call. dial adds to the connection's options.
func New(target string, opts Options, dial ...grpc.DialOption) (*Client, error) {
	if opts.Model == "" {
		return nil, errors.New("oipgrpc: the model name is empty")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	if opts.Conns < 0 || opts.Conns > MaxConns {
		return nil, fmt.Errorf("oipgrpc: %d connections asked for; between 1 and %d", opts.Conns, MaxConns)
	}
	c := &Client{opts: opts}
	for range max(opts.Conns, 1) {
		// Each connection is its own ClientConn: grpc-go keeps one transport per address in a
		// ClientConn, whatever the balancer.
		conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(creds), grpc.WithSharedWriteBuffer(true)}, dial...)...)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("oipgrpc: %w", err)
		}
		c.conns = append(c.conns, conn)
		c.rpcs = append(c.rpcs, oippb.NewGRPCInferenceServiceClient(conn))
	}
	return c, nil
}

// MaxConns bounds Options.Conns.
const MaxConns = 64

// rpc is the stub of the connection whose turn it is.
func (c *Client) rpc() oippb.GRPCInferenceServiceClient {
	if len(c.rpcs) == 1 {
		return c.rpcs[0]
	}
	return c.rpcs[int(c.next.Add(1)%uint32(len(c.rpcs)))]
}

// Close closes the connections.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.opts.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.opts.Token)
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// Ready tells whether the server is ready to score the model.
func (c *Client) Ready(ctx context.Context) (bool, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rpc().ModelReady(ctx, &oippb.ModelReadyRequest{Name: c.opts.Model, Version: c.opts.Version})
	if err != nil {
		return false, err
	}
	return resp.Ready, nil
}

// Metadata returns the model's metadata: its inputs and outputs with datatypes and shapes.
func (c *Client) Metadata(ctx context.Context) (*oippb.ModelMetadataResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	return c.rpc().ModelMetadata(ctx, &oippb.ModelMetadataRequest{Name: c.opts.Model, Version: c.opts.Version})
}

// Tensor is one input or output: its values in the protocol's raw layout (little-endian; BYTES
// as a 4-byte length before each element).
type Tensor struct {
	Name     string
	Datatype string
	Shape    []int64
	Raw      []byte
}

// FP32 is an FP32 tensor of rows rows of len(values)/rows values each.
func FP32(name string, rows int, values []float32) Tensor {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	shape := []int64{int64(rows)}
	if rows > 0 && len(values) != rows {
		shape = append(shape, int64(len(values)/rows))
	}
	return Tensor{Name: name, Datatype: "FP32", Shape: shape, Raw: raw}
}

// Float32s returns the values of an FP32 tensor.
func (t Tensor) Float32s() ([]float32, error) {
	if t.Datatype != "FP32" {
		return nil, fmt.Errorf("oipgrpc: output %q is %s, not FP32", t.Name, t.Datatype)
	}
	if len(t.Raw)%4 != 0 {
		return nil, fmt.Errorf("oipgrpc: output %q has %d bytes, not a whole number of FP32 values", t.Name, len(t.Raw))
	}
	out := make([]float32, len(t.Raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Raw[4*i:]))
	}
	return out, nil
}

// Infer scores inputs and returns the outputs (only those named, when any are), in the order
// the server sends them. The request carries id, which the server echoes.
func (c *Client) Infer(ctx context.Context, id string, inputs []Tensor, outputs ...string) ([]Tensor, error) {
	req := &oippb.ModelInferRequest{ModelName: c.opts.Model, ModelVersion: c.opts.Version, Id: id}
	for _, in := range inputs {
		req.Inputs = append(req.Inputs, &oippb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: in.Datatype, Shape: in.Shape})
		req.RawInputContents = append(req.RawInputContents, in.Raw)
	}
	for _, o := range outputs {
		req.Outputs = append(req.Outputs, &oippb.ModelInferRequest_InferRequestedOutputTensor{Name: o})
	}
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.rpc().ModelInfer(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp.Id != id {
		return nil, fmt.Errorf("oipgrpc: the answer is to request %q, not %q", resp.Id, id)
	}
	if len(resp.RawOutputContents) != len(resp.Outputs) {
		// A server that answers in typed contents (allowed by the protocol) is not one this
		// client reads: Freightcast and Triton answer raw.
		return nil, fmt.Errorf("oipgrpc: the answer has %d outputs and %d raw contents; this client reads raw outputs only", len(resp.Outputs), len(resp.RawOutputContents))
	}
	out := make([]Tensor, len(resp.Outputs))
	for i, o := range resp.Outputs {
		out[i] = Tensor{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape, Raw: resp.RawOutputContents[i]}
	}
	return out, nil
}
