package queue

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Connector shares one NATS connection per server URL among all the pipelines that use it, so
// that a thousand pipelines cost one connection, not a thousand. It is safe for concurrent use.
type Connector struct {
	name    string
	timeout time.Duration
	opts    []nats.Option

	mu     sync.Mutex
	conns  map[string]*nats.Conn
	closed bool
}

// NewConnector returns a Connector whose connections announce themselves as name, with opts
// (Credentials.Options: the operator's own NATS credentials and TLS) on every connection.
func NewConnector(name string, opts ...nats.Option) *Connector {
	return &Connector{name: name, timeout: 2 * time.Second, opts: opts, conns: map[string]*nats.Conn{}}
}

// JetStream returns a JetStream context on a connection to url, connecting on first use. A
// connection that was closed for good is replaced; one that is reconnecting is kept (its callers
// get ErrUnreachable until it is back). The dial happens outside the lock: an unreachable server
// costs its own callers the connect timeout, not the pipelines on every other server.
func (c *Connector) JetStream(url string) (jetstream.JetStream, error) {
	nc, err := c.conn(url)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(c.timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream on %s: %w", url, err)
	}
	return js, nil
}

func (c *Connector) conn(url string) (*nats.Conn, error) {
	c.mu.Lock()
	nc, ok := c.conns[url]
	closed := c.closed
	c.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("%w: connecting to %s: the connector is closed", ErrUnreachable, url)
	case ok && !nc.IsClosed():
		return nc, nil
	}
	fresh, err := nats.Connect(url, append([]nats.Option{
		nats.Name(c.name),
		nats.Timeout(c.timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	}, c.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %w", ErrUnreachable, url, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		// Close ran during the dial: nothing would close this connection later.
		fresh.Close()
		return nil, fmt.Errorf("%w: connecting to %s: the connector is closed", ErrUnreachable, url)
	}
	if nc, ok := c.conns[url]; ok && !nc.IsClosed() {
		// Another caller connected meanwhile: share its connection.
		fresh.Close()
		return nc, nil
	}
	c.conns[url] = fresh
	return fresh, nil
}

// Close drains nothing and closes every connection; call it when the process stops. No
// connection is made after it.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for url, nc := range c.conns {
		nc.Close()
		delete(c.conns, url)
	}
}
