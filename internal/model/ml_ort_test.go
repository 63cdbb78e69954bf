//go:build ortbench

package model

// The model fixtures on onnxruntime 1.30 (cgo, the ortbench tag; see ort_bench_test.go): each
// file must give its training framework's answers there too, which checks that the fixtures
// are models onnxruntime takes as the real converters' files, and anchors the tree benchmarks.
//
//	go test -tags ortbench -run ORT ./internal/model/

import (
	"encoding/json"
	"fmt"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// ortOutput is an onnxruntime output read back: a tensor's values, or a ZipMap's sequence of
// maps as its keys and a rows × keys matrix.
type ortOutput struct {
	shape   []int64
	float32 []float32
	float64 []float64 // TreeEnsemble (opset 5) on DOUBLE input
	int64   []int64
	strings []string
	keys    []string // a sequence of maps: its keys, formatted
}

// ortOptions are the anchor's session options: one thread, sequential execution.
func ortOptions(t testing.TB) *ort.SessionOptions {
	t.Helper()
	if err := ortInit(); err != nil {
		t.Fatal(err)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{opts.SetIntraOpNumThreads(1), opts.SetInterOpNumThreads(1), opts.SetExecutionMode(ort.ExecutionModeSequential)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return opts
}

func ortSession(t testing.TB, fx *fixture) *ort.DynamicAdvancedSession {
	t.Helper()
	opts := ortOptions(t)
	defer opts.Destroy()
	var ins, outs []string
	for _, in := range fx.json.Inputs {
		ins = append(ins, in.Name)
	}
	for _, out := range fx.json.Outputs {
		outs = append(outs, out.Name)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(fx.model, ins, outs, opts)
	if err != nil {
		t.Fatalf("onnxruntime refuses %s: %v", fx.name, err)
	}
	return s
}

// ortInputs makes onnxruntime tensors of a fixture's inputs.
func ortInputs(t testing.TB, fx *fixture) []ort.Value {
	t.Helper()
	var vals []ort.Value
	for _, in := range fx.inputs {
		vals = append(vals, ortValue(t, in))
	}
	return vals
}

func readORT(t testing.TB, v ort.Value) ortOutput {
	t.Helper()
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return ortOutput{shape: x.GetShape(), float32: x.GetData()}
	case *ort.Tensor[float64]:
		return ortOutput{shape: x.GetShape(), float64: x.GetData()}
	case *ort.Tensor[int64]:
		return ortOutput{shape: x.GetShape(), int64: x.GetData()}
	case *ort.StringTensor:
		s, err := x.GetContents()
		if err != nil {
			t.Fatal(err)
		}
		return ortOutput{shape: x.GetShape(), strings: s}
	case *ort.Sequence:
		maps, err := x.GetValues()
		if err != nil {
			t.Fatal(err)
		}
		var out ortOutput
		for _, m := range maps {
			k, vals, err := m.(*ort.Map).GetKeysAndValues()
			if err != nil {
				t.Fatal(err)
			}
			keys, probs := readORT(t, k), readORT(t, vals)
			if out.keys == nil {
				for _, key := range keys.int64 {
					out.keys = append(out.keys, fmt.Sprint(key))
				}
				out.keys = append(out.keys, keys.strings...)
			}
			out.float32 = append(out.float32, probs.float32...)
		}
		out.shape = []int64{int64(len(maps)), int64(len(out.keys))}
		return out
	}
	t.Fatalf("onnxruntime output of type %T", v)
	return ortOutput{}
}

// runORT runs a fixture's inputs and returns every output.
func runORT(t testing.TB, s *ort.DynamicAdvancedSession, fx *fixture) []ortOutput {
	t.Helper()
	ins := ortInputs(t, fx)
	defer func() {
		for _, v := range ins {
			v.Destroy()
		}
	}()
	outs := make([]ort.Value, len(fx.outputs))
	if err := s.Run(ins, outs); err != nil {
		t.Fatalf("onnxruntime: %v", err)
	}
	res := make([]ortOutput, len(outs))
	for i, v := range outs {
		res[i] = readORT(t, v)
		v.Destroy()
	}
	return res
}

// tensor turns an onnxruntime output into a Tensor; a ZipMap's sequence of maps becomes its
// probabilities, with the keys in keys.
func (o ortOutput) tensor() (t *Tensor, keys []string) {
	shape := make([]int, len(o.shape))
	for i, d := range o.shape {
		shape[i] = int(d)
	}
	switch {
	case o.int64 != nil:
		return NewTensor(shape, o.int64), nil
	case o.strings != nil:
		return NewTensor(shape, o.strings), nil
	case o.float64 != nil:
		return NewTensor(shape, o.float64), nil
	}
	return NewTensor(shape, o.float32), o.keys
}

// TestORTMatchesFrameworks runs every fixture on onnxruntime and compares with the framework's
// answers: the fixture files are what onnxruntime takes from the real converters.
func TestORTMatchesFrameworks(t *testing.T) {
	for _, f := range readManifest(t).Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			fx := loadFixture(t, f.Name)
			s := ortSession(t, fx)
			defer s.Destroy()
			for i, o := range runORT(t, s, fx) {
				got, keys := o.tensor()
				want := fx.json.Outputs[i]
				tol := 1e-5
				if f.Name == "skl_svr_delay_hours" {
					// onnxruntime's RBF kernel is a float32 GEMM, ‖x‖² + ‖v‖² − 2x·v, over raw
					// distances of thousands of km: terms near 1e8 cancel to a few digits, and
					// predictions move by up to about 1e-4 relatively (the runtime computes the
					// differences in float64 and stays within 5e-7 of scikit-learn).
					tol = 3e-4
				}
				sameAnswers(t, want.Name, got, fx.outputs[i], tol)
				for k, raw := range want.ZipMapLabels {
					var label any
					if err := json.Unmarshal(raw, &label); err != nil {
						t.Fatal(err)
					}
					if fmt.Sprint(label) != keys[k] {
						t.Fatalf("%s: ZipMap key %d is %s, want %v", want.Name, k, keys[k], label)
					}
				}
			}
		})
	}
}

