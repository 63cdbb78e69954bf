package oip

import (
	"context"
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// grpcFuzzSeeds are ModelInferRequests to the freight model (FP32 rows, "freight") and to the
// PyTorch net (typed, "m"), typed and raw; testdata/fuzz/FuzzModelInferRequest holds them and
// what fuzzing found worth keeping.
func grpcFuzzSeeds() []*oippb.ModelInferRequest {
	row := featureRow(0)
	var raw []byte
	for _, v := range row {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	in := func(name, dt string, shape []int64, c *oippb.InferTensorContents) *oippb.ModelInferRequest_InferInputTensor {
		return &oippb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape, Contents: c}
	}
	numeric := in("numeric", "FP32", []int64{1, 8}, &oippb.InferTensorContents{Fp32Contents: []float32{900, 0.9, 0.1, 0.2, 0.5, 0.5, 0.3, 12}})
	return []*oippb.ModelInferRequest{
		{ModelName: "freight", Id: "1", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("features", "FP32", []int64{1, 12}, &oippb.InferTensorContents{Fp32Contents: row})}},
		{ModelName: "freight", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("features", "FP32", []int64{1, 12}, nil)}, RawInputContents: [][]byte{raw},
			Outputs: []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: "delay_risk"}}},
		{ModelName: "freight", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("features", "FP16", []int64{1, 12}, nil)}, RawInputContents: [][]byte{make([]byte, 24)}},
		{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{numeric, in("transport_mode", "INT64", []int64{1}, &oippb.InferTensorContents{Int64Contents: []int64{2}})}},
		{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{numeric, in("transport_mode", "BYTES", []int64{1}, &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("air")}})}},
		{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("numeric", "FP64", []int64{1, 8}, nil), in("transport_mode", "UINT8", []int64{1}, nil)},
			RawInputContents: [][]byte{make([]byte, 64), {3}}},
	}
}

// FuzzModelInferRequest sends arbitrary protobuf messages through the whole gRPC infer path
// (decoding, validation, the batcher or Eval, the response) of a server of FP32 rows and of a
// typed one. Whatever the message, the answer is a response whose raw contents match its
// outputs, or InvalidArgument or NotFound: never a panic, never an internal error.
func FuzzModelInferRequest(f *testing.F) {
	for _, req := range grpcFuzzSeeds() {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	rows := &grpcService{s: newTestServer(f, true, nil).oip}
	typed := &grpcService{s: newFixtureServer(f, modelfixtures.Load(f, "torch_tabular_opset17").Path)}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var req oippb.ModelInferRequest
		if proto.Unmarshal(msg, &req) != nil {
			return
		}
		for _, g := range []*grpcService{rows, typed} {
			if req.ModelName != "freight" && req.ModelName != "m" {
				req.ModelName = g.s.cfg.ModelName
			}
			resp, err := g.ModelInfer(context.Background(), &req)
			if err != nil {
				if c := status.Code(err); c != codes.InvalidArgument && c != codes.NotFound {
					t.Fatalf("%v for %v", err, &req)
				}
				continue
			}
			if len(resp.Outputs) == 0 || len(resp.RawOutputContents) != len(resp.Outputs) {
				t.Fatalf("%d outputs, %d raw contents for %v", len(resp.Outputs), len(resp.RawOutputContents), &req)
			}
		}
	})
}
