//go:build ortbench

package model

// The onnxruntime anchor of docs/benchmarks.md: the same models, batches and inputs on
// onnxruntime 1.30 with one intra-op and one inter-op thread, after checking that it computes
// what this runtime computes. It needs cgo and the library that hack/onnxruntime.sh extracts;
// the ortbench tag keeps both out of every normal build:
//
//	go test -tags ortbench -run '^$' -bench 'ORT' ./internal/model/

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

var ortInit = sync.OnceValue(func() error {
	lib := os.Getenv("ORT_LIB")
	if lib == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache")
		}
		lib = filepath.Join(cache, "freightcast", "onnxruntime", "1.30.0", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(lib); err != nil {
		return fmt.Errorf("onnxruntime library (run hack/onnxruntime.sh): %w", err)
	}
	ort.SetSharedLibraryPath(lib)
	return ort.InitializeEnvironment()
})

func BenchmarkORTFreight(b *testing.B) {
	if err := ortInit(); err != nil {
		b.Fatal(err)
	}
	ours, data := loadFreight(b)
	for _, rows := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			in := NewTensor([]int{rows, 12}, freightRows(rand.New(rand.NewPCG(1, 2)), rows))
			ortIn := ortValue(b, in)
			defer ortIn.Destroy()
			out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 1))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Destroy()
			s := ortBoundSession(b, data, []string{"features"}, []string{"delay_risk"}, []ort.Value{ortIn}, []ort.Value{out})
			defer s.Destroy()
			// The anchor must compute what we compute, or the comparison means nothing.
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
			want := make([]float32, rows)
			if err := ours.Run(rows, [][]float32{in.Float32}, [][]float32{want}); err != nil {
				b.Fatal(err)
			}
			if d := diffFloats(out.GetData(), want, 1e-5); d != "" {
				b.Fatalf("onnxruntime and this runtime disagree: %s", d)
			}
			benchLoop(b, rows, s.Run)
		})
	}
}

// ortBoundSession opens an onnxruntime session on model bytes with the anchor's options
// (ortOptions: one thread), bound to the given input and output values.
func ortBoundSession(b *testing.B, data []byte, inNames, outNames []string, ins, outs []ort.Value) *ort.AdvancedSession {
	b.Helper()
	opts := ortOptions(b)
	defer opts.Destroy()
	s, err := ort.NewAdvancedSessionWithONNXData(data, inNames, outNames, ins, outs, opts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// ortValue makes an onnxruntime tensor holding a copy of x.
func ortValue(t testing.TB, x *Tensor) ort.Value {
	t.Helper()
	shape := make([]int64, len(x.Shape))
	for i, d := range x.Shape {
		shape[i] = int64(d)
	}
	var v ort.Value
	var err error
	switch x.DType {
	case Float32:
		v, err = ort.NewTensor(ort.NewShape(shape...), slices.Clone(x.Float32))
	case Float64:
		v, err = ort.NewTensor(ort.NewShape(shape...), slices.Clone(x.Float64))
	case Int64:
		v, err = ort.NewTensor(ort.NewShape(shape...), slices.Clone(x.Int64))
	case Int32:
		v, err = ort.NewTensor(ort.NewShape(shape...), slices.Clone(x.Int32))
	case String:
		var st *ort.StringTensor
		if st, err = ort.NewStringTensor(ort.NewShape(shape...)); err == nil {
			err = st.SetContents(x.String)
		}
		v = st
	default:
		t.Fatalf("ortValue: %s", x.DType)
	}
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// benchORTEval runs a model on onnxruntime at every batch size, after checking it agrees with
// this runtime's Eval within 1e-5 on the same inputs.
func benchORTEval(b *testing.B, data []byte, inputs func(rows int) []*Tensor) {
	if err := ortInit(); err != nil {
		b.Fatal(err)
	}
	ours, err := Load(data)
	if err != nil {
		b.Fatal(err)
	}
	meta := ours.Metadata()
	var inNames, outNames []string
	for _, in := range meta.Inputs {
		inNames = append(inNames, in.Name)
	}
	for _, out := range meta.Outputs {
		outNames = append(outNames, out.Name)
	}
	for _, rows := range benchBatches {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			in := inputs(rows)
			want := []*Tensor{{}}
			if err := ours.Eval(in, want); err != nil {
				b.Fatal(err)
			}
			ins := make([]ort.Value, len(in))
			for i, t := range in {
				ins[i] = ortValue(b, t)
				defer ins[i].Destroy()
			}
			out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 1))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Destroy()
			s := ortBoundSession(b, data, inNames, outNames, ins, []ort.Value{out})
			defer s.Destroy()
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
			if d := diffFloats(out.GetData(), want[0].Float32, 1e-5); d != "" {
				b.Fatalf("onnxruntime and this runtime disagree: %s", d)
			}
			benchLoop(b, rows, s.Run)
		})
	}
}

func BenchmarkORTTorchTabular(b *testing.B) {
	for _, name := range torchBenchModels {
		data, err := os.ReadFile(filepath.Join(modelFixtures, name+".onnx"))
		if err != nil {
			b.Fatal(err)
		}
		_, fixture, _, _ := readOIPFixture(b, name)
		b.Run(name, func(b *testing.B) {
			benchORTEval(b, data, func(rows int) []*Tensor { return torchBenchInputs(fixture, rows) })
		})
	}
}

func BenchmarkORTShapeHeavy(b *testing.B) {
	benchORTEval(b, shapeHeavyModel(), shapeHeavyInputs)
}
