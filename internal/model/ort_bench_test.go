//go:build ortbench

package model

// The onnxruntime anchor of docs/benchmarks.md: the same freight model, batches and inputs on
// onnxruntime 1.30 with one intra-op and one inter-op thread. It needs cgo and the library that
// hack/onnxruntime.sh extracts; the ortbench tag keeps both out of every normal build:
//
//	go test -tags ortbench -run '^$' -bench 'Freight' ./internal/model/

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
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
	ours, _ := loadFreight(b)
	for _, rows := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("batch=%d", rows), func(b *testing.B) {
			data := freightRows(rand.New(rand.NewPCG(1, 2)), rows)
			in, err := ort.NewTensor(ort.NewShape(int64(rows), 12), data)
			if err != nil {
				b.Fatal(err)
			}
			defer in.Destroy()
			out, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 1))
			if err != nil {
				b.Fatal(err)
			}
			defer out.Destroy()
			opts, err := ort.NewSessionOptions()
			if err != nil {
				b.Fatal(err)
			}
			defer opts.Destroy()
			for _, err := range []error{opts.SetIntraOpNumThreads(1), opts.SetInterOpNumThreads(1), opts.SetExecutionMode(ort.ExecutionModeSequential)} {
				if err != nil {
					b.Fatal(err)
				}
			}
			s, err := ort.NewAdvancedSession(freightModel, []string{"features"}, []string{"delay_risk"},
				[]ort.Value{in}, []ort.Value{out}, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Destroy()
			// The anchor must compute what we compute, or the comparison means nothing.
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
			want := make([]float32, rows)
			if err := ours.Run(rows, [][]float32{data}, [][]float32{want}); err != nil {
				b.Fatal(err)
			}
			if d := diffFloats(out.GetData(), want, 1e-5); d != "" {
				b.Fatalf("onnxruntime and this runtime disagree: %s", d)
			}
			for b.Loop() {
				if err := s.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
