package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

const freightModel = "../../models/freight-delay-risk.onnx"

const freightFeatures = "distance_km,mode_ocean,mode_air,mode_rail,mode_road,carrier_on_time_rate,port_congestion_index,weather_severity,month_sin,month_cos,customs_complexity,dwell_time_hours"

func TestParseInferFlags(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		args    []string
		want    *inferOptions
		wantErr string
	}{
		"defaults": {
			args: []string{"--model-name", "freight", "--model-file", "m.onnx"},
			want: &inferOptions{addr: ":8080", grpcAddr: ":8081", modelName: "freight", modelVersion: "1", modelFile: "m.onnx",
				maxBatchSize: 64, maxBatchDelay: 2 * time.Millisecond, maxBodyBytes: 4 << 20, shutdownTimeout: 25 * time.Second,
				drainDelay: 5 * time.Second, workers: runtime.GOMAXPROCS(0)},
		},
		"worker": {
			args: []string{"--model-name=m", "--model-file=m.onnx", "--worker", "--pipeline-config=/etc/p.json", "--workers=3"},
			want: &inferOptions{addr: ":8080", grpcAddr: ":8081", modelName: "m", modelVersion: "1", modelFile: "m.onnx",
				maxBatchSize: 64, maxBatchDelay: 2 * time.Millisecond, maxBodyBytes: 4 << 20, shutdownTimeout: 25 * time.Second,
				drainDelay: 5 * time.Second, worker: true, pipelineConfig: "/etc/p.json", workers: 3},
		},
		"worker without config": {args: []string{"--model-name=m", "--model-file=a", "--worker"}, wantErr: "--worker needs --pipeline-config"},
		"tokens with worker":    {args: []string{"--model-name=m", "--model-file=a", "--worker", "--pipeline-config=p", "--tokens-file=t"}, wantErr: "--tokens-file is not read with --worker"},
		"config without worker": {args: []string{"--model-name=m", "--model-file=a", "--pipeline-config=p"}, wantErr: "only read with --worker"},
		"uri": {
			args: []string{"--model-name=m", "--model-uri=https://x/m.onnx", "--model-sha256=ab", "--max-batch-size=8", "--max-batch-delay=0", "--shutdown-timeout=10s"},
			want: &inferOptions{addr: ":8080", grpcAddr: ":8081", modelName: "m", modelVersion: "1", modelURI: "https://x/m.onnx", modelSHA256: "ab",
				maxBatchSize: 8, maxBodyBytes: 4 << 20, shutdownTimeout: 10 * time.Second, drainDelay: 2 * time.Second,
				workers: runtime.GOMAXPROCS(0)},
		},
		"tls and tokens": {
			args: []string{"--model-name=m", "--model-file=m.onnx", "--tokens-file=/etc/freightcast/auth/tokens",
				"--tls-cert-file=/etc/freightcast/tls/tls.crt", "--tls-key-file=/etc/freightcast/tls/tls.key"},
			want: &inferOptions{addr: ":8080", grpcAddr: ":8081", modelName: "m", modelVersion: "1", modelFile: "m.onnx",
				maxBatchSize: 64, maxBatchDelay: 2 * time.Millisecond, maxBodyBytes: 4 << 20, shutdownTimeout: 25 * time.Second,
				drainDelay: 5 * time.Second, workers: runtime.GOMAXPROCS(0), tokensFile: "/etc/freightcast/auth/tokens",
				tls: tlsFiles{certFile: "/etc/freightcast/tls/tls.crt", keyFile: "/etc/freightcast/tls/tls.key"}},
		},
		"certificate without key": {args: []string{"--model-name=m", "--model-file=a", "--tls-cert-file=c"}, wantErr: "--tls-cert-file and --tls-key-file go together"},
		"no name":                 {args: []string{"--model-file", "m.onnx"}, wantErr: "--model-name is required"},
		"no source":               {args: []string{"--model-name", "m"}, wantErr: "exactly one of --model-file and --model-uri"},
		"two sources":             {args: []string{"--model-name", "m", "--model-file", "a", "--model-uri", "https://b"}, wantErr: "exactly one"},
		"zero batch":              {args: []string{"--model-name", "m", "--model-file", "a", "--max-batch-size", "0"}, wantErr: "at least 1"},
		"stray arg":               {args: []string{"--model-name", "m", "--model-file", "a", "extra"}, wantErr: "unexpected arguments"},
		"unknown flag":            {args: []string{"--model"}, wantErr: "flag provided but not defined"},
		"negative body":           {args: []string{"--model-name", "m", "--model-file", "a", "--max-body-bytes", "-1"}, wantErr: "must be positive"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := parseInferFlags(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(inferOptions{}, tlsFiles{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func startInfer(t *testing.T, o *inferOptions) (base string, done chan error, cancel context.CancelFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan error, 1)
	go func() { done <- serveInfer(ctx, o, ln, slog.New(slog.DiscardHandler)) }()
	return "http://" + ln.Addr().String(), done, cancel
}

func defaultOptions(features string) *inferOptions {
	return &inferOptions{modelName: "freight", modelVersion: "1", modelFile: freightModel, features: features,
		maxBatchSize: 64, maxBatchDelay: 2 * time.Millisecond, maxBodyBytes: 4 << 20, shutdownTimeout: 5 * time.Second}
}

// TestServeInferEndToEnd runs the subcommand's server on loopback with the committed model and
// sends the committed sample request.
func TestServeInferEndToEnd(t *testing.T) {
	base, done, cancel := startInfer(t, defaultOptions(freightFeatures))
	defer cancel()
	waitReady(t, base)
	code, raw := postSample(t, base)
	var got struct {
		ID      string `json:"id"`
		Outputs []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(raw), &got); err != nil || code != 200 {
		t.Fatalf("status %d, body %s, %v", code, raw, err)
	}
	if got.ID != "sample-1" || len(got.Outputs) != 1 || got.Outputs[0].Name != "delay_risk" || !cmp.Equal(got.Outputs[0].Shape, []int{2, 1}) {
		t.Fatalf("response %s", raw)
	}
	for _, p := range got.Outputs[0].Data {
		if p <= 0 || p >= 1 {
			t.Errorf("delay risk %v is not a probability", p)
		}
	}
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mraw, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{"freightcast_inference_rows_predicted_total 2", "freightcast_inference_model_load_duration_seconds", "go_goroutines"} {
		if !strings.Contains(string(mraw), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveInfer: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveInfer did not return after cancel")
	}
}

// TestServeInferDrains checks that after the signal the server reports not ready but still
// answers infer requests for the drain delay, then stops.
func TestServeInferDrains(t *testing.T) {
	o := defaultOptions("")
	// Wide margins: on a loaded machine under -race the checks below must still fall inside the
	// drain, which is all this test is about.
	o.drainDelay, o.shutdownTimeout = 4*time.Second, 10*time.Second
	base, done, cancel := startInfer(t, o)
	defer cancel()
	waitReady(t, base)
	cancel()
	// How soon readiness turns 503 depends on the machine; what matters is that it does while
	// the server still runs, so only an exit (or a stall past the bound) fails the wait.
	testenv.Eventually(t, time.Minute, "readiness 503 after the signal", func() error {
		select {
		case err := <-done:
			t.Fatalf("serveInfer returned (%v) before its readiness turned 503", err)
		default:
		}
		resp, err := http.Get(base + "/v2/health/ready")
		if err != nil {
			t.Fatalf("the server stopped answering before its readiness turned 503: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			return fmt.Errorf("readiness %d", resp.StatusCode)
		}
		return nil
	})
	if code, body := postSample(t, base); code != http.StatusOK {
		t.Errorf("infer while draining: %d %s", code, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveInfer: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serveInfer did not return after draining")
	}
}

// TestServeInferFromURI serves the model from an https URI pinned by its digest, and refuses a
// wrong digest.
func TestServeInferFromURI(t *testing.T) {
	data, err := os.ReadFile(freightModel)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer ts.Close()
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	uriOptions := func(digest string) *inferOptions {
		o := defaultOptions("")
		o.modelFile, o.modelURI, o.modelSHA256, o.modelCacheDir, o.client = "", ts.URL+"/m.onnx", digest, t.TempDir(), ts.Client()
		return o
	}

	base, done, cancel := startInfer(t, uriOptions(good))
	waitReady(t, base)
	code, body := postSample(t, base)
	if code != http.StatusOK || !strings.Contains(body, `"id":"sample-1"`) {
		t.Errorf("infer: %d %s", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveInfer: %v", err)
	}

	_, done, cancel = startInfer(t, uriOptions(strings.Repeat("0", 64)))
	defer cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "SHA-256 mismatch") {
			t.Errorf("error %v, want a SHA-256 mismatch", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("served a model whose digest does not match")
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "OIP readiness", func() error {
		resp, err := http.Get(base + "/v2/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

func postSample(t *testing.T, base string) (int, string) {
	t.Helper()
	body, err := os.ReadFile("../../models/freight-delay-risk.request.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/v2/models/freight/infer", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestServeInferRefusesBadModels(t *testing.T) {
	// A private model store: a TLS server whose certificate a test CA signed, holding a model the
	// runtime refuses.
	fused := onnxtest.Refused(3)
	ca := testcerts.NewCA(t)
	store := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(fused) }))
	store.TLS = ca.ServerConfig(t)
	store.StartTLS()
	defer store.Close()
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(fused)
	download := func(sha, caFile string) *inferOptions {
		return &inferOptions{modelName: "m", modelVersion: "1", modelURI: store.URL + "/fused.onnx", modelSHA256: sha, modelCAFile: caFile,
			modelCacheDir: t.TempDir(), maxBatchSize: 1, maxBodyBytes: 1, shutdownTimeout: time.Second}
	}
	cases := map[string]struct {
		o       *inferOptions
		wantErr string
		// unloadable: the process exits with modelcheck.ExitUnloadable, as no restart helps.
		unloadable bool
	}{
		"feature order": {
			o:          defaultOptions(strings.Replace(freightFeatures, "mode_ocean,mode_air", "mode_air,mode_ocean", 1)),
			wantErr:    `served feature 1 is "mode_air", the model declares "mode_ocean" there`,
			unloadable: true,
		},
		"feature count": {o: defaultOptions("a,b"), wantErr: "2 feature names are served, the model declares 12", unloadable: true},
		"missing file": {
			o:       &inferOptions{modelName: "m", modelVersion: "1", modelFile: "/nonexistent.onnx", maxBatchSize: 1, maxBodyBytes: 1, shutdownTimeout: time.Second},
			wantErr: "no such file",
		},
		"a download trusted through --model-ca-file, of a model the runtime refuses": {
			o:          download(hex.EncodeToString(sum[:]), caFile),
			wantErr:    "FusedGemm",
			unloadable: true,
		},
		"a download from a store whose CA is not trusted": {
			o:       download(hex.EncodeToString(sum[:]), ""),
			wantErr: "certificate signed by unknown authority",
		},
		"a download whose bytes are not the pinned ones": {
			o:          download(strings.Repeat("ab", 32), caFile),
			wantErr:    "SHA-256 mismatch",
			unloadable: true,
		},
		"not a model": {
			o:          &inferOptions{modelName: "m", modelVersion: "1", modelFile: "infer.go", maxBatchSize: 1, maxBodyBytes: 1, shutdownTimeout: time.Second},
			wantErr:    "invalid model",
			unloadable: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, done, cancel := startInfer(t, tc.o)
			defer cancel()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one containing %q", err, tc.wantErr)
				}
				want := 1
				if tc.unloadable {
					want = modelcheck.ExitUnloadable
				}
				if got := exitCode(err); got != want {
					t.Errorf("exit code %d, want %d", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serveInfer kept serving a model it should refuse")
			}
		})
	}
}
