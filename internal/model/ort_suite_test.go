//go:build ortbench

package model

// The backend suite's cases of the convolution, pooling, resizing, normalization,
// quantization, recurrent and Einsum operators on onnxruntime 1.30: where onnxruntime's answer
// differs from the suite's expected output in a case this runtime passes, the test says so, so
// that the two can be told apart by which matches ONNX's reference (see docs/inference.md).
//
//	go test -tags ortbench -run TestORTBackendFamilies -v ./internal/model/

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
	ort "github.com/yalue/onnxruntime_go"
)

// ortFamilyOps are the operators whose suite cases the test runs.
var ortFamilyOps = []string{"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool",
	"LpPool", "GlobalLpPool", "MaxUnpool", "Resize", "Upsample", "LRN", "InstanceNormalization", "GroupNormalization",
	"BatchNormalization", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
	"ConvInteger", "QLinearConv", "Einsum", "RNN", "GRU", "LSTM"}

func TestORTBackendFamilies(t *testing.T) {
	if err := ortInit(); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, cat := range backendCategories {
		d, _ := filepath.Glob(filepath.Join(backendSuiteDir, cat, "test_*"))
		dirs = append(dirs, d...)
	}
	counts := map[string]int{}
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
		if err != nil {
			continue
		}
		pb, err := onnxpb.Decode(data)
		if err != nil || !slices.ContainsFunc(pb.Graph.Nodes, func(n onnxpb.Node) bool { return slices.Contains(ortFamilyOps, n.OpType) }) {
			continue
		}
		name := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		ours := runBackendCase(dir).status
		theirs := ortBackendCase(t, data, pb, dir)
		counts["ours "+ours]++
		counts["onnxruntime "+theirs]++
		if ours == "passed" && theirs != "passed" {
			t.Logf("%s: this runtime passes, onnxruntime %s", name, theirs)
		}
		if ours != "passed" && theirs == "passed" {
			t.Logf("%s: onnxruntime passes, this runtime: %s", name, ours)
		}
	}
	t.Logf("%v", counts)
}

// ortBackendCase runs a case's first data set on onnxruntime: "passed", or what went wrong.
func ortBackendCase(t *testing.T, data []byte, pb *onnxpb.Model, dir string) string {
	set := filepath.Join(dir, "test_data_set_0")
	var inNames, outNames []string
	init := map[string]bool{}
	for _, in := range pb.Graph.Initializers {
		init[in.Name] = true
	}
	for _, in := range pb.Graph.Inputs {
		if !init[in.Name] {
			inNames = append(inNames, in.Name)
		}
	}
	for _, out := range pb.Graph.Outputs {
		outNames = append(outNames, out.Name)
	}
	opts := ortOptions(t)
	defer opts.Destroy()
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(data, inNames, outNames, opts)
	if err != nil {
		return "refuses: " + err.Error()
	}
	defer s.Destroy()
	ins := make([]ort.Value, len(inNames))
	for i := range ins {
		x, err := readTensorProto(filepath.Join(set, fmt.Sprintf("input_%d.pb", i)))
		if err != nil {
			return err.Error()
		}
		if ins[i], err = ortSuiteValue(x); err != nil {
			return err.Error()
		}
		defer ins[i].Destroy()
	}
	outs := make([]ort.Value, len(outNames))
	if err := s.Run(ins, outs); err != nil {
		return "fails: " + err.Error()
	}
	for i, v := range outs {
		defer v.Destroy()
		got, err := tensorOfORT(v)
		if err != nil {
			return err.Error()
		}
		want, err := readTensorProto(filepath.Join(set, fmt.Sprintf("output_%d.pb", i)))
		if err != nil {
			return err.Error()
		}
		if d := compareTensors(want, got, 1e-3, 1e-7); d != "" {
			return fmt.Sprintf("differs on output %d: %s", i, d)
		}
	}
	return "passed"
}

func ortSuiteValue(x *Tensor) (ort.Value, error) {
	shape := make([]int64, len(x.Shape))
	for i, d := range x.Shape {
		shape[i] = int64(d)
	}
	if len(shape) == 0 { // the binding makes a scalar its own way
		switch x.DType {
		case Float32:
			return ort.NewScalar(x.Float32[0])
		case Uint8:
			return ort.NewScalar(x.Uint8[0])
		case Int8:
			return ort.NewScalar(x.Int8[0])
		}
	}
	s := ort.NewShape(shape...)
	switch x.DType {
	case Float32:
		return ort.NewTensor(s, slices.Clone(data[float32](x)))
	case Float64:
		return ort.NewTensor(s, slices.Clone(data[float64](x)))
	case Int64:
		return ort.NewTensor(s, slices.Clone(data[int64](x)))
	case Int32:
		return ort.NewTensor(s, slices.Clone(data[int32](x)))
	case Uint8:
		return ort.NewTensor(s, slices.Clone(data[uint8](x)))
	case Int8:
		return ort.NewTensor(s, slices.Clone(data[int8](x)))
	}
	return nil, fmt.Errorf("input of type %s", x.DType)
}

func tensorOfORT(v ort.Value) (*Tensor, error) {
	shape := make([]int, len(v.GetShape()))
	for i, d := range v.GetShape() {
		shape[i] = int(d)
	}
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[float64]:
		return NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int64]:
		return NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int32]:
		return NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[uint8]:
		return NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int8]:
		return NewTensor(shape, x.GetData()), nil
	}
	return nil, fmt.Errorf("onnxruntime output %T", v)
}
