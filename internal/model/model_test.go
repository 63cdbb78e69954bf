package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
	"github.com/google/go-cmp/cmp"
)

const freightModel = "../../models/freight-delay-risk.onnx"

func loadFreight(t testing.TB) (*Model, []byte) {
	t.Helper()
	data, err := os.ReadFile(freightModel)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m, data
}

// freightRows makes plausible raw feature rows (the model only needs finite values).
func freightRows(rng *rand.Rand, rows int) []float32 {
	xs := make([]float32, rows*12)
	for r := range rows {
		x := xs[r*12 : (r+1)*12]
		x[0] = 100 + 9000*rng.Float32()
		x[1+rng.IntN(4)] = 1
		for i := 5; i < 11; i++ {
			x[i] = rng.Float32()
		}
		x[11] = 200 * rng.Float32()
	}
	return xs
}

func TestFreightModelMetadata(t *testing.T) {
	m, _ := loadFreight(t)
	meta := m.Metadata()
	want := struct {
		Inputs, Outputs []TensorInfo
		Features        []string
		Ops             []string
	}{
		Inputs:  []TensorInfo{{Name: "features", DataType: "FP32", Shape: []int64{-1, 12}, DType: Float32, Type: "tensor(float)"}},
		Outputs: []TensorInfo{{Name: "delay_risk", DataType: "FP32", Shape: []int64{-1, 1}, DType: Float32, Type: "tensor(float)"}},
		Features: []string{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road", "carrier_on_time_rate",
			"port_congestion_index", "weather_severity", "month_sin", "month_cos", "customs_complexity", "dwell_time_hours"},
		Ops: []string{"Gemm", "Relu", "Gemm", "Sigmoid"},
	}
	got := struct {
		Inputs, Outputs []TensorInfo
		Features        []string
		Ops             []string
	}{meta.Inputs, meta.Outputs, meta.Features, meta.Ops}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if meta.Producer != "freightcast-freightmodel" {
		t.Errorf("producer %q", meta.Producer)
	}
}

// TestFreightModelAgreesWithGorgonnx covers batch sizes across the chunk boundary.
func TestFreightModelAgreesWithGorgonnx(t *testing.T) {
	forEachKernel(t, testFreightModelAgreesWithGorgonnx)
}

