// Package modelsource fetches model bytes from where a PredictionModel says they are: a file path
// (ConfigMap and PVC mounts land there) or an https:// URI pinned by a SHA-256 digest, downloaded
// once into a cache directory.
//
// Bytes that do not match their declared digest are a deterministic failure (ErrDigestMismatch):
// the response was whole (its length checked by HTTP), so the store holds other bytes than the
// spec pins, and downloading again returns the same ones. Everything else that can go wrong on
// the way (the network, TLS, an HTTP error status, a timeout) may pass.
package modelsource

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultMaxBytes caps a model download or file.
const DefaultMaxBytes = 256 << 20

// DefaultTimeout bounds a whole download.
const DefaultTimeout = 5 * time.Minute

// Spec says where a model comes from: exactly one of Path and URI.
type Spec struct {
	// Path is a local file.
	Path string
	// URI is an https:// URL; SHA256 (hex) is then required and must match the downloaded bytes.
	URI    string
	SHA256 string
	// CacheDir holds downloads, named by digest, so a restart does not download again.
	CacheDir string
	// CABundle is PEM CA certificates the download trusts instead of the system's roots; only
	// used when Client is nil.
	CABundle []byte
	// Client performs the download; nil means a client with Timeout (and CABundle).
	Client *http.Client
	// MaxBytes caps the model size; zero means DefaultMaxBytes.
	MaxBytes int64
	// Timeout bounds the download; zero means DefaultTimeout.
	Timeout time.Duration
}

// Validate checks the spec without touching the file system or network.
func (s Spec) Validate() error {
	switch {
	case s.Path == "" && s.URI == "":
		return errors.New("no model source: give a file path or an https URI")
	case s.Path != "" && s.URI != "":
		return errors.New("two model sources: give a file path or an https URI, not both")
	case s.URI != "":
		u, err := url.Parse(s.URI)
		if err != nil {
			return fmt.Errorf("model URI: %w", err)
		}
		if u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("model URI %q: only https:// URIs are accepted", redact(u))
		}
		if s.SHA256 == "" {
			return errors.New("model URI needs a SHA-256 digest to check the download against")
		}
		if _, err := parseDigest(s.SHA256); err != nil {
			return err
		}
		if s.CABundle != nil {
			if _, err := ParseCABundle(s.CABundle); err != nil {
				return err
			}
		}
	case s.CABundle != nil:
		return errors.New("a CA bundle is only used to download a model from an https URI")
	case s.SHA256 != "":
		if _, err := parseDigest(s.SHA256); err != nil {
			return err
		}
	}
	return nil
}

// ErrDigestMismatch is a model whose bytes are not the ones its digest pins.
var ErrDigestMismatch = errors.New("SHA-256 mismatch")

// maxCABundleBytes bounds a CA bundle; a ConfigMap holds at most 1 MiB anyway.
const maxCABundleBytes = 1 << 20

// ParseCABundle returns the pool of the CA certificates in bundle: one or more PEM CERTIFICATE
// blocks, nothing else but whitespace between them, each a valid X.509 certificate.
func ParseCABundle(bundle []byte) (*x509.CertPool, error) {
	if len(bundle) > maxCABundleBytes {
		return nil, fmt.Errorf("CA bundle of %d bytes is larger than %d", len(bundle), maxCABundleBytes)
	}
	pool := x509.NewCertPool()
	rest := bundle
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				if n == 1 {
					return nil, errors.New("CA bundle holds no PEM block (-----BEGIN CERTIFICATE-----)")
				}
				return nil, fmt.Errorf("CA bundle: text after PEM block %d is not a PEM block", n-1)
			}
			if n == 1 {
				return nil, errors.New("CA bundle is empty: it needs at least one PEM CERTIFICATE block")
			}
			return pool, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA bundle: PEM block %d is a %s, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: certificate %d: %w", n, err)
		}
		pool.AddCert(cert)
	}
}

func parseDigest(h string) ([]byte, error) {
	d, err := hex.DecodeString(strings.ToLower(h))
	if err != nil || len(d) != sha256.Size {
		return nil, fmt.Errorf("SHA-256 digest %q must be 64 hexadecimal digits", h)
	}
	return d, nil
}

// redact drops credentials and the query (which may hold a signature) from a URI for messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}

// Fetch returns the model bytes, downloading them first when the spec names a URI that is not
// cached yet. A digest, when given, must match, or Fetch refuses.
func Fetch(ctx context.Context, s Spec) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	limit := s.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if s.Path != "" {
		data, err := readFile(s.Path, limit)
		if err != nil {
			return nil, err
		}
		if s.SHA256 != "" {
			if err := checkDigest(data, s.SHA256); err != nil {
				return nil, fmt.Errorf("model file %s: %w", s.Path, err)
			}
		}
		return data, nil
	}
	return download(ctx, s, limit)
}

func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("model file %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("model file %s is larger than %d bytes", path, limit)
	}
	return data, nil
}

func checkDigest(data []byte, want string) error {
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != strings.ToLower(want) {
		return fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, strings.ToLower(want))
	}
	return nil
}

func download(ctx context.Context, s Spec, limit int64) ([]byte, error) {
	u, _ := url.Parse(s.URI) // validated
	where := redact(u)
	digest := strings.ToLower(s.SHA256)
	dir := s.CacheDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "freightcast-models")
	}
	cached := filepath.Join(dir, digest+".onnx")
	if data, err := readFile(cached, limit); err == nil {
		if checkDigest(data, digest) == nil {
			return data, nil
		}
		// A corrupt cache entry is downloaded again.
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
		if s.CABundle != nil {
			pool, _ := ParseCABundle(s.CABundle) // validated
			transport := http.DefaultTransport.(*http.Transport).Clone()
			transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
			client.Transport = transport
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URI, nil)
	if err != nil {
		return nil, fmt.Errorf("model URI %s: %w", where, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, scrub(err, s.URI, where))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download %s: HTTP %s", where, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("download %s: %d bytes is more than the %d allowed", where, resp.ContentLength, limit)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", where, scrub(err, s.URI, where))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("download %s: more than the %d bytes allowed", where, limit)
	}
	if err := checkDigest(data, digest); err != nil {
		return nil, fmt.Errorf("download %s: %w; refusing to serve it", where, err)
	}
	if err := writeCache(dir, cached, data); err != nil {
		return nil, err
	}
	return data, nil
}

// scrub keeps a signed URI's query out of error messages (net/http quotes the whole URL).
func scrub(err error, full, redacted string) error {
	if full == redacted {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), full, redacted))
}

// writeCache stores the verified bytes atomically, so a crash never leaves a partial file under
// the digest's name.
func writeCache(dir, path string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("model cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("model cache: %w", err)
	}
	return nil
}
