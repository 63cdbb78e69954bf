package oip_test

// These tests drive the gRPC service as its users do: with a client generated from the
// protocol's proto (internal/oippb), over a real TCP listener, and nothing of the server's
// code but its constructor. Answers are checked against the frameworks that trained the models
// and against the REST API's answers for the same rows.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oip"
	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/tlsreload"
)

type grpcServed struct {
	srv    *oip.Server
	rest   string
	addr   string
	conn   *grpc.ClientConn
	client oippb.GRPCInferenceServiceClient
	health healthpb.HealthClient
}

type grpcSetup struct {
	load      bool
	tokens    *httpauth.Tokens
	tlsConfig *tls.Config
	creds     credentials.TransportCredentials
	// tracerProvider, when set, traces the server.
	tracerProvider trace.TracerProvider
}

// serveGRPC serves the model file at path as "m" version "1" over REST and gRPC.
func serveGRPC(t testing.TB, path string, setup grpcSetup) *grpcServed {
	t.Helper()
	m, err := metrics.NewInference(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oip.NewServer(oip.Config{ModelName: "m", ModelVersion: "1", MaxBatchSize: 64, MaxBatchDelay: time.Millisecond,
		MaxBodyBytes: 4 << 20, Metrics: m, Tokens: setup.tokens, TracerProvider: setup.tracerProvider})
	if err != nil {
		t.Fatal(err)
	}
	if setup.load {
		rt, err := model.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.SetModel(rt); err != nil {
			t.Fatal(err)
		}
	}
	rest := httptest.NewServer(srv)
	t.Cleanup(rest.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := srv.NewGRPCServer(setup.tlsConfig)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	creds := setup.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcServed{srv: srv, rest: rest.URL, addr: ln.Addr().String(), conn: conn,
		client: oippb.NewGRPCInferenceServiceClient(conn), health: healthpb.NewHealthClient(conn)}
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// gRPCFixtureRequest asks for the given rows of every input of fx, as typed contents or raw.
func gRPCFixtureRequest(t testing.TB, fx *modelfixtures.Fixture, rows []int, raw bool) *oippb.ModelInferRequest {
	t.Helper()
	req := &oippb.ModelInferRequest{ModelName: "m", Id: "fx"}
	for _, in := range fx.Inputs {
		shape := append([]int64{int64(len(rows))}, in.Shape[1:]...)
		tensor := &oippb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: in.Datatype, Shape: shape}
		contents := &oippb.InferTensorContents{}
		var b []byte
		for _, r := range rows {
			for _, v := range in.Row(r) {
				switch in.Datatype {
				case "FP32":
					f, err := v.Float64()
					if err != nil {
						t.Fatal(err)
					}
					contents.Fp32Contents = append(contents.Fp32Contents, float32(f))
					b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
				case "INT64":
					i, err := v.Int64()
					if err != nil {
						t.Fatal(err)
					}
					contents.Int64Contents = append(contents.Int64Contents, i)
					b = binary.LittleEndian.AppendUint64(b, uint64(i))
				default:
					t.Fatalf("fixture input %s is %s", in.Name, in.Datatype)
				}
			}
		}
		if raw {
			req.RawInputContents = append(req.RawInputContents, b)
		} else {
			tensor.Contents = contents
		}
		req.Inputs = append(req.Inputs, tensor)
	}
	return req
}

// rawValues reads output k of resp, which the server sends raw.
func rawValues(t testing.TB, resp *oippb.ModelInferResponse, k int) []float64 {
	t.Helper()
	if len(resp.RawOutputContents) != len(resp.Outputs) {
		t.Fatalf("%d raw_output_contents for %d outputs", len(resp.RawOutputContents), len(resp.Outputs))
	}
	b := resp.RawOutputContents[k]
	var out []float64
	switch dt := resp.Outputs[k].Datatype; dt {
	case "FP32":
		for i := 0; i+4 <= len(b); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i:]))))
		}
	case "INT64":
		for i := 0; i+8 <= len(b); i += 8 {
			out = append(out, float64(int64(binary.LittleEndian.Uint64(b[i:]))))
		}
	default:
		t.Fatalf("output %s is %s", resp.Outputs[k].Name, dt)
	}
	return out
}

