package tlsreload

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

// servedSubject connects to the server anew and returns the common name of its certificate.
func servedSubject(t *testing.T, url string, ca *testcerts.CA) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}, DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

// serveTLS serves with cert's configuration, as the data plane does (no certificate of
// httptest's own), until the test ends.
func serveTLS(t *testing.T, cert *Certificate) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), TLSConfig: cert.ServerConfig()}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestCertificateIsServedAndReloadedWhenTheFilesChange(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, "first")
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	cert, err := Load(certFile, keyFile, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, cert)

	if got := servedSubject(t, url, ca); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	// The Secret is rotated: new files, later mtimes.
	ca.WriteFiles(t, dir, "second")
	later := time.Unix(0, now.Load()).Add(time.Minute)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	if got := servedSubject(t, url, ca); got != "first" {
		t.Errorf("reloaded before the check interval passed: served %q", got)
	}
	now.Add(int64(2 * CheckInterval))
	if got := servedSubject(t, url, ca); got != "second" {
		t.Errorf("after rotation served %q, want second", got)
	}

	// A half-written rotation (key of another certificate) keeps the certificate that works.
	otherCert, _ := ca.Issue(t, "third")
	if err := os.WriteFile(certFile, otherCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(certFile, later.Add(time.Minute), later.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * CheckInterval))
	if got := servedSubject(t, url, ca); got != "second" {
		t.Errorf("after a broken rotation served %q, want second (kept)", got)
	}
}

func TestLoadFailsClearly(t *testing.T) {
	ca := testcerts.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, "ok")
	_, otherKey := ca.Issue(t, "other")
	mismatched := filepath.Join(dir, "other.key")
	if err := os.WriteFile(mismatched, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.crt")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		cert, key string
		want      []string
	}{
		"missing certificate": {cert: filepath.Join(dir, "nope.crt"), key: keyFile, want: []string{"nope.crt", "no such file"}},
		"missing key":         {cert: certFile, key: filepath.Join(dir, "nope.key"), want: []string{"nope.key"}},
		"key of another cert": {cert: certFile, key: mismatched, want: []string{"other.key", "does not match"}},
		"not PEM":             {cert: garbage, key: keyFile, want: []string{"garbage.crt"}},
		"no key file given":   {cert: certFile, want: []string{"both a certificate file and a key file"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(tc.cert, tc.key, nil, nil)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
