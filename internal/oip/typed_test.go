package oip

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// newFixtureServer serves the model of a fixture.
func newFixtureServer(t testing.TB, path string) *Server {
	t.Helper()
	m, err := metrics.NewInference(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{ModelName: "m", ModelVersion: "1", MaxBatchSize: 64, MaxBatchDelay: time.Millisecond,
		MaxBodyBytes: 4 << 20, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := model.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetModel(rt); err != nil {
		t.Fatal(err)
	}
	return s
}

// fixtureRequest is an infer body with the given rows of every input of fx, in its datatype.
func fixtureRequest(fx *modelfixtures.Fixture, rows []int, outputs ...string) []byte {
	var b strings.Builder
	b.WriteString(`{"id":"fx","inputs":[`)
	for k, in := range fx.Inputs {
		if k > 0 {
			b.WriteByte(',')
		}
		shape := append([]int64{int64(len(rows))}, in.Shape[1:]...)
		fmt.Fprintf(&b, `{"name":%q,"datatype":%q,"shape":%s,"data":[`, in.Name, in.Datatype, shapeString(shape))
		for i, r := range rows {
			for j, v := range in.Row(r) {
				if i > 0 || j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(v.String())
			}
		}
		b.WriteString("]}")
	}
	b.WriteByte(']')
	if len(outputs) > 0 {
		b.WriteString(`,"outputs":[`)
		for i, o := range outputs {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":%q}`, o)
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
	return []byte(b.String())
}

type inferResponse struct {
	ID      string `json:"id"`
	Outputs []struct {
		Name       string        `json:"name"`
		Datatype   string        `json:"datatype"`
		Shape      []int64       `json:"shape"`
		Data       []json.Number `json:"data"`
		Parameters struct {
			Labels []json.Number `json:"labels"`
		} `json:"parameters"`
	} `json:"outputs"`
}

func post(t testing.TB, s *Server, body []byte) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v2/models/m/infer", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// The models teams bring, served over OIP: every output the framework produced comes back in
// its datatype, with the framework's values (to float32 precision), ZipMap's as probabilities
// with the labels in parameters.
func TestInferFixturesMatchTheirFrameworks(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"xgb_binary_zipmap",     // XGBoost in a scikit-learn pipeline, ZipMap
		"xgb_grade",             // XGBoost multiclass, onnxmltools' label and probabilities
		"xgb_delay_hours",       // XGBoost regressor
		"skl_impute_onehot",     // scikit-learn Pipeline: imputer, scaler, one-hot, logistic regression, ZipMap
		"skl_logreg_grade",      // scikit-learn multiclass logistic regression, ZipMap
		"skl_rf_delay_hours",    // scikit-learn random forest regressor
		"skl_svc_grade",         // scikit-learn SVC, one against one, coupled probabilities, ZipMap
		"skl_svr_delay_hours",   // scikit-learn support vector regressor
		"torch_tabular_opset13", // PyTorch: FP32 numeric and INT64 transport mode
		"torch_tabular_opset17",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := modelfixtures.Load(t, name)
			s := newFixtureServer(t, fx.Path)
			rows := fx.CompleteRows()
			if len(rows) < 8 {
				t.Fatalf("only %d complete rows", len(rows))
			}
			code, body := post(t, s, fixtureRequest(fx, rows))
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var resp inferResponse
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&resp); err != nil {
				t.Fatal(err)
			}
			if resp.ID != "fx" || len(resp.Outputs) != len(fx.Outputs) {
				t.Fatalf("id %q, %d outputs, want fx and %d: %s", resp.ID, len(resp.Outputs), len(fx.Outputs), body)
			}
			for k, want := range fx.Outputs {
				got := resp.Outputs[k]
				wantShape := append([]int64{int64(len(rows))}, want.Shape[1:]...)
				if got.Name != want.Name || got.Datatype != want.Datatype || !slices.Equal(got.Shape, wantShape) {
					t.Fatalf("output %d is %s %s %v, want %s %s %v", k, got.Name, got.Datatype, got.Shape, want.Name, want.Datatype, wantShape)
				}
				if !slices.Equal(got.Parameters.Labels, want.ZipmapLabels) {
					t.Errorf("%s: labels %v, the framework's %v", want.Name, got.Parameters.Labels, want.ZipmapLabels)
				}
				n := want.RowSize()
				for i, r := range rows {
					for j := range n {
						g, w := got.Data[i*n+j], want.Data[r*n+j]
						if want.Datatype != "FP32" {
							if g != *w {
								t.Errorf("%s row %d[%d] = %s, the framework says %s", want.Name, r, j, g, w)
							}
							continue
						}
						gf, _ := g.Float64()
						if wf := want.Float(r*n + j); !modelfixtures.Close(gf, wf, 1e-5) {
							t.Errorf("%s row %d[%d] = %v, the framework says %v", want.Name, r, j, gf, wf)
						}
					}
				}
			}
		})
	}
}

