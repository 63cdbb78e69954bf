package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestServeInferWithTokensOverTLS runs `freightcast infer` as a PredictionModel with spec.auth
// and spec.tls runs it: HTTPS from the mounted Secret's files, bearer tokens on the API, health
// open for the probes.
func TestServeInferWithTokensOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	o := defaultOptions(freightFeatures)
	o.tls.certFile, o.tls.keyFile = ca.WriteFiles(t, dir, "freight-predictor")
	o.tokensFile = filepath.Join(dir, "tokens")
	if err := os.WriteFile(o.tokensFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base, done, cancel := startInfer(t, o)
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveInfer: %v", err)
		}
	}()
	base = strings.Replace(base, "http://", "https://", 1)
	do := httpsCaller(t, ca, base)
	waitHTTPSReady(t, do, "/v2/health/ready", 10*time.Second)
	sample, err := os.ReadFile("../../models/freight-delay-risk.request.json")
	if err != nil {
		t.Fatal(err)
	}
	if code := do("POST", "/v2/models/freight/infer", "", string(sample)); code != http.StatusUnauthorized {
		t.Errorf("infer without a token: %d, want 401", code)
	}
	if code := do("POST", "/v2/models/freight/infer", "s3cret", string(sample)); code != http.StatusOK {
		t.Errorf("infer with the token: %d, want 200", code)
	}
	if code := do("GET", "/v2/health/live", "", ""); code != http.StatusOK {
		t.Errorf("liveness without a token: %d, want 200", code)
	}
}

// TestServeInferRefusesMissingSecretFiles: a Secret key that is not there stops the server at
// startup with an error naming the file.
func TestServeInferRefusesMissingSecretFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, "x")
	cases := map[string]struct {
		tune    func(*inferOptions)
		wantErr []string
	}{
		"tokens file missing": {
			tune:    func(o *inferOptions) { o.tokensFile = filepath.Join(dir, "absent-tokens") },
			wantErr: []string{"--tokens-file", "absent-tokens"},
		},
		"certificate missing": {
			tune:    func(o *inferOptions) { o.tls = tlsFiles{certFile: filepath.Join(dir, "absent.crt"), keyFile: keyFile} },
			wantErr: []string{"absent.crt"},
		},
		"key unreadable": {
			tune:    func(o *inferOptions) { o.tls = tlsFiles{certFile: certFile, keyFile: dir} },
			wantErr: []string{"tls", dir},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			o := defaultOptions(freightFeatures)
			tc.tune(o)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = serveInfer(ctx, o, ln, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("served")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestRunIngestWithTokensOverTLS runs `freightcast ingest` as a pipeline with
// spec.ingestion.auth and spec.ingestion.tls runs it, against a real nats-server: HTTPS only,
// 401 without a token, 202 with one, the probes open.
func TestRunIngestWithTokensOverTLS(t *testing.T) {
	srv := natstest.Start(t)
	spec := queue.Spec{Topology: queue.TopologyFor("ns1", "p1"), Limits: queue.Limits{
		MaxMessages: 100, MaxBytes: 1 << 20, MaxAge: time.Hour, DuplicateWindow: time.Minute,
		AckWait: time.Minute, MaxDeliver: 3, MaxAckPending: 10, PredictionRetention: time.Hour,
	}}
	_, js := natstest.Connect(t, srv.URL())
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokensFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokensFile, []byte("shipper-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := pipelineconfig.Config{Namespace: "ns1", Name: "p1", NATSURL: srv.URL(), Queue: spec,
		Model:     pipelineconfig.Model{Name: "delay", Version: "1", Features: []string{"a", "b"}},
		Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 1 << 16, TokensFile: tokensFile}, Inference: pipelineconfig.Inference{BatchSize: 8}}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, pipelineconfig.FileName)
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, "p1-ingest")
	addr := freePort(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runIngest(ctx, []string{"--addr=" + addr, "--pipeline-config=" + cfgPath, "--model-name=delay",
			"--tls-cert-file=" + certFile, "--tls-key-file=" + keyFile})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runIngest: %v", err)
		}
	}()
	do := httpsCaller(t, ca, "https://"+addr)
	waitHTTPSReady(t, do, "/readyz", 15*time.Second)
	event := `{"id":"e1","features":{"a":1,"b":2}}`
	if code := do("POST", "/v1/events", "", event); code != http.StatusUnauthorized {
		t.Errorf("POST without a token = %d, want 401", code)
	}
	if code := do("POST", "/v1/events", "shipper-1", event); code != http.StatusAccepted {
		t.Errorf("POST with the token = %d, want 202", code)
	}
	if code := do("GET", "/livez", "", ""); code != http.StatusOK {
		t.Errorf("livez without a token = %d, want 200", code)
	}
	if resp, err := http.Get("http://" + addr + "/livez"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the TLS port")
		}
	}
}

// httpsCaller returns a function that sends one request to base over TLS trusting ca, with a
// bearer token when one is given, and returns the status code (0 when the request failed).
func httpsCaller(t *testing.T, ca *testcerts.CA, base string) func(method, path, token, body string) int {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	return func(method, path, token, body string) int {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
}

// waitHTTPSReady waits until path answers 200 over TLS.
func waitHTTPSReady(t *testing.T, do func(method, path, token, body string) int, path string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, path+" over HTTPS", func() error {
		if code := do("GET", path, "", ""); code != http.StatusOK {
			return fmt.Errorf("status %d (0: the request failed)", code)
		}
		return nil
	})
}
