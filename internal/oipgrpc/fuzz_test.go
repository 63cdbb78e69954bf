package oipgrpc

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oipclient"
	"github.com/freightcast/freightcast/internal/oippb"
)

// FuzzFillOutputs feeds a runtime's ModelInfer answers, which the pool reads from the network,
// to the decoder, against the metadata the runtime gave (one output of datatype and shape
// [-1, width]): whatever the bytes, an error or a tensor of the metadata's type holding what its
// shape says, never a panic. The seed corpus (testdata/fuzz/FuzzFillOutputs) holds raw and
// typed answers of each kind of datatype.
func FuzzFillOutputs(f *testing.F) {
	f.Fuzz(func(t *testing.T, datatype string, width int64, answer []byte) {
		meta, err := oipclient.NewMetadata(
			[]oipclient.TensorMetadata{{Name: "x", Datatype: "FP32", Shape: []int64{-1, 3}}},
			[]oipclient.TensorMetadata{{Name: "y", Datatype: datatype, Shape: []int64{-1, width}}})
		if err != nil {
			return
		}
		resp := &oippb.ModelInferResponse{}
		if proto.Unmarshal(answer, resp) != nil {
			return
		}
		out := &model.Tensor{}
		if err := FillOutputs(resp, meta.Outputs, []*model.Tensor{out}); err != nil {
			return
		}
		n := 1
		for _, d := range out.Shape {
			n *= d
		}
		if out.Len() != n || out.DType != meta.Outputs[0].DType || len(out.Shape) != 2 || (width >= 0 && out.Shape[1] != int(width)) {
			t.Fatalf("%d values of %s for shape %v, metadata %s %v", out.Len(), out.DType, out.Shape, datatype, meta.Outputs[0].Shape)
		}
	})
}
