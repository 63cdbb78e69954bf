package oipclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerTrust returns the TLS configuration of a client that accepts a server only when its
// certificate, for the name the client dialled, chains to the certificates in the first of
// trustFiles that exists and is not empty (PEM). With no trustFiles it is the system's roots.
//
// The files are read again at every handshake, not once: they are a mounted Secret that
// cert-manager rotates, and a pool that kept the old trust would refuse the model's next
// certificate until it restarted. Handshakes are per connection, so the read is rare.
//
// A file may hold the server's own certificate rather than a CA (a Secret without ca.crt):
// a certificate that is itself among the roots verifies, which pins exactly what the server
// was given.
func ServerTrust(trustFiles ...string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(trustFiles) == 0 {
		return c
	}
	// Go's own verification runs before VerifyConnection and would use the system's roots;
	// VerifyConnection below does the whole check instead, with the same rules and the
	// files' roots.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		roots, from, err := loadTrust(trustFiles)
		if err != nil {
			return err
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("oipclient: the server sent no certificate")
		}
		intermediates := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			intermediates.AddCert(c)
		}
		_, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: roots, Intermediates: intermediates})
		if err != nil {
			return fmt.Errorf("oipclient: the server's certificate for %q is not trusted by %s: %w", cs.ServerName, from, err)
		}
		return nil
	}
	return c
}

func loadTrust(files []string) (*x509.CertPool, string, error) {
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) || (err == nil && len(pem) == 0) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("oipclient: reading the trusted certificates: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, "", fmt.Errorf("oipclient: %s holds no PEM certificate", f)
		}
		return roots, f, nil
	}
	return nil, "", fmt.Errorf("oipclient: none of %q holds the certificates to trust the server with", files)
}
