package model

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkFreight runs the committed freight model on one goroutine, the figure docs/benchmarks.md
// compares with onnxruntime on one thread (see ort_bench_test.go).
func BenchmarkFreight(b *testing.B) {
	m, _ := loadFreight(b)
	for _, rows := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			in := [][]float32{freightRows(rand.New(rand.NewPCG(1, 2)), rows)}
			out := [][]float32{make([]float32, rows)}
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Run(rows, in, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
