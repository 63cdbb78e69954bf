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

	mu    sync.Mutex
	conns map[string]*nats.Conn
}

// NewConnector returns a Connector whose connections announce themselves as name.
func NewConnector(name string) *Connector {
	return &Connector{name: name, timeout: 2 * time.Second, conns: map[string]*nats.Conn{}}
}

// JetStream returns a JetStream context on a connection to url, connecting on first use. A
// connection that was closed for good is replaced; one that is reconnecting is kept (its callers
// get ErrUnreachable until it is back).
func (c *Connector) JetStream(url string) (jetstream.JetStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	nc, ok := c.conns[url]
	if !ok || nc.IsClosed() {
		var err error
		nc, err = nats.Connect(url,
			nats.Name(c.name),
			nats.Timeout(c.timeout),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(time.Second),
		)
		if err != nil {
			return nil, fmt.Errorf("%w: connecting to %s: %w", ErrUnreachable, url, err)
		}
		c.conns[url] = nc
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(c.timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream on %s: %w", url, err)
	}
	return js, nil
}

// Close drains nothing and closes every connection; call it when the process stops.
func (c *Connector) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for url, nc := range c.conns {
		nc.Close()
		delete(c.conns, url)
	}
}
