package oipgrpc

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/worker"
)

// Every element type a pool may send or read survives the raw layout: what appendRaw writes as
// an input, decodeRaw reads back as an output of the same datatype and shape, at each type's
// extremes.
func TestRawLayoutRoundTripsEveryDatatype(t *testing.T) {
	tensors := map[string]*model.Tensor{
		"FP32":   model.NewTensor([]int{2, 1}, []float32{-1.5, 3.4e38}),
		"FP64":   model.NewTensor([]int{2, 1}, []float64{-1e-300, 1.7e308}),
		"INT8":   model.NewTensor([]int{2, 1}, []int8{-128, 127}),
		"INT16":  model.NewTensor([]int{2, 1}, []int16{-32768, 32767}),
		"INT32":  model.NewTensor([]int{2, 1}, []int32{-1 << 31, 1<<31 - 1}),
		"INT64":  model.NewTensor([]int{2, 1}, []int64{-1 << 63, 1<<63 - 1}),
		"UINT8":  model.NewTensor([]int{2, 1}, []uint8{0, 255}),
		"UINT16": model.NewTensor([]int{2, 1}, []uint16{0, 65535}),
		"UINT32": model.NewTensor([]int{2, 1}, []uint32{0, 1<<32 - 1}),
		"UINT64": model.NewTensor([]int{2, 1}, []uint64{0, 1<<64 - 1}),
		"BOOL":   model.NewTensor([]int{2, 1}, []bool{true, false}),
		"BYTES":  model.NewTensor([]int{2, 1}, []string{"", "Rotterdam ⚓"}),
	}
	for dt, in := range tensors {
		t.Run(dt, func(t *testing.T) {
			raw, err := appendRaw(nil, in)
			if err != nil {
				t.Fatal(err)
			}
			resp := &oippb.ModelInferResponse{
				Outputs:           []*oippb.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: dt, Shape: []int64{2, 1}}},
				RawOutputContents: [][]byte{raw},
			}
			out := &model.Tensor{}
			if err := FillOutputs(resp, []model.TensorInfo{{Name: "y", DataType: dt, Shape: []int64{-1, 1}, DType: in.DType}}, []*model.Tensor{out}); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(in, out); diff != "" {
				t.Errorf("round trip (-sent +read):\n%s", diff)
			}
		})
	}
}

// Answers that do not match the metadata are refused with what is wrong, typed contents included.
func TestFillOutputsNamesWhatIsWrong(t *testing.T) {
	want := []model.TensorInfo{{Name: "y", DataType: "INT8", Shape: []int64{-1, 2}, DType: model.Int8}}
	out := func(dt string, shape []int64, c *oippb.InferTensorContents) *oippb.ModelInferResponse {
		return &oippb.ModelInferResponse{Outputs: []*oippb.ModelInferResponse_InferOutputTensor{{Name: "y", Datatype: dt, Shape: shape, Contents: c}}}
	}
	cases := map[string]struct {
		resp *oippb.ModelInferResponse
		want string
	}{
		"typed, fine":         {out("INT8", []int64{1, 2}, &oippb.InferTensorContents{IntContents: []int32{-3, 4}}), ""},
		"typed, out of range": {out("INT8", []int64{1, 2}, &oippb.InferTensorContents{IntContents: []int32{-3, 400}}), "out of the datatype's range"},
		"typed, too few":      {out("INT8", []int64{2, 2}, &oippb.InferTensorContents{IntContents: []int32{1}}), "1 typed values for 4"},
		"fixed dim differs":   {out("INT8", []int64{1, 3}, &oippb.InferTensorContents{IntContents: []int32{1, 2, 3}}), "the metadata says [-1 2]"},
		"datatype differs":    {out("INT16", []int64{1, 2}, nil), `datatype "INT16"`},
		"output missing":      {&oippb.ModelInferResponse{}, `lacks output "y"`},
		"raw too short":       {&oippb.ModelInferResponse{Outputs: out("INT8", []int64{1, 2}, nil).Outputs, RawOutputContents: [][]byte{{1}}}, "1 raw bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := FillOutputs(tc.resp, want, []*model.Tensor{{}})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// Only the codes that blame the request's values refuse a batch; every other is retried.
func TestCallErrorRejectsOnlyTheRequestsFault(t *testing.T) {
	for c := codes.OK + 1; c <= codes.Unauthenticated; c++ {
		rejected := errors.Is(callError(status.Error(c, "x")), worker.ErrRejected)
		if want := c == codes.InvalidArgument || c == codes.OutOfRange; rejected != want {
			t.Errorf("%s: rejected = %v, want %v", c, rejected, want)
		}
	}
}
