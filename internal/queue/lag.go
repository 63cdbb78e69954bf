package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Lag is a consumer's backlog, as KEDA's NATS JetStream scaler counts it.
type Lag struct {
	// Pending events not yet delivered to any worker.
	Pending uint64
	// AckPending events delivered and not yet acknowledged.
	AckPending uint64
	// Acknowledged counts the consumer's deliveries up to its ack floor: its difference between
	// two reads over their interval is the pool's throughput.
	Acknowledged uint64
}

// Total is the queue depth the autoscaler and status report.
func (l Lag) Total() int64 { return int64(l.Pending + l.AckPending) }

func lagOf(info *jetstream.ConsumerInfo) Lag {
	if info == nil {
		return Lag{}
	}
	return Lag{Pending: info.NumPending, AckPending: uint64(info.NumAckPending), Acknowledged: info.AckFloor.Consumer}
}

// ThroughputMeter turns successive lag reads of one consumer into the events per second each
// replica acknowledged between them, as autoscale.Input.Throughput wants it. The zero value is
// ready for a first sample. It is not safe for concurrent use.
type ThroughputMeter struct {
	acked uint64
	at    time.Time
}

// Sample records l, read at now, and returns the rate per replica since the previous sample.
// It returns 0, which the recommender takes as unknown, when there is no previous sample, no
// replica, no time between the two (an injected clock that stands still or goes back would
// otherwise give an infinite or negative rate) or an ack floor lower than before (the consumer
// was recreated).
func (m *ThroughputMeter) Sample(l Lag, now time.Time, replicas int32) float64 {
	prevAcked, prevAt := m.acked, m.at
	m.acked, m.at = l.Acknowledged, now
	if prevAt.IsZero() || replicas <= 0 || l.Acknowledged < prevAcked {
		return 0
	}
	dt := now.Sub(prevAt).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(l.Acknowledged-prevAcked) / dt / float64(replicas)
}

// ReadLag reads the consumer's backlog, in one request unless the consumer seems missing. Its
// errors wrap ErrUnreachable or ErrConsumerMissing when they are either, so a caller can tell
// both apart from an empty queue.
func ReadLag(ctx context.Context, js jetstream.JetStream, stream, consumer string) (Lag, error) {
	c, err := js.Consumer(ctx, stream, consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return Lag{}, notFound(ctx, js, stream, consumer, err)
	}
	if err != nil {
		return Lag{}, classify(fmt.Errorf("reading consumer %s/%s: %w", stream, consumer, err))
	}
	return lagOf(c.CachedInfo()), nil
}

// notFound words a consumer the stream's leader says it does not have. After a cluster's
// servers restart, a stream's leader answers before it has recovered the stream's consumers, so
// "not found" may mean "not yet": the cluster's meta layer, which answers the consumer names,
// still has the consumer assigned then, and the backlog is unknown, not missing.
func notFound(ctx context.Context, js jetstream.JetStream, stream, consumer string, cause error) error {
	missing := classify(fmt.Errorf("reading consumer %s/%s: %w", stream, consumer, cause))
	s, err := js.Stream(ctx, stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return missing
		}
		return classify(fmt.Errorf("reading stream %s after its consumer %s was not found: %w", stream, consumer, err))
	}
	names := s.ConsumerNames(ctx)
	assigned := false
	for name := range names.Name() {
		assigned = assigned || name == consumer
	}
	if err := names.Err(); err != nil {
		return classify(fmt.Errorf("listing the consumers of %s: %w", stream, err))
	}
	if assigned {
		return fmt.Errorf("%w: %w: consumer %s/%s is assigned but its stream's leader has not recovered it yet", ErrUnreachable, ErrNoQuorum, stream, consumer)
	}
	return missing
}
