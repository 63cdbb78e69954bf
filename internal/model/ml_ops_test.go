package model

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// TestFixturesMatchFrameworks loads every model fixture — scikit-learn pipelines, XGBoost and
// PyTorch exports as their converters write them — and runs it on the fixture's inputs: labels
// must be the framework's exactly, probabilities and predictions within 1e-5, and a ZipMap
// output must carry the classifier's labels as its keys.
func TestFixturesMatchFrameworks(t *testing.T) {
	for _, f := range readManifest(t).Fixtures {
		t.Run(f.Name, func(t *testing.T) {
			fx := loadFixture(t, f.Name)
			m, outs := evalFixture(t, fx)
			for i, want := range fx.json.Outputs {
				if m.Metadata().Outputs[i].Name != want.Name {
					t.Fatalf("output %d is %q, the fixture has %q", i, m.Metadata().Outputs[i].Name, want.Name)
				}
				sameAnswers(t, want.Name, outs[i], fx.outputs[i], 1e-5)
				checkZipMapKeys(t, want, outs[i], m.Metadata().Outputs[i])
			}
		})
	}
}

// checkZipMapKeys checks a ZipMap output's keys, in the output and in Metadata, against the
// fixture's class labels.
func checkZipMapKeys(t *testing.T, want oipFixtureVal, got *Tensor, info TensorInfo) {
	t.Helper()
	if want.ZipMapLabels == nil {
		if got.Keys != nil || info.Keys != nil {
			t.Fatalf("%s: a tensor output has keys", want.Name)
		}
		return
	}
	if got.Keys == nil || info.Keys == nil {
		t.Fatalf("%s: the ZipMap output has no keys", want.Name)
	}
	if info.Type != "seq(map(int64,tensor(float)))" && info.Type != "seq(map(string,tensor(float)))" {
		t.Fatalf("%s: Metadata type %s", want.Name, info.Type)
	}
	for k, raw := range want.ZipMapLabels {
		var label any
		if err := json.Unmarshal(raw, &label); err != nil {
			t.Fatal(err)
		}
		var key string
		switch got.Keys.DType {
		case Int64:
			key = fmt.Sprint(got.Keys.Int64[k])
		case String:
			key = got.Keys.String[k]
		}
		if key != fmt.Sprint(label) {
			t.Fatalf("%s: key %d is %s, want %v", want.Name, k, key, label)
		}
	}
}

// TestMLOpsMatchReference runs testdata/mlops: one-operator models of every ai.onnx.ml operator
// and behaviour the reference evaluator implements (node modes, missing values, aggregates,
// base values, post transforms, label types, input types), with the answers of ONNX's reference
// evaluator (hack/modelfixtures/reference.py).
func TestMLOpsMatchReference(t *testing.T) {
	for _, name := range mlopsCases(t) {
		t.Run(name, func(t *testing.T) {
			fx := loadCase(t, "testdata/mlops", name)
			_, outs := evalFixture(t, fx)
			for i, want := range fx.outputs {
				sameAnswers(t, fx.json.Outputs[i].Name, outs[i], want, 1e-5)
			}
		})
	}
}

// mlopsCases lists the cases of testdata/mlops.
func mlopsCases(t testing.TB) []string {
	t.Helper()
	var manifest struct {
		Cases []string `json:"cases"`
	}
	raw, err := os.ReadFile("testdata/mlops/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.Cases) == 0 {
		t.Fatal("no cases")
	}
	return manifest.Cases
}

// TestLargeBatchesMatchFrameworks runs fixtures whose plans run in chunks (no ZipMap) on a batch
// of 700 rows, the fixture's rows repeated: every row must still get the framework's answer,
// whatever chunk and block it falls in.
func TestLargeBatchesMatchFrameworks(t *testing.T) {
	for _, name := range []string{"xgb_grade", "xgb_delay_hours", "skl_gb_binary_nozipmap", "skl_logreg_grade_nozipmap", "skl_rf_bench"} {
		t.Run(name, func(t *testing.T) {
			fx := loadFixture(t, name)
			const rows = 700
			repeat := func(x *Tensor) *Tensor {
				shape := append([]int{rows}, x.Shape[1:]...)
				r := &Tensor{}
				if err := r.reset(x.DType, shape...); err != nil {
					t.Fatal(err)
				}
				per := x.Len() / x.Shape[0]
				for i := range rows {
					copyElems(r, i*per, x, (i%x.Shape[0])*per, per)
				}
				return r
			}
			for i, in := range fx.inputs {
				fx.inputs[i] = repeat(in)
			}
			_, outs := evalFixture(t, fx)
			for i, want := range fx.outputs {
				sameAnswers(t, fx.json.Outputs[i].Name, outs[i], repeat(want), 1e-5)
			}
		})
	}
}
