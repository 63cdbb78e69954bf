package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testcerts"
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
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	do := func(method, path, token, body string) int {
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
	for deadline := time.Now().Add(10 * time.Second); do("GET", "/v2/health/ready", "", "") != http.StatusOK; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready over HTTPS after 10s")
		}
	}
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