func testFreightModelAgreesWithGorgonnx(t *testing.T) {
	m, data := loadFreight(t)
	for _, rows := range []int{1, 2, 3, 64, ChunkRows + 1, 1024} {
		t.Run(fmt.Sprint(rows), func(t *testing.T) {
			in := freightRows(rand.New(rand.NewPCG(uint64(rows), 7)), rows)
			want := runGorgonnx(t, data, [][]int{{rows, 12}}, [][]float32{in})[0]
			got := make([]float32, rows)
			if err := m.Run(rows, [][]float32{in}, [][]float32{got}); err != nil {
				t.Fatal(err)
			}
			if d := diffFloats(want, got, 1e-5); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestRunDoesNotAllocate is the load-time buffer planning guarantee.
func TestRunDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	m, _ := loadFreight(t)
	for _, rows := range []int{1, 64, 1024} {
		in := [][]float32{freightRows(rand.New(rand.NewPCG(1, 1)), rows)}
		out := [][]float32{make([]float32, rows)}
		allocs := testing.AllocsPerRun(100, func() {
			if err := m.Run(rows, in, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("batch %d: %v allocations per run", rows, allocs)
		}
	}
}

// TestConcurrentRuns shares one Model between goroutines (run it with -race), and checks, to
// the bit, that a row's prediction does not depend on the batch it is part of: micro-batching
// must not change answers.
func TestConcurrentRuns(t *testing.T) {
	m, _ := loadFreight(t)
	const rows = 300
	in := freightRows(rand.New(rand.NewPCG(9, 9)), rows)
	want := make([]float32, rows)
	if err := m.Run(rows, [][]float32{in}, [][]float32{want}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				n := 1 + (g*37+i*11)%rows
				got := make([]float32, n)
				if err := m.Run(n, [][]float32{in[:n*12]}, [][]float32{got}); err != nil {
					errs <- err
					return
				}
				if d := diffFloats(want[:n], got, 0); d != "" {
					errs <- fmt.Errorf("goroutine %d batch %d: %s", g, n, d)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	m, _ := loadFreight(t)
	cases := map[string]struct {
		rows    int
		in, out [][]float32
		want    string
	}{
		"no rows":         {rows: 0, in: [][]float32{{}}, out: [][]float32{{}}, want: "at least one"},
		"short input":     {rows: 2, in: [][]float32{make([]float32, 23)}, out: [][]float32{make([]float32, 2)}, want: `input "features": 2 rows need 24 values, got 23`},
		"short output":    {rows: 2, in: [][]float32{make([]float32, 24)}, out: [][]float32{make([]float32, 1)}, want: `output "delay_risk": 2 rows need 2 values, got 1`},
		"too many inputs": {rows: 1, in: [][]float32{make([]float32, 12), nil}, out: [][]float32{make([]float32, 1)}, want: "got 2 inputs, model has 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := m.Run(tc.rows, tc.in, tc.out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadRejects(t *testing.T) {
	x := []onnxpb.ValueInfo{tensorInfo("x", -1, 4)}
	y := []onnxpb.ValueInfo{tensorInfo("y", -1, 4)}
	relu := []onnxpb.Node{node("Relu", []string{"x"}, []string{"y"})}
	valid := graphSpec{nodes: relu, inputs: x, outputs: y}.modelBytes()
	cases := map[string]struct {
		data []byte
		// sentinel is ErrInvalidModel or ErrUnsupported; want is part of the message.
		sentinel error
		want     string
	}{
		"empty file":   {data: nil, sentinel: ErrInvalidModel, want: "model has no graph"},
		"not protobuf": {data: []byte("this is not an ONNX model"), sentinel: ErrInvalidModel, want: "malformed ONNX model"},
		"truncated":    {data: valid[:len(valid)-3], sentinel: ErrInvalidModel, want: "malformed ONNX model"},
		"unsupported op": {
			data: graphSpec{nodes: []onnxpb.Node{node("DeformConv", []string{"x", "w"}, []string{"y"})},
				inits: []onnxpb.Tensor{floatInit("w", []int64{1}, []float32{1})}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     `node "DeformConv_y" (DeformConv, domain ai.onnx, opset 13): operator DeformConv of domain ai.onnx is not supported; supported operators of ai.onnx: Abs, Acos`,
		},
		"unsupported domain": {
			data: graphSpec{nodes: []onnxpb.Node{{OpType: "Custom", Domain: "com.example", Inputs: []string{"x"}, Outputs: []string{"y"}}},
				inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     `operator Custom of domain "com.example" is not supported`,
		},
		"opset too old": {
			data:     graphSpec{nodes: []onnxpb.Node{node("LayerNormalization", []string{"x", "x"}, []string{"y"})}, inputs: x, outputs: y, opset: 16}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     "operator LayerNormalization of domain ai.onnx is implemented for opsets 17–22, the model imports opset 16",
		},
		"opset too new": {
			data:     graphSpec{nodes: relu, inputs: x, outputs: y, opset: 99}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     "the model imports opset 99 of ai.onnx; this runtime implements up to 22",
		},
		"unsupported type": {
			data: graphSpec{nodes: relu,
				inputs: []onnxpb.ValueInfo{{Name: "x", ElemType: onnxpb.TypeInt64, HasShape: true, Shape: []onnxpb.Dim{{Param: "N"}}}}, outputs: y}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     "input 0 has type int64; Relu supports float, double",
		},
		"unranked input": {
			data:     graphSpec{nodes: relu, inputs: []onnxpb.ValueInfo{{Name: "x", ElemType: onnxpb.TypeFloat}}, outputs: y}.modelBytes(),
			sentinel: ErrUnsupported,
			want:     `input "x" declares no shape`,
		},
		"undefined input": {
			data:     graphSpec{nodes: []onnxpb.Node{node("Add", []string{"x", "nowhere"}, []string{"y"})}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     `input "nowhere" is not defined by any node, initializer or graph input`,
		},
		"cycle": {
			data: graphSpec{nodes: []onnxpb.Node{
				node("Add", []string{"x", "b"}, []string{"a"}),
				node("Relu", []string{"a"}, []string{"b"}),
				node("Relu", []string{"a"}, []string{"y"}),
			}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     "the graph has a cycle through node",
		},
		"value produced twice": {
			data: graphSpec{nodes: []onnxpb.Node{
				node("Relu", []string{"x"}, []string{"y"}),
				{OpType: "Relu", Name: "second", Inputs: []string{"x"}, Outputs: []string{"y"}},
			}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     `value "y" is produced by nodes`,
		},
		"gemm shape mismatch": {
			data: graphSpec{nodes: []onnxpb.Node{node("Gemm", []string{"x", "w"}, []string{"y"})},
				inits: []onnxpb.Tensor{floatInit("w", []int64{3, 4}, make([]float32, 12))}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     "disagree on the inner dimension",
		},
		"initializer data short": {
			data: graphSpec{nodes: []onnxpb.Node{node("Add", []string{"x", "b"}, []string{"y"})},
				inits: []onnxpb.Tensor{floatInit("b", []int64{4}, []float32{1, 2})}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     `tensor "b": has 2 values, shape [4] needs 4`,
		},
		"huge tensor": {
			data: graphSpec{nodes: []onnxpb.Node{node("Add", []string{"x", "b"}, []string{"y"})},
				inits: []onnxpb.Tensor{floatInit("b", []int64{1 << 20, 1 << 20}, nil)}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     "exceeds",
		},
		"output shape contradicts the declaration": {
			data: graphSpec{nodes: []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits: []onnxpb.Tensor{int64Init("s", 2, 2)}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     `graph output "y" is declared with shape [-1,4] but has [2 2]`,
		},
		"reshape to a different size": {
			data: graphSpec{nodes: []onnxpb.Node{node("Reshape", []string{"x", "s"}, []string{"y"})},
				inits: []onnxpb.Tensor{int64Init("s", 0, 3)}, inputs: x, outputs: y}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     "cannot reshape",
		},
		"features do not match input": {
			data: graphSpec{nodes: relu, inputs: x, outputs: y,
				props: []onnxpb.StringString{{Key: FeaturesKey, Value: "a,b,c"}}}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     "lists 3 features",
		},
		"duplicate feature": {
			data: graphSpec{nodes: relu, inputs: x, outputs: y,
				props: []onnxpb.StringString{{Key: FeaturesKey, Value: "a,b,a,c"}}}.modelBytes(),
			sentinel: ErrInvalidModel,
			want:     `feature "a" appears twice`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Load(tc.data)
			if err == nil {
				t.Fatalf("Load succeeded with metadata %+v", m.Metadata())
			}
			other := ErrUnsupported
			if tc.sentinel == ErrUnsupported {
				other = ErrInvalidModel
			}
			if !errors.Is(err, tc.sentinel) || errors.Is(err, other) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error %q, want an error wrapping %v (only) containing %q", err, tc.sentinel, tc.want)
			}
		})
	}
}
