// Package scaler takes the samples of a pool's autoscaling loop: read the queue's backlog,
// measure the pool's throughput since the previous read, ask the recommender (internal/autoscale)
// for the pool's size. The operator's autoscaler and local mode run the same loop body; each
// brings its own schedule (a controller's requeue, a ticker) and its own way of resizing (the
// Deployment's scale subresource, in-process workers).
package scaler

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/queue"
)

// maxReadTimeout bounds one backlog read, so that an unreachable server cannot hold a sample
// longer than this (nor longer than the poll interval).
const maxReadTimeout = 2 * time.Second

// Reader reads a queue's backlog. Its error must not be read as an empty queue: the recommender
// holds, or falls back, on it.
type Reader func(context.Context) (queue.Lag, error)

// ConsumerLag reads the backlog of topo's consumer on js.
func ConsumerLag(js jetstream.JetStream, topo queue.Topology) Reader {
	return func(ctx context.Context) (queue.Lag, error) {
		return queue.ReadLag(ctx, js, topo.Stream, topo.Consumer)
	}
}

// Sampler samples one pool. It is not safe for concurrent use: one pool is sampled by one
// goroutine at a time (the controller's workqueue, local mode's loop).
type Sampler struct {
	rec         *autoscale.Recommender
	readTimeout time.Duration
	throughput  queue.ThroughputMeter
}

// New returns a Sampler for a pool sized with policy and sampled every interval. A new Sampler
// starts a new recommender, which holds scale-downs for one stabilization window: after a
// restart or a spec change, the cautious direction.
func New(policy autoscale.Policy, interval time.Duration) (*Sampler, error) {
	rec, err := autoscale.New(policy)
	if err != nil {
		return nil, err
	}
	timeout := maxReadTimeout
	if interval > 0 {
		timeout = min(timeout, interval)
	}
	return &Sampler{rec: rec, readTimeout: timeout}, nil
}

// Sample is one reading and the decision it led to.
type Sample struct {
	// Lag is the backlog read; LagErr why it could not be read, and then Lag is zero and means
	// nothing.
	Lag    queue.Lag
	LagErr error
	// Decision is the recommender's: the pool's size and why.
	Decision autoscale.Decision
}

// Sample reads the backlog with read, at now, for a pool of current replicas of which ready pass
// readiness, and decides the pool's size. Throughput is measured per ready replica between two
// successful reads.
func (s *Sampler) Sample(ctx context.Context, read Reader, now time.Time, current, ready int32) Sample {
	readCtx, cancel := context.WithTimeout(ctx, s.readTimeout)
	lag, err := read(readCtx)
	cancel()
	in := autoscale.Input{Now: now, Current: current, Ready: ready, LagErr: err}
	if err == nil {
		in.Lag = lag.Total()
		in.Throughput = s.throughput.Sample(lag, now, ready)
	}
	return Sample{Lag: lag, LagErr: err, Decision: s.rec.Recommend(in)}
}