// Metadata lists every input and output with its datatype and shape; a ZipMap output is its
// probabilities with ONNX's type and the labels in parameters, as docs/inference.md shows.
func TestModelMetadataOfTypedModels(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"xgb_binary_zipmap": `"inputs":[{"name":"input","datatype":"FP32","shape":[-1,12]}],` +
			`"outputs":[{"name":"output_label","datatype":"INT64","shape":[-1]},` +
			`{"name":"output_probability","datatype":"FP32","shape":[-1,2],"parameters":{"labels":[0,1],"onnx_type":"seq(map(int64,tensor(float)))"}}]`,
		"torch_tabular_opset17": `"inputs":[{"name":"numeric","datatype":"FP32","shape":[-1,8]},{"name":"transport_mode","datatype":"INT64","shape":[-1]}],` +
			`"outputs":[{"name":"delay_risk","datatype":"FP32","shape":[-1,1]}]`,
	}
	for name, want := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newFixtureServer(t, modelfixtures.Load(t, name).Path)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/models/m", nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
				t.Fatalf("status %d, metadata %s\nwant it to contain %s", rec.Code, rec.Body, want)
			}
		})
	}
}

// Bad requests to a typed model name the input and what is wrong.
func TestInferTypedErrors(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "torch_tabular_opset17")
	s := newFixtureServer(t, fx.Path)
	numeric := `{"name":"numeric","datatype":"FP32","shape":[1,8],"data":[900,0.9,0.1,0.2,0.5,0.5,0.3,12]}`
	mode := func(datatype, shape, data string) string {
		return `{"inputs":[` + numeric + `,{"name":"transport_mode","datatype":"` + datatype + `","shape":` + shape + `,"data":` + data + `}]}`
	}
	cases := map[string]struct {
		body, wantErr string
		wantCode      int
	}{
		"ok":                {mode("INT64", "[1]", "[2]"), "", 200},
		"INT32 for INT64":   {mode("INT32", "[1]", "[2]"), "", 200},
		"fraction":          {mode("FP64", "[1]", "[2.5]"), `input "transport_mode": value 0 of data is 2.5, not an integer, which INT64 holds`, 400},
		"beyond INT64":      {mode("FP64", "[1]", "[1e30]"), `input "transport_mode": value 0 of data is 1e+30, beyond INT64`, 400},
		"string":            {mode("BYTES", "[1]", `["air"]`), `input "transport_mode" is BYTES; the model takes INT64`, 400},
		"bool":              {mode("BOOL", "[1]", `[true]`), `input "transport_mode" is BOOL; the model takes INT64`, 400},
		"rank":              {mode("INT64", "[1,1]", "[2]"), `input "transport_mode" has shape [1,1]; the model takes [-1]`, 400},
		"count":             {mode("INT64", "[2]", "[2]"), `input "transport_mode": shape [2] needs 2 values, data has 1`, 400},
		"missing":           {`{"inputs":[` + numeric + `]}`, `missing input "transport_mode" (INT64 [-1])`, 400},
		"twice":             {`{"inputs":[` + numeric + `,` + numeric + `]}`, `input "numeric" appears twice`, 400},
		"unknown input":     {`{"inputs":[{"name":"mode","datatype":"INT64","shape":[1],"data":[1]}]}`, `unknown input "mode"; the model takes "numeric", "transport_mode"`, 400},
		"unknown output":    {strings.TrimSuffix(mode("INT64", "[1]", "[2]"), "}") + `,"outputs":[{"name":"p"}]}`, `unknown output "p"; the model has "delay_risk"`, 400},
		"embedding index":   {mode("INT64", "[1]", "[9]"), `invalid input`, 400},
		"exact big integer": {mode("INT64", "[1]", "[9223372036854775807]"), `invalid input`, 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, body := post(t, s, []byte(tc.body))
			if code != tc.wantCode || tc.wantErr != "" && !strings.Contains(string(body), jsonQuoted(tc.wantErr)) {
				t.Fatalf("status %d, body %s; want %d with %q", code, body, tc.wantCode, tc.wantErr)
			}
		})
	}
}

// jsonQuoted is s as it appears inside a JSON string.
func jsonQuoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// outputs filters a typed model's outputs; a string-labelled classifier answers its labels
// as BYTES.
func TestInferTypedOutputFilter(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "xgb_binary_zipmap")
	s := newFixtureServer(t, fx.Path)
	code, body := post(t, s, fixtureRequest(fx, fx.CompleteRows()[:2], "output_probability"))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp inferResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "output_probability" {
		t.Fatalf("outputs %s, want only output_probability", body)
	}
}
