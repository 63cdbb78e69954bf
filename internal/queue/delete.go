package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// UnackedEventsError is Delete refusing to drop events no prediction has acknowledged yet.
type UnackedEventsError struct {
	Stream string
	// Events is how many the events stream holds: pending and delivered but unacknowledged.
	Events uint64
}

func (e *UnackedEventsError) Error() string {
	return fmt.Sprintf("stream %s still holds %d event(s) without a prediction; let the inference pool finish them, or allow dropping them", e.Stream, e.Events)
}

// Unwrap makes errors.Is(err, ErrUnackedEvents) hold.
func (e *UnackedEventsError) Unwrap() error { return ErrUnackedEvents }

// Deleted reports what Delete removed.
type Deleted struct {
	// Streams names the streams (with the consumer) and the bucket's stream deleted.
	Streams []string
	// DroppedEvents is how many unpredicted events went with the events stream.
	DroppedEvents uint64
}

// Delete removes the pipeline's consumer, events stream, output stream, predictions bucket and
// report snapshot store,
// giving their storage reservations back. While the events stream holds events (pending, or
// delivered and not acknowledged) it refuses with an *UnackedEventsError, unless dropUnacked.
// Objects already gone are skipped, so Delete can be called again after a partial failure.
//
// Delete cannot stop ingestion from publishing between its check and the deletion: stop the
// pipeline's ingestion first (the operator deletes the pipeline's pods before it calls Delete).
func Delete(ctx context.Context, js jetstream.JetStream, t Topology, dropUnacked bool) (Deleted, error) {
	var out Deleted
	events, err := js.Stream(ctx, t.Stream)
	switch {
	case err == nil:
		n := events.CachedInfo().State.Msgs
		if n > 0 && !dropUnacked {
			return out, &UnackedEventsError{Stream: t.Stream, Events: n}
		}
		out.DroppedEvents = n
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return out, classify(fmt.Errorf("reading stream %s: %w", t.Stream, err))
	}
	// The events stream first: once it is gone nothing new can arrive, and its consumer goes
	// with it.
	names := []string{t.Stream, t.OutputStream, t.BucketStream()}
	if t.ReportStore != "" {
		names = append(names, t.ReportStoreStream())
	}
	for _, name := range names {
		err := js.DeleteStream(ctx, name)
		switch {
		case err == nil:
			out.Streams = append(out.Streams, name)
		case errors.Is(err, jetstream.ErrStreamNotFound):
		default:
			return out, classify(fmt.Errorf("deleting stream %s: %w", name, err))
		}
	}
	return out, nil
}
