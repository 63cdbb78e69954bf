package main

import (
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"

	"github.com/freightcast/freightcast/internal/tlsreload"
)

// tlsFiles are the --tls-cert-file and --tls-key-file flags of the data-plane servers: the keys
// of a mounted kubernetes.io/tls Secret. With them the server speaks HTTPS only.
type tlsFiles struct {
	certFile, keyFile string
}

func (f *tlsFiles) register(fs *flag.FlagSet) {
	fs.StringVar(&f.certFile, "tls-cert-file", "", "PEM certificate (chain) to serve HTTPS with, reloaded when it changes (needs --tls-key-file)")
	fs.StringVar(&f.keyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
}

func (f tlsFiles) validate() error {
	if (f.certFile == "") != (f.keyFile == "") {
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	return nil
}

// load reads the certificate, or returns nil without TLS. A missing, unreadable or mismatched
// file fails here, at startup, naming the file.
func (f tlsFiles) load(log *slog.Logger) (*tlsreload.Certificate, error) {
	if f.certFile == "" && f.keyFile == "" {
		return nil, nil
	}
	return tlsreload.Load(f.certFile, f.keyFile, log, nil)
}

// serveOn serves hs on ln: over TLS with cert (reloaded as its files change), or plain HTTP
// when cert is nil.
func serveOn(hs *http.Server, ln net.Listener, cert *tlsreload.Certificate) error {
	if cert == nil {
		return hs.Serve(ln)
	}
	hs.TLSConfig = cert.ServerConfig()
	return hs.ServeTLS(ln, "", "")
}