// BenchmarkORTTrees is the onnxruntime anchor of the tree benchmarks: the XGBoost-sized and the
// RandomForest fixtures, one intra-op thread, the same files and rows as BenchmarkTrees.
func BenchmarkORTTrees(b *testing.B) {
	for _, name := range treeBenchFixtures {
		fx := loadFixture(b, name)
		m, err := Load(fx.model)
		if err != nil {
			b.Fatal(err)
		}
		for _, rows := range []int{1, 64, 1024} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, rows), func(b *testing.B) {
				opts := ortOptions(b)
				defer opts.Destroy()
				x, cols := benchRows(fx, rows)
				in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(cols)), x)
				if err != nil {
					b.Fatal(err)
				}
				defer in.Destroy()
				label, err := ort.NewEmptyTensor[int64](ort.NewShape(int64(rows)))
				if err != nil {
					b.Fatal(err)
				}
				defer label.Destroy()
				probs, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), 2))
				if err != nil {
					b.Fatal(err)
				}
				defer probs.Destroy()
				s, err := ort.NewAdvancedSessionWithONNXData(fx.model, []string{"input"}, []string{"label", "probabilities"},
					[]ort.Value{in}, []ort.Value{label, probs}, opts)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Destroy()
				// The anchor must compute what we compute, or the comparison means nothing.
				if err := s.Run(); err != nil {
					b.Fatal(err)
				}
				ours := []*Tensor{{}, {}}
				if err := m.Eval([]*Tensor{NewTensor([]int{rows, cols}, x)}, ours); err != nil {
					b.Fatal(err)
				}
				sameAnswers(b, "label", ours[0], NewTensor([]int{rows}, label.GetData()), 0)
				sameAnswers(b, "probabilities", ours[1], NewTensor([]int{rows, 2}, probs.GetData()), 1e-5)
				cpu := startCPU()
				for b.Loop() {
					if err := s.Run(); err != nil {
						b.Fatal(err)
					}
				}
				cpu.report(b)
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// TestORTBinaryForms runs the single-column binary classifier's forms (binaryCases) on
// onnxruntime: both runtimes must agree, but for one label: with LOGISTIC and only positive
// weights, onnxruntime labels a row by its raw score above 0.5 while its probabilities say the
// opposite (σ(0.5) = 0.62 for the second class, label the first); this runtime's label is the
// class with the higher probability, as ONNX's reference evaluator's.
func TestORTBinaryForms(t *testing.T) {
	for name, tc := range binaryCases {
		t.Run(name, func(t *testing.T) {
			fx := &fixture{name: name, model: binaryTrees(tc.post, tc.wTrue, tc.wFalse),
				inputs: []*Tensor{NewTensor([]int{2, 1}, []float32{-1, 1})}}
			fx.json.Inputs = []oipFixtureVal{{Name: "X"}}
			fx.json.Outputs = []oipFixtureVal{{Name: "Y"}, {Name: "Z"}}
			fx.outputs = []*Tensor{nil, nil}
			s := ortSession(t, fx)
			defer s.Destroy()
			theirs := runORT(t, s, fx)
			z, _ := theirs[1].tensor()
			_, ours := evalFixture(t, fx)
			y, _ := theirs[0].tensor()
			if name == "positive only, LOGISTIC" {
				y.Int64[0] = 1 // the row whose raw score is 0.5
			}
			sameAnswers(t, "Y", ours[0], y, 0)
			sameAnswers(t, "Z", ours[1], z, 1e-6)
		})
	}
}
