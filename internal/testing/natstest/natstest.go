// Package natstest starts real, in-process nats-servers with JetStream for tests: one server, or
// a JetStream cluster on loopback whose servers a test can kill and restart.
package natstest

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
//
// Every connection to a server — clients' and the other servers' routes — passes through a
// loopback proxy of its own, so that Kill can cut a server off the network before it shuts down:
// to the others it then vanishes mid-sentence, as a crashed process or a lost node does, without
// the leadership hand-over of an orderly shutdown (Stop).
type Cluster struct {
	Servers []*Server
	// clientProxies[i] fronts server i's client port; routeProxies[i][j] carries server i's
	// routes to server j.
	clientProxies []*proxy
	routeProxies  [][]*proxy
}

// StartCluster starts n servers clustered with each other, waits until they have elected a
// JetStream meta leader, and stops them when the test ends.
func StartCluster(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: a cluster needs at least one server, got %d", n)
	}
	// All ports at once, so that none is handed out twice.
	ports := freePorts(t, 3*n+n*(n-1))
	clientPorts, clusterPorts, proxyPorts := ports[:n], ports[n:2*n], ports[2*n:]
	c := &Cluster{}
	newProxy := func(target int) *proxy {
		p := &proxy{addr: fmt.Sprintf("127.0.0.1:%d", proxyPorts[0]), target: fmt.Sprintf("127.0.0.1:%d", target), conns: map[net.Conn]struct{}{}}
		proxyPorts = proxyPorts[1:]
		return p
	}
	for i := range n {
		c.clientProxies = append(c.clientProxies, newProxy(clientPorts[i]))
		c.routeProxies = append(c.routeProxies, make([]*proxy, n))
	}
	for i := range n {
		for j := range n {
			if i != j {
				c.routeProxies[i][j] = newProxy(clusterPorts[j])
			}
		}
	}
	dir := t.TempDir()
	for i := range n {
		var routes []string
		for j := range n {
			if i != j {
				routes = append(routes, "nats://"+c.routeProxies[i][j].addr)
			}
		}
		o := &server.Options{
			ServerName: fmt.Sprintf("n%d", i),
			Host:       "127.0.0.1",
			Port:       clientPorts[i],
			// Clients learn the other servers from the one they are on: the proxies' addresses.
			ClientAdvertise: c.clientProxies[i].addr,
			JetStream:       true,
			StoreDir:        filepath.Join(dir, fmt.Sprintf("n%d", i)),
			NoLog:           true,
			NoSigs:          true,
			Cluster: server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: clusterPorts[i],
				// Every route is an explicit one through its proxy: an address learnt from
				// another server (an implicit route) would bypass the proxies, so none is given.
				Advertise: "127.0.0.1:1"},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		for _, opt := range opts {
			opt(o)
		}
		c.Servers = append(c.Servers, &Server{opts: o})
	}
	for _, p := range c.proxies() {
		p.open(t)
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
	t.Cleanup(func() {
		c.StopAll()
		for _, p := range c.proxies() {
			p.cut()
		}
	})
	for _, s := range c.Servers {
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatalf("natstest: server %s not ready within 30s", s.opts.ServerName)
		}
	}
	c.WaitMetaLeader(t)
	return c
}

func (c *Cluster) proxies() []*proxy {
	out := slices.Clone(c.clientProxies)
	for _, row := range c.routeProxies {
		for _, p := range row {
			if p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// proxiesOf are the proxies that carry server i's traffic: its client port and its routes both
// ways.
func (c *Cluster) proxiesOf(i int) []*proxy {
	out := []*proxy{c.clientProxies[i]}
	for j := range c.Servers {
		if j != i {
			out = append(out, c.routeProxies[i][j], c.routeProxies[j][i])
		}
	}
	return out
}

// Kill crashes server i: its connections to clients and to the other servers are cut at once,
// and only then does it shut down, so that nothing it does on the way out reaches anyone. Its
// store stays for Restart.
func (c *Cluster) Kill(t testing.TB, i int) {
	t.Helper()
	for _, p := range c.proxiesOf(i) {
		p.cut()
	}
	c.Servers[i].Stop()
}

// KillAll crashes every running server.
func (c *Cluster) KillAll(t testing.TB) {
	t.Helper()
	for i, s := range c.Servers {
		if s.Running() {
			c.Kill(t, i)
		}
	}
}

// Restart starts server i again, after Kill or Stop, on its ports and store.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	for _, p := range c.proxiesOf(i) {
		p.open(t)
	}
	c.Servers[i].Restart(t)
}

// Index is the position of s in Servers, or -1.
func (c *Cluster) Index(s *Server) int { return slices.Index(c.Servers, s) }

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
	urls := make([]string, len(c.clientProxies))
	for i, p := range c.clientProxies {
		urls[i] = "nats://" + p.addr
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
	for i, s := range c.Servers {
		if !s.Running() {
			for _, p := range c.proxiesOf(i) {
				p.open(t)
			}
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

// proxy forwards TCP connections from its loopback address to a target, and can cut them all.
type proxy struct {
	addr, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

// open listens again on the proxy's address; an open proxy stays as it is.
func (p *proxy) open(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("natstest: proxy on %s: %v", p.addr, err)
	}
	p.ln = ln
	go p.accept(ln)
}

func (p *proxy) accept(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		if p.ln != ln { // cut meanwhile
			p.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			return
		}
		p.conns[in], p.conns[out] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		go pipe(out, in)
		go pipe(in, out)
	}
}

// cut closes the listener and every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}
