// Package httpserver builds the HTTP servers of the data plane's APIs — ingestion and the Open
// Inference Protocol — with the same limits in the pods and in local mode, so that a client that
// is slow or never finishes gets the same treatment on a laptop as in the cluster.
package httpserver

import (
	"log/slog"
	"net/http"
	"time"
)

// The limits of every data-plane server.
const (
	// ReadHeaderTimeout bounds a client that never finishes its headers (slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds the whole request, body included: a body of the largest allowed size
	// arrives in far less on any link that can use the API.
	ReadTimeout = time.Minute
	// IdleTimeout closes a kept-alive connection that sends no next request.
	IdleTimeout = 2 * time.Minute
)

// New returns a server of h with the data plane's limits; its own errors (TLS handshakes,
// broken connections) go to log at warning level.
func New(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
		IdleTimeout: IdleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
}
