package main

import (
	"bytes"
	"math"
	"os"
	"runtime"
	"testing"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/google/go-cmp/cmp"
	onnx "github.com/owulveryck/onnx-go"
	"github.com/owulveryck/onnx-go/backend/x/gorgonnx"
	"gorgonia.org/tensor"
)

// generated is shared by the tests: training takes about half a second.
var generated = func() func(t *testing.T) *Result {
	var r *Result
	var err error
	return func(t *testing.T) *Result {
		t.Helper()
		if r == nil && err == nil {
			r, err = Generate(DefaultConfig)
		}
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		return r
	}
}()

// TestCommittedModelIsReproducible regenerates the model in-process and compares it with the
// committed files byte for byte. Float rounding differs where the compiler fuses multiply-adds
// (arm64, ppc64, s390x), so the byte comparison runs where the files were made.
func TestCommittedModelIsReproducible(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the committed model was generated on amd64; %s may round differently", runtime.GOARCH)
	}
	r := generated(t)
	for path, got := range map[string][]byte{
		"../../models/freight-delay-risk.onnx":         r.ONNX,
		"../../models/freight-delay-risk.request.json": r.Request,
	} {
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from a fresh run of the generator (%d vs %d bytes); run go run ./hack/freightmodel", path, len(want), len(got))
		}
	}
}

// TestExportMatchesReference checks the exported ONNX, run by this project's runtime and by
// onnx-go's gorgonnx, against the float64 network on raw held-out features.
func TestExportMatchesReference(t *testing.T) {
	r := generated(t)
	const rows = 300
	in := make([]float32, rows*12)
	want := make([]float64, rows)
	for i, e := range r.test[:rows] {
		for j, v := range e.x {
			in[i*12+j] = float32(v)
		}
		// The reference sees the same float32-rounded features the model gets.
		var x [12]float64
		for j := range x {
			x[j] = float64(in[i*12+j])
		}
		want[i] = r.net.predict(x)
	}

	m, err := model.Load(r.ONNX)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(Features, m.Metadata().Features); diff != "" {
		t.Errorf("features (-want +got):\n%s", diff)
	}
	ours := make([]float32, rows)
	if err := m.Run(rows, [][]float32{in}, [][]float32{ours}); err != nil {
		t.Fatalf("Run: %v", err)
	}

	backend := gorgonnx.NewGraph()
	gm := onnx.NewModel(backend)
	if err := gm.UnmarshalBinary(r.ONNX); err != nil {
		t.Fatalf("gorgonnx decode: %v", err)
	}
	if err := gm.SetInput(0, tensor.New(tensor.WithShape(rows, 12), tensor.WithBacking(append([]float32(nil), in...)))); err != nil {
		t.Fatal(err)
	}
	if err := backend.Run(); err != nil {
		t.Fatalf("gorgonnx run: %v", err)
	}
	outs, err := gm.GetOutputTensors()
	if err != nil {
		t.Fatal(err)
	}
	ref := outs[0].Data().([]float32)

	for i := range rows {
		if d := math.Abs(float64(ours[i]) - want[i]); d > 1e-5 {
			t.Errorf("row %d: ours %v, reference %v", i, ours[i], want[i])
		}
		if d := math.Abs(float64(ref[i]) - want[i]); d > 1e-5 {
			t.Errorf("row %d: gorgonnx %v, reference %v", i, ref[i], want[i])
		}
	}
}

func TestAUCOfKnownRankings(t *testing.T) {
	cases := map[string]struct {
		s    []scored
		want float64
	}{
		"perfect":          {s: []scored{{0.1, false}, {0.2, false}, {0.8, true}, {0.9, true}}, want: 1},
		"reversed":         {s: []scored{{0.9, false}, {0.8, false}, {0.2, true}, {0.1, true}}, want: 0},
		"all tied":         {s: []scored{{0.5, false}, {0.5, true}, {0.5, false}, {0.5, true}}, want: 0.5},
		"unsorted input":   {s: []scored{{0.1, false}, {0.3, true}, {0.2, false}, {0.4, true}}, want: 1},
		"one pair in four": {s: []scored{{0.1, true}, {0.2, false}, {0.3, true}, {0.4, false}}, want: 0.25},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, auc(tc.s)); diff != "" {
				t.Errorf("auc (-want +got):\n%s", diff)
			}
		})
	}
}
