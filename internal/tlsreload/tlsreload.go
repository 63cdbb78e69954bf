// Package tlsreload serves TLS with a certificate and key read from files (a mounted
// kubernetes.io/tls Secret), and reloads them when the files change, so that a rotated
// certificate takes effect without a restart.
package tlsreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/throttle"
)

// CheckInterval is how often, at most, the files are looked at for changes. A mounted Secret
// changes by an atomic symlink swap, which a stat sees.
const CheckInterval = time.Second

// Certificate is a certificate and key loaded from files and reloaded when they change.
type Certificate struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	nextCheck throttle.Gate

	mu    sync.Mutex // serialises reloads
	stamp [2]fileStamp
}

type fileStamp struct {
	modTime time.Time
	size    int64
}

// Load reads the PEM certificate (chain) and key; it fails, naming the files, when either is
// missing, unreadable or does not match the other. log and now may be nil.
func Load(certFile, keyFile string, log *slog.Logger, now func() time.Time) (*Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: both a certificate file and a key file are needed (got %q and %q)", certFile, keyFile)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, log: log, now: now}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func stat(path string) (fileStamp, error) {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{modTime: info.ModTime(), size: info.Size()}, nil
}

// reload reads the pair if either file changed since the last read.
func (c *Certificate) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var stamp [2]fileStamp
	for i, path := range []string{c.certFile, c.keyFile} {
		s, err := stat(path)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		stamp[i] = s
	}
	if c.cert.Load() != nil && stamp == c.stamp {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: loading certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert.Store(&cert)
	c.stamp = stamp
	subject, notAfter := "", time.Time{}
	if leaf := cert.Leaf; leaf != nil {
		subject, notAfter = leaf.Subject.String(), leaf.NotAfter
	}
	c.log.Info("loaded TLS certificate", "file", c.certFile, "subject", subject, "notAfter", notAfter)
	return nil
}

// GetCertificate is tls.Config's hook: the current certificate, reloaded first when the files
// changed (looked at once per CheckInterval at most). Files that cannot be read or do not match
// keep the certificate loaded before: a Secret being rotated must not take the server down.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.nextCheck.Allow(c.now(), CheckInterval) {
		if err := c.reload(); err != nil {
			c.log.Error("keeping the previous TLS certificate", "err", err)
		}
	}
	return c.cert.Load(), nil
}

// ServerConfig is a TLS server configuration serving c, TLS 1.2 at least.
func (c *Certificate) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}
