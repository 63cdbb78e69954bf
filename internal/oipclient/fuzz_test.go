package oipclient

import (
	"testing"

	"github.com/freightcast/freightcast/internal/model"
)

// FuzzAnswers feeds the model server's answers, which the pool reads from the network, to the
// client's decoders: whatever the bytes, an error or tensors that hold what their shape says,
// never a panic.
func FuzzAnswers(f *testing.F) {
	f.Add([]byte(`{"name":"m","inputs":[{"name":"x","datatype":"FP32","shape":[-1,3]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,1]}]}`),
		[]byte(`{"outputs":[{"name":"y","datatype":"FP32","shape":[2,1],"data":[0.5,1]}]}`))
	f.Add([]byte(`{"inputs":[{"name":"x","datatype":"BYTES","shape":[-1]}],"outputs":[{"name":"label","datatype":"INT64","shape":[-1]},{"name":"ok","datatype":"BOOL","shape":[-1]}]}`),
		[]byte(`{"outputs":[{"name":"ok","datatype":"BOOL","shape":[1],"data":[true]},{"name":"label","datatype":"INT64","shape":[1],"data":[9223372036854775807]}]}`))
	f.Fuzz(func(t *testing.T, metadata, answer []byte) {
		meta, err := parseMetadata(metadata)
		if err != nil {
			return
		}
		outputs := make([]*model.Tensor, len(meta.Outputs))
		for i := range outputs {
			outputs[i] = &model.Tensor{}
		}
		if err := fillOutputs(answer, meta.Outputs, outputs); err != nil {
			return
		}
		for i, o := range outputs {
			n := 1
			for _, d := range o.Shape {
				n *= d
			}
			if o.Len() != n || o.DType != meta.Outputs[i].DType {
				t.Fatalf("output %d: %d values of %s for shape %v, metadata %s", i, o.Len(), o.DType, o.Shape, meta.Outputs[i].DataType)
			}
		}
	})
}
