package oip

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
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

// rawDatatypes are the datatypes of fixed size in raw_input_contents, which
// FuzzRawMatchesContents picks from.
var rawDatatypes = []string{"BOOL", "INT8", "UINT8", "INT16", "UINT16", "FP16", "INT32", "UINT32", "FP32", "INT64", "UINT64", "FP64"}

// FuzzRawMatchesContents checks the raw decoding of each datatype, its FP32 fast path for rows
// included, against the typed contents decoding of the same values, which checks and stores
// them one by one: the same values kept, or the same refusal, for rows and for a typed model.
func FuzzRawMatchesContents(f *testing.F) {
	fp32 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	f.Add(uint8(8), false, fp32(1.5, -2, 0, 3e38))
	f.Add(uint8(8), false, fp32(1, float32(math.Inf(-1)), float32(math.NaN())))
	f.Add(uint8(8), true, fp32(1, 2, float32(math.Inf(1))))
	f.Add(uint8(11), false, binary.LittleEndian.AppendUint64(nil, math.Float64bits(1e300)))
	f.Add(uint8(5), false, []byte{0x00, 0x7c, 0x01, 0x3c})
	f.Add(uint8(10), true, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add(uint8(0), true, []byte{0, 1, 3})
	f.Fuzz(func(t *testing.T, which uint8, typed bool, b []byte) {
		dt := rawDatatypes[int(which)%len(rawDatatypes)]
		size := rawSize[dt]
		n := len(b) / size
		b = b[:n*size]
		if dt == "BOOL" {
			// Raw bytes other than 0 and 1 have no contents to compare with (TestGRPCInferErrors
			// covers their refusal).
			for k := range b {
				b[k] &= 1
			}
		}
		cdt, c := contentsOf(dt, b)
		raw, want := inputTensor{name: []byte("x")}, inputTensor{name: []byte("x")}
		rawErr := decodeRaw(&raw, dt, b, n, 0, typed)
		wantErr := decodeContents(&want, cdt, c, n, typed)
		if fmt.Sprint(rawErr) != fmt.Sprint(wantErr) {
			t.Fatalf("%s (typed %v) % x: raw decoding %v, contents %v", dt, typed, b, rawErr, wantErr)
		}
		if rawErr == nil && (!slices.Equal(raw.data, want.data) || !slices.Equal(raw.num, want.num) ||
			!slices.Equal(raw.ints, want.ints) || !slices.Equal(raw.intOK, want.intOK)) {
			t.Fatalf("%s (typed %v) % x: raw decoding %v %v %v %v, contents %v %v %v %v", dt, typed, b,
				raw.data, raw.num, raw.ints, raw.intOK, want.data, want.num, want.ints, want.intOK)
		}
	})
}

// contentsOf is raw contents b of datatype dt as the contents field dt travels in, and the
// datatype to decode them as (FP16, which has no field, as FP32 values).
func contentsOf(dt string, b []byte) (string, *oippb.InferTensorContents) {
	le := binary.LittleEndian
	c := &oippb.InferTensorContents{}
	size := rawSize[dt]
	for k := 0; k+size <= len(b); k += size {
		e := b[k:]
		switch dt {
		case "BOOL":
			c.BoolContents = append(c.BoolContents, e[0] == 1)
		case "INT8":
			c.IntContents = append(c.IntContents, int32(int8(e[0])))
		case "UINT8":
			c.UintContents = append(c.UintContents, uint32(e[0]))
		case "INT16":
			c.IntContents = append(c.IntContents, int32(int16(le.Uint16(e))))
		case "UINT16":
			c.UintContents = append(c.UintContents, uint32(le.Uint16(e)))
		case "INT32":
			c.IntContents = append(c.IntContents, int32(le.Uint32(e)))
		case "UINT32":
			c.UintContents = append(c.UintContents, le.Uint32(e))
		case "INT64":
			c.Int64Contents = append(c.Int64Contents, int64(le.Uint64(e)))
		case "UINT64":
			c.Uint64Contents = append(c.Uint64Contents, le.Uint64(e))
		case "FP16":
			c.Fp32Contents = append(c.Fp32Contents, halfToFloat(le.Uint16(e)))
		case "FP32":
			c.Fp32Contents = append(c.Fp32Contents, math.Float32frombits(le.Uint32(e)))
		case "FP64":
			c.Fp64Contents = append(c.Fp64Contents, math.Float64frombits(le.Uint64(e)))
		}
	}
	if dt == "FP16" {
		return "FP32", c
	}
	return dt, c
}
