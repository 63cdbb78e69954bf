// Package natstest starts real, in-process nats-servers with JetStream for tests.
package natstest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// Server is an in-process nats-server with JetStream on a loopback port.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start runs a JetStream-enabled nats-server on 127.0.0.1 with its store under t.TempDir(), and
// shuts it down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{opts: &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	s.start(t)
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	srv, err := server.NewServer(s.opts)
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("natstest: server not ready within 10s")
	}
	s.Server = srv
	// Later restarts keep this port, so clients reconnect to the same URL.
	s.opts.Port = srv.Addr().(*net.TCPAddr).Port
}

// URL is the nats:// URL clients connect to; it stays the same across Restart.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Stop shuts the server down and waits until it has stopped, keeping its store for Restart.
func (s *Server) Stop() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Restart starts a stopped server again on the same port and store.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// Connect opens a client connection to url with opts and a JetStream context on it, fails the
// test when it cannot, and closes the connection when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("natstest: connecting to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return nc, js
}

// WaitValues waits until the key-value bucket kv holds n values, and fails the test when it holds
// more (each event is stored once, so more is a duplicate, and waiting would not undo it) or when
// timeout passes first.
func WaitValues(tb testing.TB, kv jetstream.KeyValue, n int, timeout time.Duration) {
	tb.Helper()
	testenv.Eventually(tb, timeout, fmt.Sprintf("%d values in bucket %s", n, kv.Bucket()), func() error {
		st, err := kv.Status(context.Background())
		if err != nil {
			return err
		}
		switch got := int(st.Values()); {
		case got > n:
			tb.Fatalf("natstest: bucket %s holds %d values, more than %d", kv.Bucket(), got, n)
		case got < n:
			return fmt.Errorf("%d values", got)
		}
		return nil
	})
}
