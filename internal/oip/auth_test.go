package oip

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
	"github.com/freightcast/freightcast/internal/tlsreload"
)

// TestBearerTokensOverTLS runs the server as a serving pod does with spec.auth and spec.tls: a
// real TLS listener with a certificate from a test CA, tokens from a file.
func TestBearerTokensOverTLS(t *testing.T) {
	dir := t.TempDir()
	tokensFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokensFile, []byte("# clients\nsecret-a\nsecret-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpauth.NewTokens(tokensFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, dir, "freight-predictor")
	cert, err := tlsreload.Load(certFile, keyFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, true, func(c *Config) { c.Tokens = tokens })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: ts.oip, TLSConfig: cert.ServerConfig()}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = hs.Close() })
	base := "https://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}

	infer := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `]}]}`
	cases := map[string]struct {
		method, path, body, token string
		want                      int
	}{
		"infer without a token":       {method: "POST", path: "/v2/models/freight/infer", body: infer, want: 401},
		"infer with an unknown token": {method: "POST", path: "/v2/models/freight/infer", body: infer, token: "guess", want: 401},
		"infer with a token":          {method: "POST", path: "/v2/models/freight/infer", body: infer, token: "secret-b", want: 200},
		"metadata without a token":    {method: "GET", path: "/v2/models/freight", want: 401},
		"metadata with a token":       {method: "GET", path: "/v2/models/freight", token: "secret-a", want: 200},
		"server metadata no token":    {method: "GET", path: "/v2", want: 401},
		"model ready without a token": {method: "GET", path: "/v2/models/freight/ready", want: 401},
		"liveness stays open":         {method: "GET", path: "/v2/health/live", want: 200},
		"readiness stays open":        {method: "GET", path: "/v2/health/ready", want: 200},
		"metrics stay open":           {method: "GET", path: "/metrics", want: 200},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	// Plain HTTP to the TLS port gets nowhere.
	resp, err := http.Get("http://" + ln.Addr().String() + "/v2/health/live")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP was served on the TLS port")
		}
	}
}
