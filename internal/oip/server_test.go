package oip

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const freightModel = "../../models/freight-delay-risk.onnx"

type testServer struct {
	*httptest.Server
	oip   *Server
	model *model.Model
	reg   *prometheus.Registry
	m     *metrics.Inference
}

func newTestServer(t testing.TB, load bool, tweak func(*Config)) *testServer {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.NewInference(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		ModelName: "freight", ModelVersion: "1", MaxBatchSize: 64, MaxBatchDelay: time.Millisecond,
		MaxBodyBytes: 1 << 20, Metrics: m, Gatherer: reg,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{oip: s, reg: reg, m: m}
	mod, err := model.LoadFile(freightModel)
	if err != nil {
		t.Fatal(err)
	}
	ts.model = mod
	if load {
		if err := s.SetModel(mod); err != nil {
			t.Fatal(err)
		}
	}
	ts.Server = httptest.NewServer(s)
	t.Cleanup(func() {
		ts.Server.Close()
		s.Close()
	})
	return ts
}

func (ts *testServer) do(t *testing.T, method, path, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if method != http.MethodHead {
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, v
}

// featureRow is a plausible freight row; the model only needs finite values.
func featureRow(i int) []float32 {
	return []float32{float32(500 + 100*i), 1, 0, 0, 0, 0.9, 0.3, 0.2, 0.5, 0.866, 0.4, float32(10 + i)}
}

func (ts *testServer) predict(t *testing.T, rows ...[]float32) []float64 {
	t.Helper()
	flat := make([]float32, 0, 12*len(rows))
	for _, r := range rows {
		flat = append(flat, r...)
	}
	out := make([]float32, len(rows))
	if err := ts.model.Run(len(rows), [][]float32{flat}, [][]float32{out}); err != nil {
		t.Fatal(err)
	}
	res := make([]float64, len(out))
	for i, v := range out {
		// The response prints the shortest decimal that reads back as the same float32.
		res[i] = float64(v)
	}
	return res
}

func jsonNumbers(xs []float32) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ",")
}

