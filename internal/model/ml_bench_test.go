package model

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// treeBenchFixtures are the tree benchmarks of docs/benchmarks.md: an XGBoost-sized model (100
// trees of depth 6 over 12 features) and a scikit-learn RandomForest (50 trees of depth 10).
var treeBenchFixtures = []string{"xgb_binary", "skl_rf_bench"}

// benchRows cycles a fixture's held-out rows to fill a batch.
func benchRows(fx *fixture, rows int) ([]float32, int) {
	in := fx.inputs[0]
	x, cols := in.Float32, in.Shape[1]
	out := make([]float32, rows*cols)
	for r := range rows {
		src := r % in.Shape[0]
		copy(out[r*cols:(r+1)*cols], x[src*cols:(src+1)*cols])
	}
	return out, cols
}

// BenchmarkTrees runs the tree fixtures through Load and Eval on one goroutine, the figure
// docs/benchmarks.md compares with onnxruntime on one thread (BenchmarkORTTrees, ml_ort_test.go)
// on the same files and rows: the label and the probabilities of every row.
func BenchmarkTrees(b *testing.B) {
	for _, name := range treeBenchFixtures {
		fx := loadFixture(b, name)
		m, err := Load(fx.model)
		if err != nil {
			b.Fatal(err)
		}
		for _, rows := range []int{1, 64, 1024} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, rows), func(b *testing.B) {
				x, cols := benchRows(fx, rows)
				in := []*Tensor{NewTensor([]int{rows, cols}, x)}
				out := []*Tensor{{}, {}}
				b.ReportAllocs()
				cpu := startCPU()
				for b.Loop() {
					if err := m.Eval(in, out); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkSVM runs the SVM fixtures (about 260 support vectors of 12 features each) through
// Eval: the kernel rows dominate, and a warm run allocates nothing.
func BenchmarkSVM(b *testing.B) {
	for _, name := range []string{"skl_svc_grade", "skl_svc_grade_ovo_nozipmap", "skl_svr_delay_hours"} {
		fx := loadFixture(b, name)
		m, err := Load(fx.model)
		if err != nil {
			b.Fatal(err)
		}
		for _, rows := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, rows), func(b *testing.B) {
				x, cols := benchRows(fx, rows)
				in := []*Tensor{NewTensor([]int{rows, cols}, x)}
				out := make([]*Tensor, len(m.Metadata().Outputs))
				for i := range out {
					out[i] = &Tensor{}
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := m.Eval(in, out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// cpuTimer reports the process's CPU time per operation next to the wall clock, a figure a
// machine shared with other work disturbs less.
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{processCPU()} }

func (c cpuTimer) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}
