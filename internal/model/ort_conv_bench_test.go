//go:build ortbench

package model

import (
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// BenchmarkORTConv runs BenchmarkConv's layers on onnxruntime with one thread, after checking
// that it computes what this runtime computes.
func BenchmarkORTConv(b *testing.B) {
	if err := ortInit(); err != nil {
		b.Fatal(err)
	}
	for _, l := range convBenchLayers {
		b.Run(l.name, func(b *testing.B) {
			data := convBenchModel(l.in, l.out, l.size, l.k, l.strid)
			m, err := Load(data)
			if err != nil {
				b.Fatal(err)
			}
			x := convBenchInput(l.in, l.size)
			want := &Tensor{}
			if err := m.Eval([]*Tensor{x}, []*Tensor{want}); err != nil {
				b.Fatal(err)
			}
			in := ortValue(b, x)
			defer in.Destroy()
			shape := make([]int64, len(want.Shape))
			for i, d := range want.Shape {
				shape[i] = int64(d)
			}
			out, err := ort.NewEmptyTensor[float32](ort.NewShape(shape...))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Destroy()
			s := ortBoundSession(b, data, []string{"x"}, []string{"y"}, []ort.Value{in}, []ort.Value{out})
			defer s.Destroy()
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
			if d := diffFloats(out.GetData(), want.Float32, 1e-4); d != "" {
				b.Fatalf("onnxruntime and this runtime disagree: %s", d)
			}
			benchLoop(b, 1, s.Run)
		})
	}
}
