package modelsource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFetchURI(t *testing.T) {
	model, err := os.ReadFile("../../models/freight-delay-risk.onnx")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/model.onnx":
			w.Write(model)
		case "/slow.onnx":
			time.Sleep(300 * time.Millisecond)
			w.Write(model)
		case "/big.onnx":
			w.Write(make([]byte, 2048))
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	good := digest(model)
	cases := map[string]struct {
		spec    Spec
		wantErr string
	}{
		"downloads and checks": {spec: Spec{URI: ts.URL + "/model.onnx", SHA256: good}},
		"upper-case digest":    {spec: Spec{URI: ts.URL + "/model.onnx", SHA256: strings.ToUpper(good)}},
		"digest mismatch":      {spec: Spec{URI: ts.URL + "/model.onnx", SHA256: digest([]byte("other"))}, wantErr: "SHA-256 mismatch"},
		"not found":            {spec: Spec{URI: ts.URL + "/missing.onnx?sig=secret", SHA256: good}, wantErr: "HTTP 404"},
		"too large":            {spec: Spec{URI: ts.URL + "/big.onnx", SHA256: good, MaxBytes: 1024}, wantErr: "more than the 1024"},
		"timeout":              {spec: Spec{URI: ts.URL + "/slow.onnx?sig=secret", SHA256: good, Timeout: 50 * time.Millisecond}, wantErr: "deadline exceeded"},
		"http refused":         {spec: Spec{URI: strings.Replace(ts.URL, "https", "http", 1) + "/model.onnx", SHA256: good}, wantErr: "only https"},
		"digest required":      {spec: Spec{URI: ts.URL + "/model.onnx"}, wantErr: "needs a SHA-256 digest"},
		"bad digest":           {spec: Spec{URI: ts.URL + "/model.onnx", SHA256: "abc"}, wantErr: "64 hexadecimal digits"},
		"both sources":         {spec: Spec{URI: ts.URL + "/model.onnx", SHA256: good, Path: "/x"}, wantErr: "not both"},
		"no source":            {spec: Spec{}, wantErr: "no model source"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.spec.CacheDir = t.TempDir()
			tc.spec.Client = ts.Client()
			got, err := Fetch(context.Background(), tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q leaks the URI's query", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(model, got); diff != "" {
				t.Errorf("bytes differ (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchURIDownloadsOnce(t *testing.T) {
	model := []byte("pretend model bytes")
	var hits atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(model)
	}))
	defer ts.Close()
	spec := Spec{URI: ts.URL + "/m.onnx", SHA256: digest(model), CacheDir: t.TempDir(), Client: ts.Client()}
	for range 3 {
		got, err := Fetch(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(model, got); diff != "" {
			t.Fatalf("bytes differ:\n%s", diff)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("%d downloads, want 1", n)
	}
	// A corrupted cache entry is replaced by a fresh download.
	if err := os.WriteFile(filepath.Join(spec.CacheDir, digest(model)+".onnx"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d downloads after corrupting the cache, want 2", n)
	}
}

func TestFetchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	data := []byte("model")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		spec    Spec
		wantErr string
	}{
		"plain":           {spec: Spec{Path: path}},
		"matching digest": {spec: Spec{Path: path, SHA256: digest(data)}},
		"wrong digest":    {spec: Spec{Path: path, SHA256: digest([]byte("x"))}, wantErr: "SHA-256 mismatch"},
		"missing":         {spec: Spec{Path: filepath.Join(dir, "nope.onnx")}, wantErr: "no such file"},
		"too large":       {spec: Spec{Path: path, MaxBytes: 2}, wantErr: "larger than 2 bytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Fetch(context.Background(), tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(data, got); diff != "" {
				t.Errorf("bytes differ:\n%s", diff)
			}
		})
	}
}

// TestFetchURIWithCABundle downloads from a TLS server whose certificate a private CA signed: the
// system's roots refuse it, the CA's bundle trusts it, another CA's does not.
func TestFetchURIWithCABundle(t *testing.T) {
	model := []byte("model bytes from a private store")
	ca := testcerts.NewCA(t)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(model) }))
	ts.TLS = ca.ServerConfig(t)
	ts.StartTLS()
	defer ts.Close()
	other := testcerts.NewCA(t)
	cases := map[string]struct {
		bundle  []byte
		wantErr string
	}{
		"the store's CA":              {bundle: ca.PEM},
		"the store's CA after others": {bundle: append(append(other.PEM, '\n'), ca.PEM...)},
		"no bundle: the system roots": {wantErr: "certificate signed by unknown authority"},
		"another CA":                  {bundle: other.PEM, wantErr: "certificate signed by unknown authority"},
		"not PEM":                     {bundle: []byte("not a certificate"), wantErr: "no PEM block"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := Fetch(context.Background(), Spec{URI: ts.URL + "/m.onnx", SHA256: digest(model), CABundle: tc.bundle, CacheDir: t.TempDir()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(model, got); diff != "" {
				t.Errorf("bytes differ:\n%s", diff)
			}
		})
	}
}

func TestParseCABundle(t *testing.T) {
	ca := testcerts.NewCA(t)
	_, keyPEM := ca.Issue(t, "x")
	block, _ := pem.Decode(ca.PEM)
	corrupt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes[:len(block.Bytes)/2]})
	cases := map[string]struct {
		bundle  []byte
		wantErr string
	}{
		"one certificate":       {bundle: ca.PEM},
		"two certificates":      {bundle: append(append([]byte{}, ca.PEM...), testcerts.NewCA(t).PEM...)},
		"surrounding space":     {bundle: append(append([]byte("\n  \n"), ca.PEM...), "\n\n"...)},
		"empty":                 {bundle: []byte{}, wantErr: "empty"},
		"only space":            {bundle: []byte(" \n"), wantErr: "empty"},
		"text":                  {bundle: []byte("hello"), wantErr: "no PEM block"},
		"a private key":         {bundle: keyPEM, wantErr: "PEM block 1 is a PRIVATE KEY, not a CERTIFICATE"},
		"a corrupt certificate": {bundle: corrupt, wantErr: "certificate 1:"},
		"trailing text":         {bundle: append(append([]byte{}, ca.PEM...), "garbage"...), wantErr: "text after PEM block 1"},
		"too large":             {bundle: make([]byte, maxCABundleBytes+1), wantErr: "larger than"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			pool, err := ParseCABundle(tc.bundle)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || pool == nil {
				t.Fatalf("pool %v, error %v", pool, err)
			}
		})
	}
}

func TestDigestMismatchIsDistinct(t *testing.T) {
	model := []byte("the store's bytes")
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(model) }))
	defer ts.Close()
	_, err := Fetch(context.Background(), Spec{URI: ts.URL + "/m.onnx", SHA256: digest([]byte("the pinned bytes")), CacheDir: t.TempDir(), Client: ts.Client()})
	if !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("error %v, want ErrDigestMismatch", err)
	}
	ts.Close()
	_, err = Fetch(context.Background(), Spec{URI: ts.URL + "/m.onnx", SHA256: digest(model), CacheDir: t.TempDir(), Client: ts.Client()})
	if err == nil || errors.Is(err, ErrDigestMismatch) {
		t.Errorf("a store that is down: error %v, want a failure that is not ErrDigestMismatch", err)
	}
}