// restInfer posts the same rows as JSON and returns each output's values.
func restInfer(t testing.TB, base string, fx *modelfixtures.Fixture, rows []int) [][]float64 {
	t.Helper()
	type tensor struct {
		Name     string    `json:"name"`
		Datatype string    `json:"datatype"`
		Shape    []int64   `json:"shape"`
		Data     []float64 `json:"data"`
	}
	var body struct {
		Inputs []tensor `json:"inputs"`
	}
	for _, in := range fx.Inputs {
		tn := tensor{Name: in.Name, Datatype: in.Datatype, Shape: append([]int64{int64(len(rows))}, in.Shape[1:]...)}
		for _, r := range rows {
			for _, v := range in.Row(r) {
				f, _ := v.Float64()
				tn.Data = append(tn.Data, f)
			}
		}
		body.Inputs = append(body.Inputs, tn)
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(base+"/v2/models/m/infer", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Outputs []tensor `json:"outputs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("REST: status %d, %v", resp.StatusCode, err)
	}
	out := make([][]float64, len(got.Outputs))
	for k, o := range got.Outputs {
		out[k] = o.Data
	}
	return out
}

// ModelInfer answers what the framework that trained each model answers, and what REST answers
// for the same rows, whether the values travel as typed contents or raw: a model of FP32 rows
// (the micro-batched path) and typed models with several inputs and a ZipMap.
func TestGRPCInferMatchesFrameworkAndREST(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"skl_rf_delay_hours", "torch_tabular_opset17", "xgb_binary_zipmap"} {
		for _, raw := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/raw=%v", name, raw), func(t *testing.T) {
				t.Parallel()
				fx := modelfixtures.Load(t, name)
				s := serveGRPC(t, fx.Path, grpcSetup{load: true})
				rows := fx.CompleteRows()
				resp, err := s.client.ModelInfer(callCtx(t), gRPCFixtureRequest(t, fx, rows, raw))
				if err != nil {
					t.Fatal(err)
				}
				if resp.Id != "fx" || resp.ModelName != "m" || resp.ModelVersion != "1" || len(resp.Outputs) != len(fx.Outputs) {
					t.Fatalf("id %q model %q %q, %d outputs; want fx, m 1, %d", resp.Id, resp.ModelName, resp.ModelVersion, len(resp.Outputs), len(fx.Outputs))
				}
				rest := restInfer(t, s.rest, fx, rows)
				for k, want := range fx.Outputs {
					got := resp.Outputs[k]
					wantShape := append([]int64{int64(len(rows))}, want.Shape[1:]...)
					if got.Name != want.Name || got.Datatype != want.Datatype || !slices.Equal(got.Shape, wantShape) {
						t.Fatalf("output %d is %s %s %v, want %s %s %v", k, got.Name, got.Datatype, got.Shape, want.Name, want.Datatype, wantShape)
					}
					vals := rawValues(t, resp, k)
					n := want.RowSize()
					if len(vals) != len(rows)*n {
						t.Fatalf("%s: %d values, want %d", want.Name, len(vals), len(rows)*n)
					}
					for i, r := range rows {
						for j := range n {
							g, w := vals[i*n+j], want.Float(r*n+j)
							if !modelfixtures.Close(g, w, 1e-5) {
								t.Errorf("%s row %d[%d] = %v, the framework says %v", want.Name, r, j, g, w)
							}
							if rv := rest[k][i*n+j]; float32(rv) != float32(g) {
								t.Errorf("%s row %d[%d] = %v over gRPC, %v over REST", want.Name, r, j, g, rv)
							}
						}
					}
					if len(want.ZipmapLabels) > 0 {
						var labels []json.Number
						p := got.Parameters["labels"]
						if p == nil || json.Unmarshal([]byte(p.GetStringParam()), &labels) != nil || !slices.Equal(labels, want.ZipmapLabels) {
							t.Errorf("%s: labels parameter %v, the framework's %v", want.Name, p, want.ZipmapLabels)
						}
					}
				}
			})
		}
	}
}

// Requested outputs: only those come back.
func TestGRPCInferRequestedOutputs(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "xgb_binary_zipmap")
	s := serveGRPC(t, fx.Path, grpcSetup{load: true})
	req := gRPCFixtureRequest(t, fx, fx.CompleteRows()[:2], true)
	req.Outputs = []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: "output_label"}}
	resp, err := s.client.ModelInfer(callCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "output_label" {
		t.Fatalf("outputs %v, want output_label only", resp.Outputs)
	}
}

// Every bad request is InvalidArgument (or NotFound for another model) naming what is wrong.
func TestGRPCInferErrors(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	rows := serveGRPC(t, fx.Path, grpcSetup{load: true})
	tfx := modelfixtures.Load(t, "torch_tabular_opset17")
	typed := serveGRPC(t, tfx.Path, grpcSetup{load: true})
	f32 := func(n int) []float32 { return make([]float32, n) }
	in := func(name, dt string, shape []int64, c *oippb.InferTensorContents) *oippb.ModelInferRequest_InferInputTensor {
		return &oippb.ModelInferRequest_InferInputTensor{Name: name, Datatype: dt, Shape: shape, Contents: c}
	}
	ok := in("input", "FP32", []int64{1, 12}, &oippb.InferTensorContents{Fp32Contents: f32(12)})
	// As many inputs as a 4 MiB message holds: refused before any is decoded.
	var many []*oippb.ModelInferRequest_InferInputTensor
	for k := range 100000 {
		many = append(many, in(fmt.Sprintf("i%d", k), "FP32", []int64{1}, &oippb.InferTensorContents{Fp32Contents: f32(1)}))
	}
	many = append(many, in("i0", "FP32", []int64{1}, &oippb.InferTensorContents{Fp32Contents: f32(1)}))
	cases := map[string]struct {
		typed   bool
		req     *oippb.ModelInferRequest
		code    codes.Code
		wantErr string
	}{
		"unknown model":        {req: &oippb.ModelInferRequest{ModelName: "other", Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok}}, code: codes.NotFound, wantErr: `unknown model "other"`},
		"unknown version":      {req: &oippb.ModelInferRequest{ModelName: "m", ModelVersion: "2", Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok}}, code: codes.NotFound, wantErr: `has no version "2"`},
		"no model name":        {req: &oippb.ModelInferRequest{Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok}}, code: codes.InvalidArgument, wantErr: "names no model"},
		"no inputs":            {req: &oippb.ModelInferRequest{ModelName: "m"}, code: codes.InvalidArgument, wantErr: "no inputs"},
		"100,000 inputs":       {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: many}, code: codes.InvalidArgument, wantErr: `the request has 100001 inputs; the model takes 1: "input"`},
		"unknown input":        {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("x", "FP32", []int64{1, 12}, &oippb.InferTensorContents{Fp32Contents: f32(12)})}}, code: codes.InvalidArgument, wantErr: `unknown input "x"`},
		"duplicate input":      {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok, ok}}, code: codes.InvalidArgument, wantErr: `the request has 2 inputs; the model takes 1`},
		"no name":              {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("", "FP32", []int64{1, 12}, nil)}}, code: codes.InvalidArgument, wantErr: "inputs[0] has no name"},
		"unknown datatype":     {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FLOAT", []int64{1, 12}, nil)}}, code: codes.InvalidArgument, wantErr: "datatype FLOAT is not supported"},
		"no datatype":          {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "", []int64{1, 12}, nil)}}, code: codes.InvalidArgument, wantErr: `input "input" has no datatype`},
		"shape vs data":        {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{2, 12}, &oippb.InferTensorContents{Fp32Contents: f32(12)})}}, code: codes.InvalidArgument, wantErr: "shape [2,12] needs 24 values, contents.fp32_contents has 12"},
		"wrong contents field": {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, &oippb.InferTensorContents{Fp64Contents: make([]float64, 12)})}}, code: codes.InvalidArgument, wantErr: "contents.fp64_contents holds 12 values"},
		"negative dimension":   {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{-1, 12}, nil)}}, code: codes.InvalidArgument, wantErr: "-1 is not a valid dimension"},
		"model's shape":        {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 11}, &oippb.InferTensorContents{Fp32Contents: f32(11)})}}, code: codes.InvalidArgument, wantErr: "the model takes [-1,12]"},
		"NaN":                  {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, &oippb.InferTensorContents{Fp32Contents: append(f32(11), float32(math.NaN()))})}}, code: codes.InvalidArgument, wantErr: "value 11 is NaN"},
		"FP64 beyond FP32":     {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP64", []int64{1, 12}, &oippb.InferTensorContents{Fp64Contents: append(make([]float64, 11), 1e300)})}}, code: codes.InvalidArgument, wantErr: "value 11 is 1e+300, beyond"},
		"BYTES to FP32":        {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "BYTES", []int64{1, 12}, &oippb.InferTensorContents{BytesContents: make([][]byte, 12)})}}, code: codes.InvalidArgument, wantErr: `input "input" is BYTES`},
		"raw count":            {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, nil)}, RawInputContents: [][]byte{{}, {}}}, code: codes.InvalidArgument, wantErr: "raw_input_contents has 2 entries for 1 inputs"},
		"raw length":           {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, nil)}, RawInputContents: [][]byte{make([]byte, 47)}}, code: codes.InvalidArgument, wantErr: "raw_input_contents[0] has 47 bytes; shape [1,12] of FP32 needs 48"},
		"raw NaN":              {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, nil)}, RawInputContents: [][]byte{append(make([]byte, 44), 0x01, 0x00, 0xc0, 0x7f)}}, code: codes.InvalidArgument, wantErr: `input "input": value 11 is NaN; inputs must be finite`},
		"raw -Inf":             {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP32", []int64{1, 12}, nil)}, RawInputContents: [][]byte{append(append(make([]byte, 12), 0x00, 0x00, 0x80, 0xff), make([]byte, 32)...)}}, code: codes.InvalidArgument, wantErr: `input "input": value 3 is -Inf; inputs must be finite`},
		"raw and contents":     {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok}, RawInputContents: [][]byte{make([]byte, 48)}}, code: codes.InvalidArgument, wantErr: "both contents (fp32_contents) and raw_input_contents[0]"},
		"FP16 as contents":     {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{in("input", "FP16", []int64{1, 12}, nil)}}, code: codes.InvalidArgument, wantErr: "FP16, which has no contents field"},
		"unknown output": {req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{ok},
			Outputs: []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}}}, code: codes.InvalidArgument, wantErr: `unknown output "y"`},
		"typed: INT8 range": {typed: true, req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{
			in("numeric", "FP32", []int64{1, 8}, &oippb.InferTensorContents{Fp32Contents: f32(8)}),
			in("transport_mode", "INT8", []int64{1}, &oippb.InferTensorContents{IntContents: []int32{300}})}}, code: codes.InvalidArgument, wantErr: `input "transport_mode": value 0 is 300, beyond INT8`},
		"typed: duplicate input": {typed: true, req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{
			in("numeric", "FP32", []int64{1, 8}, &oippb.InferTensorContents{Fp32Contents: f32(8)}),
			in("numeric", "FP32", []int64{1, 8}, &oippb.InferTensorContents{Fp32Contents: f32(8)})}}, code: codes.InvalidArgument, wantErr: `input "numeric" appears twice`},
		"typed: missing input": {typed: true, req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{
			in("numeric", "FP32", []int64{1, 8}, &oippb.InferTensorContents{Fp32Contents: f32(8)})}}, code: codes.InvalidArgument, wantErr: `missing input "transport_mode"`},
		"typed: raw BYTES truncated": {typed: true, req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{
			in("numeric", "FP32", []int64{1, 8}, nil), in("transport_mode", "BYTES", []int64{1}, nil)},
			RawInputContents: [][]byte{make([]byte, 32), {9, 0, 0, 0, 'a'}}}, code: codes.InvalidArgument, wantErr: "element 0 claims 9 bytes, 1 are left"},
		"typed: BOOL raw byte": {typed: true, req: &oippb.ModelInferRequest{ModelName: "m", Inputs: []*oippb.ModelInferRequest_InferInputTensor{
			in("numeric", "FP32", []int64{1, 8}, nil), in("transport_mode", "BOOL", []int64{1}, nil)},
			RawInputContents: [][]byte{make([]byte, 32), {2}}}, code: codes.InvalidArgument, wantErr: "byte 0 is 2; BOOL is 0 or 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := rows
			if tc.typed {
				s = typed
			}
			_, err := s.client.ModelInfer(callCtx(t), tc.req)
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.wantErr) {
				t.Fatalf("%v: %s, want %v containing %q", st.Code(), st.Message(), tc.code, tc.wantErr)
			}
		})
	}
}

// Metadata, readiness and the standard health service, as grpc-health-probe and Kubernetes'
// gRPC probes ask: NOT_SERVING until the model is loaded and again once draining.
func TestGRPCMetadataReadinessAndHealth(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "torch_tabular_opset17")
	s := serveGRPC(t, fx.Path, grpcSetup{})
	ctx := callCtx(t)
	checkHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for _, svc := range []string{"", "inference.GRPCInferenceService"} {
			resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.Status != want {
				t.Fatalf("health of %q: %v %v, want %v", svc, resp.GetStatus(), err, want)
			}
		}
		if _, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: "other"}); status.Code(err) != codes.NotFound {
			t.Fatalf("health of an unknown service: %v, want NotFound", err)
		}
	}
	live, err := s.client.ServerLive(ctx, &oippb.ServerLiveRequest{})
	if err != nil || !live.Live {
		t.Fatalf("live %v %v", live, err)
	}
	ready, err := s.client.ServerReady(ctx, &oippb.ServerReadyRequest{})
	if err != nil || ready.Ready {
		t.Fatalf("ready before the model: %v %v", ready, err)
	}
	checkHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := s.client.ModelMetadata(ctx, &oippb.ModelMetadataRequest{Name: "m"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("metadata before the model: %v, want Unavailable", err)
	}

	rt, err := model.LoadFile(fx.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.srv.SetModel(rt); err != nil {
		t.Fatal(err)
	}
	checkHealth(healthpb.HealthCheckResponse_SERVING)
	mr, err := s.client.ModelReady(ctx, &oippb.ModelReadyRequest{Name: "m", Version: "1"})
	if err != nil || !mr.Ready {
		t.Fatalf("model ready: %v %v", mr, err)
	}
	if _, err := s.client.ModelReady(ctx, &oippb.ModelReadyRequest{Name: "x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("ready of an unknown model: %v, want NotFound", err)
	}
	sm, err := s.client.ServerMetadata(ctx, &oippb.ServerMetadataRequest{})
	if err != nil || sm.Name != "freightcast" || sm.Version == "" {
		t.Fatalf("server metadata %v %v", sm, err)
	}
	md, err := s.client.ModelMetadata(ctx, &oippb.ModelMetadataRequest{Name: "m"})
	if err != nil {
		t.Fatal(err)
	}
	type tm struct {
		Name, Datatype string
		Shape          []int64
	}
	var ins, outs []tm
	for _, x := range md.Inputs {
		ins = append(ins, tm{x.Name, x.Datatype, x.Shape})
	}
	for _, x := range md.Outputs {
		outs = append(outs, tm{x.Name, x.Datatype, x.Shape})
	}
	wantIns := []tm{{"numeric", "FP32", []int64{-1, 8}}, {"transport_mode", "INT64", []int64{-1}}}
	wantOuts := []tm{{"delay_risk", "FP32", []int64{-1, 1}}}
	if md.Name != "m" || !slices.Equal(md.Versions, []string{"1"}) || md.Platform != "onnx_onnxv1" ||
		fmt.Sprint(ins) != fmt.Sprint(wantIns) || fmt.Sprint(outs) != fmt.Sprint(wantOuts) {
		t.Fatalf("model metadata %v", md)
	}

	s.srv.Drain()
	checkHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if ready, err := s.client.ServerReady(ctx, &oippb.ServerReadyRequest{}); err != nil || ready.Ready {
		t.Fatalf("ready while draining: %v %v", ready, err)
	}
}

// With tokens, every method but liveness, readiness and health needs "authorization: Bearer
// <token>" metadata, over TLS from a reloadable certificate; a plaintext client gets nowhere.
func TestGRPCTokensOverTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokensFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokensFile, []byte("secret-a\nsecret-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpauth.NewTokens(tokensFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, "m-predictor")
	cert, err := tlsreload.Load(certFile, keyFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	s := serveGRPC(t, fx.Path, grpcSetup{load: true, tokens: tokens, tlsConfig: cert.ServerConfig(),
		creds: credentials.NewTLS(&tls.Config{RootCAs: ca.Pool})})
	req := gRPCFixtureRequest(t, fx, fx.CompleteRows()[:1], false)
	withToken := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(callCtx(t), "authorization", "Bearer "+tok)
	}
	if _, err := s.client.ModelInfer(callCtx(t), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("infer without a token: %v, want Unauthenticated", err)
	}
	if _, err := s.client.ModelInfer(withToken("guess"), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("infer with an unknown token: %v, want Unauthenticated", err)
	}
	if _, err := s.client.ModelMetadata(callCtx(t), &oippb.ModelMetadataRequest{Name: "m"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("metadata without a token: %v, want Unauthenticated", err)
	}
	if _, err := s.client.ModelInfer(withToken("secret-b"), req); err != nil {
		t.Fatalf("infer with a token: %v", err)
	}
	if r, err := s.client.ServerReady(callCtx(t), &oippb.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Fatalf("readiness stays open: %v %v", r, err)
	}
	if r, err := s.health.Check(callCtx(t), &healthpb.HealthCheckRequest{}); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health stays open: %v %v", r, err)
	}

	plain, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := oippb.NewGRPCInferenceServiceClient(plain).ServerLive(callCtx(t), &oippb.ServerLiveRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext against TLS: %v, want Unavailable", err)
	}
}

// ModelInfer continues the client's trace from its traceparent metadata.
func TestGRPCInferServerSpan(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	s := serveGRPC(t, fx.Path, grpcSetup{load: true, tracerProvider: tp})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := s.client.ModelInfer(ctx, gRPCFixtureRequest(t, fx, fx.CompleteRows()[:3], false)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client.ServerReady(ctx, &oippb.ServerReadyRequest{}); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	wantTrace, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if len(spans) != 1 || spans[0].Name() != "/inference.GRPCInferenceService/ModelInfer" || spans[0].SpanKind() != trace.SpanKindServer ||
		spans[0].SpanContext().TraceID() != wantTrace {
		t.Fatalf("spans %v: want one server span of ModelInfer in the client's trace", spans)
	}
	attrs := map[string]any{}
	for _, a := range spans[0].Attributes() {
		attrs[string(a.Key)] = a.Value.AsInterface()
	}
	if attrs["rpc.response.status_code"] != "OK" || attrs["freightcast.model.name"] != "m" || attrs["freightcast.request.rows"] != int64(3) {
		t.Errorf("attributes %v", attrs)
	}
}