func TestHealthAndMetadata(t *testing.T) {
	notLoaded := newTestServer(t, false, nil)
	loaded := newTestServer(t, true, nil)
	cases := map[string]struct {
		ts       *testServer
		path     string
		wantCode int
		want     map[string]any
	}{
		"live before load":  {ts: notLoaded, path: "/v2/health/live", wantCode: 200, want: map[string]any{"live": true}},
		"ready before load": {ts: notLoaded, path: "/v2/health/ready", wantCode: 503, want: map[string]any{"ready": false}},
		"model not ready":   {ts: notLoaded, path: "/v2/models/freight/ready", wantCode: 503, want: map[string]any{"name": "freight", "ready": false}},
		"metadata before load": {ts: notLoaded, path: "/v2/models/freight", wantCode: 503,
			want: map[string]any{"error": `model "freight" is not loaded yet`}},
		"ready":         {ts: loaded, path: "/v2/health/ready", wantCode: 200, want: map[string]any{"ready": true}},
		"model ready":   {ts: loaded, path: "/v2/models/freight/ready", wantCode: 200, want: map[string]any{"name": "freight", "ready": true}},
		"version ready": {ts: loaded, path: "/v2/models/freight/versions/1/ready", wantCode: 200, want: map[string]any{"name": "freight", "ready": true}},
		"server":        {ts: loaded, path: "/v2", wantCode: 200, want: map[string]any{"name": "freightcast", "version": "dev", "extensions": []any{}}},
		"unknown model": {ts: loaded, path: "/v2/models/other", wantCode: 404, want: map[string]any{"error": `unknown model "other" (this server serves "freight")`}},
		"unknown version": {ts: loaded, path: "/v2/models/freight/versions/2", wantCode: 404,
			want: map[string]any{"error": `model "freight" has no version "2" (it has "1")`}},
		"unknown path": {ts: loaded, path: "/v3/models", wantCode: 404, want: map[string]any{"error": "no route for /v3/models"}},
		"list": {ts: loaded, path: "/v2/models", wantCode: 200, want: map[string]any{"models": []any{map[string]any{
			"name": "freight", "versions": []any{"1"}, "platform": "onnx_onnxv1", "ready": true}}}},
		"model metadata": {ts: loaded, path: "/v2/models/freight/versions/1", wantCode: 200, want: map[string]any{
			"name": "freight", "versions": []any{"1"}, "platform": "onnx_onnxv1",
			"inputs":  []any{map[string]any{"name": "features", "datatype": "FP32", "shape": []any{-1.0, 12.0}}},
			"outputs": []any{map[string]any{"name": "delay_risk", "datatype": "FP32", "shape": []any{-1.0, 1.0}}},
			"parameters": map[string]any{"features": []any{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road",
				"carrier_on_time_rate", "port_congestion_index", "weather_severity", "month_sin", "month_cos",
				"customs_complexity", "dwell_time_hours"}},
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, got := tc.ts.do(t, http.MethodGet, tc.path, "", "")
			if code != tc.wantCode {
				t.Errorf("status %d, want %d", code, tc.wantCode)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInfer(t *testing.T) {
	ts := newTestServer(t, true, nil)
	r0, r1 := featureRow(0), featureRow(1)
	p := ts.predict(t, r0, r1)
	output := func(rows int, data ...float64) map[string]any {
		d := make([]any, len(data))
		for i, v := range data {
			d[i] = v
		}
		return map[string]any{"name": "delay_risk", "datatype": "FP32", "shape": []any{float64(rows), 1.0}, "data": d}
	}
	cases := map[string]struct {
		path string
		body string
		want map[string]any
	}{
		"flat data with id": {
			path: "/v2/models/freight/infer",
			body: `{"id":"r-1","inputs":[{"name":"features","shape":[2,12],"datatype":"FP32","data":[` + jsonNumbers(r0) + `,` + jsonNumbers(r1) + `]}]}`,
			want: map[string]any{"model_name": "freight", "model_version": "1", "id": "r-1", "outputs": []any{output(2, p[0], p[1])}},
		},
		"nested data, FP64, versioned path": {
			path: "/v2/models/freight/versions/1/infer",
			body: `{"inputs":[{"name":"features","shape":[2,12],"datatype":"FP64","data":[[` + jsonNumbers(r0) + `],[` + jsonNumbers(r1) + `]]}]}`,
			want: map[string]any{"model_name": "freight", "model_version": "1", "outputs": []any{output(2, p[0], p[1])}},
		},
		"INT64 data, outputs filter, parameters ignored": {
			path: "/v2/models/freight/infer",
			body: `{"parameters":{"x":[1,{"y":null}]},"inputs":[{"name":"features","shape":[1,12],"datatype":"INT64","data":[[500,1,0,0,0,1,0,0,0,1,0,10]]}],"outputs":[{"name":"delay_risk"}]}`,
			want: map[string]any{"model_name": "freight", "model_version": "1", "outputs": []any{
				output(1, ts.predict(t, []float32{500, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 10})[0])}},
		},
		"escaped id": {
			path: "/v2/models/freight/infer",
			body: `{"id":"a\"b\\c\u00e9","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(r0) + `]}]}`,
			want: map[string]any{"model_name": "freight", "model_version": "1", "id": "a\"b\\cé", "outputs": []any{output(1, p[0])}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, got := ts.do(t, http.MethodPost, tc.path, "application/json", tc.body)
			if code != 200 {
				t.Fatalf("status %d: %v", code, got)
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b float64) bool { return float32(a) == float32(b) })); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInferErrors(t *testing.T) {
	ts := newTestServer(t, true, func(c *Config) { c.MaxBodyBytes = 4096 })
	row := jsonNumbers(featureRow(0))
	cases := map[string]struct {
		method, path, ctype, body string
		wantCode                  int
		wantErr                   string
	}{
		"GET infer":         {method: "GET", path: "/v2/models/freight/infer", wantCode: 405, wantErr: "method not allowed; use POST"},
		"POST metadata":     {method: "POST", path: "/v2/models/freight", ctype: "application/json", body: "{}", wantCode: 405, wantErr: "method not allowed; use GET"},
		"unknown model":     {method: "POST", path: "/v2/models/nope/infer", ctype: "application/json", body: "{}", wantCode: 404, wantErr: `unknown model "nope"`},
		"wrong type":        {method: "POST", path: "/v2/models/freight/infer", ctype: "text/plain", body: "{}", wantCode: 415, wantErr: `content type "text/plain" is not supported`},
		"too large":         {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: strings.Repeat(" ", 5000), wantCode: 413, wantErr: "exceeds 4096 bytes"},
		"latin-1":           {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json; charset=latin1", body: "{}", wantCode: 415, wantErr: `charset "latin1" is not supported, only utf-8`},
		"not JSON":          {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: "hello", wantCode: 400, wantErr: "invalid JSON"},
		"no inputs":         {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[]}`, wantCode: 400, wantErr: "no inputs"},
		"unknown input":     {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"x","shape":[1,12],"datatype":"FP32","data":[` + row + `]}]}`, wantCode: 400, wantErr: `unknown input "x"; the model takes "features"`},
		"wrong shape":       {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,11],"datatype":"FP32","data":[` + row + `]}]}`, wantCode: 400, wantErr: `input "features" has shape [1,11]; the model takes [-1,12]`},
		"data count":        {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[2,12],"datatype":"FP32","data":[` + row + `]}]}`, wantCode: 400, wantErr: `shape [2,12] needs 24 values, data has 12`},
		"ragged":            {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[2,12],"datatype":"FP32","data":[[` + row + `],[1,2]]}]}`, wantCode: 400, wantErr: "ragged"},
		"BYTES":             {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,12],"datatype":"BYTES","data":[` + row + `]}]}`, wantCode: 400, wantErr: "value 0 of data is not a string; BYTES holds strings"},
		"BYTES to FP32":     {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,1],"datatype":"BYTES","data":["a"]}]}`, wantCode: 400, wantErr: `input "features" is BYTES; the model takes FP32`},
		"INT64 fraction":    {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,12],"datatype":"INT64","data":[` + row + `]}]}`, wantCode: 400, wantErr: "not an integer"},
		"string in data":    {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":["a"]}]}`, wantCode: 400, wantErr: `input "features": value 0 of data is a string; FP32 holds numbers`},
		"overflow":          {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,1],"datatype":"FP32","data":[1e39]}]}`, wantCode: 400, wantErr: "overflows FP32"},
		"unknown output":    {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + row + `]}],"outputs":[{"name":"p"}]}`, wantCode: 400, wantErr: `unknown output "p"`},
		"zero rows":         {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[0,12],"datatype":"FP32","data":[]}]}`, wantCode: 400, wantErr: "at least one row"},
		"missing datatype":  {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,12],"data":[` + row + `]}]}`, wantCode: 400, wantErr: `input "features" has no datatype`},
		"trailing garbage":  {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[]} x`, wantCode: 400, wantErr: "expected the end of the body"},
		"deep nesting":      {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"parameters":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}`, wantCode: 400, wantErr: "nested deeper"},
		"non-finite output": {method: "POST", path: "/v2/models/freight/infer", ctype: "application/json", body: `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38]}]}`, wantCode: 400, wantErr: "outside what the model can compute"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			code, got := ts.do(t, tc.method, tc.path, tc.ctype, tc.body)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %v", code, tc.wantCode, got)
			}
			if tc.wantErr == "" {
				return
			}
			msg, _ := got["error"].(string)
			if !strings.Contains(msg, tc.wantErr) {
				t.Errorf("error %q, want one containing %q", msg, tc.wantErr)
			}
		})
	}
	if n := testutil.ToFloat64(ts.m.Errors.WithLabelValues(metrics.ReasonBadRequest)); n < 10 {
		t.Errorf("bad_request errors counted: %v", n)
	}
}

// TestConcurrentInferBatches sends concurrent single-row requests and checks every answer
// against a direct model run, and that batches of more than one row formed.
func TestConcurrentInferBatches(t *testing.T) {
	const clients, each = 16, 20
	ts := newTestServer(t, false, func(c *Config) { c.Workers = 1; c.MaxBatchDelay = 5 * time.Millisecond })
	// The first run waits until the other clients have queued, so that at least one batch of
	// several requests forms however fast the machine is.
	gate := &gatedRuntime{Runtime: ts.model, ready: func() bool { return len(ts.oip.batcher.queue) >= clients-1 }}
	if err := ts.oip.SetModel(gate); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for g := range clients {
		wg.Go(func() {
			for i := range each {
				row := featureRow(g*each + i)
				want := ts.predict(t, row)[0]
				body := `{"id":"` + fmt.Sprint(g, "-", i) + `","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(row) + `]}]}`
				resp, err := ts.Client().Post(ts.URL+"/v2/models/freight/infer", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var got struct {
					ID      string
					Outputs []struct{ Data []float64 }
				}
				err = json.NewDecoder(resp.Body).Decode(&got)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || got.ID != fmt.Sprint(g, "-", i) || len(got.Outputs) != 1 ||
					len(got.Outputs[0].Data) != 1 || float32(got.Outputs[0].Data[0]) != float32(want) {
					errs <- fmt.Errorf("request %d-%d: status %d, %+v, %v; want %v", g, i, resp.StatusCode, got, err, want)
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
	if rows := testutil.ToFloat64(ts.m.RowsPredicted); rows != clients*each {
		t.Errorf("rows predicted %v, want %d", rows, clients*each)
	}
	var mf struct{ count, sum float64 }
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range mfs {
		if f.GetName() == "freightcast_inference_batch_size" {
			h := f.GetMetric()[0].GetHistogram()
			mf.count, mf.sum = float64(h.GetSampleCount()), h.GetSampleSum()
		}
	}
	if mf.sum != clients*each || mf.count >= mf.sum {
		t.Errorf("batches: %v runs for %v rows; want fewer runs than rows", mf.count, mf.sum)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	ts := newTestServer(t, true, nil)
	ts.do(t, "GET", "/v2/health/ready", "", "")
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`freightcast_inference_request_duration_seconds_count{code="200",endpoint="health_ready"} 1`,
		"freightcast_inference_rows_predicted_total 0",
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestShutdownFinishesInFlight holds a request inside the model while the server shuts down.
func TestShutdownFinishesInFlight(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, _ := metrics.NewInference(reg)
	s, err := NewServer(Config{ModelName: "slow", ModelVersion: "1", MaxBatchSize: 8, MaxBodyBytes: 1 << 16, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := model.LoadFile(freightModel)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	if err := s.SetModel(&slowRuntime{Runtime: mod, entered: entered, release: release}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Start()
	result := make(chan int, 1)
	go func() {
		body := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `]}]}`
		resp, err := srv.Client().Post(srv.URL+"/v2/models/slow/infer", "application/json", strings.NewReader(body))
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	<-entered
	shutdownStarted := make(chan struct{})
	srv.Config.RegisterOnShutdown(func() { close(shutdownStarted) })
	shutdown := make(chan error, 1)
	go func() { shutdown <- srv.Config.Shutdown(context.Background()) }()
	// Release the request only once Shutdown has begun, so that it is Shutdown that waits on it.
	<-shutdownStarted
	close(release)
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if code := <-result; code != 200 {
		t.Errorf("in-flight request got %d, want 200", code)
	}
	s.Close()
}

type slowRuntime struct {
	model.Runtime
	entered, release chan struct{}
	once             sync.Once
}

func (r *slowRuntime) Run(rows int, in, out [][]float32) error {
	r.once.Do(func() { close(r.entered) })
	<-r.release
	return r.Runtime.Run(rows, in, out)
}

// gatedRuntime holds its first run until ready reports true (or a second passes).
type gatedRuntime struct {
	model.Runtime
	ready func() bool
	once  sync.Once
}

func (r *gatedRuntime) Run(rows int, in, out [][]float32) error {
	r.once.Do(func() {
		for deadline := time.Now().Add(time.Second); !r.ready() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	})
	return r.Runtime.Run(rows, in, out)
}

// TestModelFailures checks that a runtime error or panic becomes a 500 for the requests of that
// run, and that the server keeps serving afterwards.
func TestModelFailures(t *testing.T) {
	ts := newTestServer(t, false, nil)
	fr := &failingRuntime{Runtime: ts.model}
	if err := ts.oip.SetModel(fr); err != nil {
		t.Fatal(err)
	}
	body := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `]}]}`
	cases := []struct {
		mode     string
		wantCode int
		wantErr  string
	}{
		{mode: "error", wantCode: 500, wantErr: "model run failed: injected failure"},
		{mode: "panic", wantCode: 500, wantErr: "model run failed: model run panicked: injected panic"},
		{mode: "", wantCode: 200},
	}
	for _, tc := range cases {
		fr.mode = tc.mode
		code, got := ts.do(t, http.MethodPost, "/v2/models/freight/infer", "application/json", body)
		if code != tc.wantCode {
			t.Fatalf("mode %q: status %d, want %d: %v", tc.mode, code, tc.wantCode, got)
		}
		if msg, _ := got["error"].(string); tc.wantErr != "" && msg != tc.wantErr {
			t.Errorf("mode %q: error %q, want %q", tc.mode, msg, tc.wantErr)
		}
	}
	if n := testutil.ToFloat64(ts.m.Errors.WithLabelValues(metrics.ReasonInternal)); n != 2 {
		t.Errorf("internal errors counted: %v, want 2", n)
	}
}

// failingRuntime fails its runs as mode says; the test sets mode between requests only.
type failingRuntime struct {
	model.Runtime
	mode string
}

func (r *failingRuntime) Run(rows int, in, out [][]float32) error {
	switch r.mode {
	case "error":
		return errors.New("injected failure")
	case "panic":
		panic("injected panic")
	}
	return r.Runtime.Run(rows, in, out)
}

// TestDrain checks that draining turns both readiness endpoints false while infer still answers.
func TestDrain(t *testing.T) {
	ts := newTestServer(t, true, nil)
	ts.oip.Drain()
	if code, got := ts.do(t, http.MethodGet, "/v2/health/ready", "", ""); code != 503 || got["ready"] != false {
		t.Errorf("health/ready while draining: %d %v", code, got)
	}
	if code, got := ts.do(t, http.MethodGet, "/v2/models/freight/ready", "", ""); code != 503 || got["ready"] != false {
		t.Errorf("model ready while draining: %d %v", code, got)
	}
	body := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `]}]}`
	if code, got := ts.do(t, http.MethodPost, "/v2/models/freight/infer", "application/json", body); code != 200 {
		t.Errorf("infer while draining: %d %v", code, got)
	}
}

// A body in KServe's binary tensor extension is refused by name: parsing its JSON header alone
// would run the model on data the client did not mean.
func TestBinaryTensorExtensionIsRefusedByName(t *testing.T) {
	ts := newTestServer(t, true, nil)
	header := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","parameters":{"binary_data_size":48}}]}`
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/v2/models/freight/infer", strings.NewReader(header+strings.Repeat("\x00", 48)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Inference-Header-Content-Length", fmt.Sprint(len(header)))
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"error": "Inference-Header-Content-Length: the binary tensor extension is not supported; send and receive tensors as JSON data"}
	if resp.StatusCode != http.StatusBadRequest || !cmp.Equal(want, got) {
		t.Errorf("%d %v, want 400 %v", resp.StatusCode, got, want)
	}
}
