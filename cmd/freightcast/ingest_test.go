package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func TestResolveFeatures(t *testing.T) {
	t.Parallel()
	modelOrder := strings.Split(freightFeatures, ",")
	cases := map[string]struct {
		flag      string
		spec      string // --inputs, the model's spec.inputs
		modelFile string
		config    []string
		inputs    []pipelineconfig.Input
		want      []string
		wantErr   string
	}{
		"flag wins":             {flag: "a,b,c", config: []string{"x"}, want: []string{"a", "b", "c"}},
		"config":                {config: []string{"x", "y"}, want: []string{"x", "y"}},
		"inputs need the model": {inputs: []pipelineconfig.Input{{Name: "features", Features: []string{"x"}}}, wantErr: "give the model"},
		"inputs against the file": {inputs: []pipelineconfig.Input{{Name: "features", DataType: "INT64", Features: modelOrder}}, modelFile: freightModel,
			wantErr: `input "features" is declared INT64, the model file says FP32`},
		"neither":               {wantErr: "feature names are required"},
		"empty flag name":       {flag: "a,,b", wantErr: "empty"},
		"from the model file":   {modelFile: freightModel, want: modelOrder},
		"flag agrees with file": {flag: freightFeatures, modelFile: freightModel, want: modelOrder},
		"config disagrees with file": {config: []string{"distance_km", "mode_air"}, modelFile: freightModel,
			wantErr: "the model declares 12"},
		"not a model":                     {modelFile: "ingest_test.go", wantErr: "model"},
		"spec.inputs agree with the file": {spec: `[{"name":"features","datatype":"FP32","shape":[-1,12]}]`, modelFile: freightModel, want: modelOrder},
		"spec.inputs name another input": {spec: `[{"name":"numeric","datatype":"FP32"}]`, modelFile: freightModel,
			wantErr: `spec.inputs names "numeric", but the model's inputs are features`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			inputs, err := resolveInputs(context.Background(), ingestConfig{features: tc.flag, inputs: tc.spec, modelFile: tc.modelFile},
				pipelineconfig.Model{Features: tc.config, Inputs: tc.inputs})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(inputs) != 1 || inputs[0].DataType != "FP32" {
				t.Fatalf("inputs %+v, want one FP32 input", inputs)
			}
			if diff := cmp.Diff(tc.want, inputs[0].Features); diff != "" {
				t.Errorf("features (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseIngestFlagsAcceptsTheOperatorsArguments(t *testing.T) {
	// What desiredIngestionDeployment renders for a URI model source.
	args := []string{"--addr=:8080", "--pipeline-config=/etc/freightcast/pipeline/pipeline.json",
		"--model-uri=https://models/m.onnx", "--model-sha256=abc", "--model-cache-dir=/var/cache/model",
		"--model-name=delay", "--model-version=1", "--features=a,b",
		`--inputs=[{"name":"features","datatype":"FP32","features":["a","b"]}]`}
	c, err := parseIngestFlags(args)
	if err != nil {
		t.Fatal(err)
	}
	if c.features != "a,b" || c.inputs == "" || c.modelName != "delay" || c.shutdownTimeout != 25*time.Second {
		t.Errorf("parsed %+v", c)
	}
}

func TestParseIngestFlagsTLS(t *testing.T) {
	c, err := parseIngestFlags([]string{"--tls-cert-file=/etc/freightcast/tls/tls.crt", "--tls-key-file=/etc/freightcast/tls/tls.key"})
	if err != nil {
		t.Fatal(err)
	}
	if c.tls != (tlsFiles{certFile: "/etc/freightcast/tls/tls.crt", keyFile: "/etc/freightcast/tls/tls.key"}) {
		t.Errorf("parsed %+v", c.tls)
	}
	if _, err := parseIngestFlags([]string{"--tls-key-file=k"}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("a key without a certificate: error %v", err)
	}
}

// TestRunIngestServesAndShutsDown runs the command as the operator starts it, against a real
// nats-server whose stream is provisioned after the pod started.
func TestRunIngestServesAndShutsDown(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testPipelineConfig(srv.URL())
	spec := cfg.Queue
	addr, stop := startIngest(t, cfg)
	status := ingestStatus(addr)
	testenv.Eventually(t, 15*time.Second, "livez", status("/livez", http.StatusOK))
	// Ready before the stream exists: clients get a 503 saying why, not a refused connection.
	testenv.Eventually(t, 15*time.Second, "readyz before the stream exists", status("/readyz", http.StatusOK))
	if resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(`{"id":"e0","features":{"a":1,"b":2}}`)); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST before the stream exists = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	_, js := natstest.Connect(t, srv.URL())
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "readyz", status("/readyz", http.StatusOK))

	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(`{"id":"e1","features":{"a":1,"b":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %d, want 202", resp.StatusCode)
	}

	if err := stop(); err != nil {
		t.Fatalf("runIngest after cancel: %v", err)
	}
}

// TestRunIngestPodsShareTheRateLimit runs two `freightcast ingest` processes of one pipeline with a
// rate limit, as two pods: each hears the other on NATS and divides the limit by 2; when one
// stops, the other takes the whole limit.
func TestRunIngestPodsShareTheRateLimit(t *testing.T) {
	cfg := testPipelineConfig(natstest.Start(t).URL())
	cfg.Ingestion.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: 100, Burst: 100}
	a, _ := startIngest(t, cfg)
	b, stopB := startIngest(t, cfg)
	pods := func(addr string, want int) func() error {
		return func() error {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if line := fmt.Sprintf("freightcast_ingest_rate_limit_pods %d\n", want); !strings.Contains(string(body), line) {
				return fmt.Errorf("/metrics lacks %q", strings.TrimSpace(line))
			}
			return nil
		}
	}
	testenv.Eventually(t, 15*time.Second, "pod a dividing the limit by 2", pods(a, 2))
	testenv.Eventually(t, 15*time.Second, "pod b dividing the limit by 2", pods(b, 2))
	if err := stopB(); err != nil {
		t.Fatalf("runIngest after cancel: %v", err)
	}
	testenv.Eventually(t, 15*time.Second, "pod a alone after b's goodbye", pods(a, 1))
}

// testPipelineConfig is the config of pipeline ns1/p1 on the NATS server at url.
func testPipelineConfig(url string) pipelineconfig.Config {
	spec := queue.Spec{Topology: queue.TopologyFor("ns1", "p1"), Limits: queue.Limits{
		MaxMessages: 100, MaxBytes: 1 << 20, MaxAge: time.Hour, DuplicateWindow: time.Minute,
		AckWait: time.Minute, MaxDeliver: 3, MaxAckPending: 10, PredictionRetention: time.Hour,
	}}
	return pipelineconfig.Config{Namespace: "ns1", Name: "p1", NATSURL: url, Queue: spec,
		Model:     pipelineconfig.Model{Name: "delay", Version: "1", Features: []string{"a", "b"}},
		Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 1 << 16}, Inference: pipelineconfig.Inference{BatchSize: 8}}
}

// startIngest runs `freightcast ingest` on cfg as the operator starts it, until stop (or the
// test's end).
func startIngest(t *testing.T, cfg pipelineconfig.Config, extraArgs ...string) (addr string, stop func() error) {
	t.Helper()
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), pipelineconfig.FileName)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	addr = freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runIngest(ctx, append([]string{"--addr=" + addr, "--pipeline-config=" + cfgPath, "--model-name=delay"}, extraArgs...))
	}()
	// Stopping twice (the test, then the cleanup after a failure) must not wait twice.
	stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stop() })
	return addr, stop
}

// ingestGet is the status of GET path, 0 when nothing answers.
func ingestGet(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ingestStatus makes conditions for Eventually: path answers want.
func ingestStatus(addr string) func(path string, want int) func() error {
	return func(path string, want int) func() error {
		return func() error {
			if code := ingestGet(addr, path); code != want {
				return fmt.Errorf("%s = %d", path, code)
			}
			return nil
		}
	}
}
