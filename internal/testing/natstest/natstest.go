// Package natstest starts real, in-process nats-servers with JetStream for tests: one server, or
// a JetStream cluster on loopback whose servers a test can kill and restart.
package natstest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// Option changes a server's options before it starts.
type Option func(*server.Options)

// WithMaxStore caps the server's JetStream file store (max_file_store), so that a test can fill
// it with a few small streams.
func WithMaxStore(bytes int64) Option {
	return func(o *server.Options) { o.JetStreamMaxStore = bytes }
}

// WithOptions lets a test set anything else: authentication, TLS, accounts.
func WithOptions(f func(*server.Options)) Option { return Option(f) }

// Server is an in-process nats-server with JetStream on a loopback port.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start runs a JetStream-enabled nats-server on 127.0.0.1 with its store under t.TempDir(), and
// shuts it down when the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{opts: &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}}
	for _, o := range opts {
		o(s.opts)
	}
	s.start(t)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	// NewServer keeps and edits the options it is given; a copy keeps ours as they were set,
	// so that a restart starts the server the test asked for.
	srv, err := server.NewServer(s.opts.Clone())
	if err != nil {
		t.Fatalf("natstest: new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatalf("natstest: server %s not ready within 10s", s.opts.ServerName)
	}
	s.Server = srv
	// Later restarts keep this port, so clients reconnect to the same URL.
	s.opts.Port = srv.Addr().(*net.TCPAddr).Port
}

// URL is the nats:// URL clients connect to; it stays the same across Restart.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Stop shuts the server down and waits until it has stopped, keeping its store for Restart. To
// its clients and its cluster peers it is a crash: connections drop and, unlike a lame-duck
// shutdown, it hands no leadership over. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
}

// Restart starts a stopped server again on the same ports and store.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t)
}

// Cluster is a JetStream cluster of in-process servers on loopback. Each server keeps its name,
// ports and store across restarts, as a StatefulSet's pods do.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n servers clustered with each other, waits until they have elected a
// JetStream meta leader, and stops them when the test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster needs at least one server, got %d", n)
	}
	clientPorts, clusterPorts := freePorts(t, n), freePorts(t, n)
	routes := make([]string, n)
	for i, port := range clusterPorts {
		routes[i] = fmt.Sprintf("nats://127.0.0.1:%d", port)
	}
	c := &Cluster{}
	dir := t.TempDir()
	for i := range n {
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i)),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: clusterPorts[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		for _, opt := range opts {
			opt(o)
		}
		c.Servers = append(c.Servers, &Server{opts: o})
	}
	// Started together, as the chart's Parallel StatefulSet does: each waits for its routes.
	for _, s := range c.Servers {
		srv, err := server.NewServer(s.opts.Clone())
		if err != nil {
			t.Fatalf("natstest: new server %s: %v", s.opts.ServerName, err)
		}
		srv.Start()
		s.Server = srv
	}
	t.Cleanup(c.StopAll)
	for _, s := range c.Servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("natstest: server %s not ready within 30s", s.opts.ServerName)
		}
	}
	c.WaitMetaLeader(t)
	return c
}

// freePorts reserves n loopback ports by listening on them, and releases them for the servers.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: reserving a port: %v", err)
		}
		lns[i] = ln
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// URL lists every server's client URL, comma-separated, as nats.Connect takes them.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Running are the servers that are up.
func (c *Cluster) Running() []*Server {
	var up []*Server
	for _, s := range c.Servers {
		if s.Running() {
			up = append(up, s)
		}
	}
	return up
}

// WaitMetaLeader waits until the running servers agree on a JetStream meta leader, which they
// need before any stream can be created or changed.
func (c *Cluster) WaitMetaLeader(t testing.TB) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, "a JetStream meta leader", func() error {
		leaders := 0
		for _, s := range c.Running() {
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%d servers consider themselves the meta leader", leaders)
		}
		for _, s := range c.Running() {
			if !s.JetStreamIsCurrent() {
				return fmt.Errorf("server %s is not current with the meta leader", s.Name())
			}
		}
		return nil
	})
}

// StreamLeader returns the running server that leads stream of account ("" for the default
// account), or nil when none does.
func (c *Cluster) StreamLeader(account, stream string) *Server {
	if account == "" {
		account = server.DEFAULT_GLOBAL_ACCOUNT
	}
	for _, s := range c.Running() {
		if s.JetStreamIsStreamLeader(account, stream) {
			return s
		}
	}
	return nil
}

// WaitStreamLeader waits until a running server leads the stream, and returns it.
func (c *Cluster) WaitStreamLeader(t testing.TB, account, stream string, timeout time.Duration) *Server {
	t.Helper()
	var leader *Server
	testenv.Eventually(t, timeout, "a leader for stream "+stream, func() error {
		if leader = c.StreamLeader(account, stream); leader == nil {
			return fmt.Errorf("no running server leads %s", stream)
		}
		return nil
	})
	return leader
}

// StopAll stops every running server.
func (c *Cluster) StopAll() {
	for _, s := range c.Running() {
		s.Stop()
	}
}

// RestartAll starts every stopped server again, together, and waits for a meta leader.
func (c *Cluster) RestartAll(t testing.TB) {
	t.Helper()
	var stopped []*Server
	for _, s := range c.Servers {
		if !s.Running() {
			srv, err := server.NewServer(s.opts.Clone())
			if err != nil {
				t.Fatalf("natstest: new server %s: %v", s.opts.ServerName, err)
			}
			srv.Start()
			s.Server = srv
			stopped = append(stopped, s)
		}
	}
	for _, s := range stopped {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("natstest: server %s not ready within 30s", s.opts.ServerName)
		}
	}
	c.WaitMetaLeader(t)
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
