package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Result reports what Provision did.
type Result struct {
	// Changed is true when anything was created or updated on the server.
	Changed bool
}

// Provision makes the pipeline's streams, consumer and bucket exist as spec says. It reads first
// and writes only what is missing or differs, so calling it on every reconcile is cheap and quiet.
// It never deletes anything: events accepted into a stream outlive any spec change.
func Provision(ctx context.Context, js jetstream.JetStream, spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, err
	}
	var res Result
	changed, err := ensureStream(ctx, js, eventsStreamConfig(spec))
	if err != nil {
		return res, err
	}
	res.Changed = res.Changed || changed

	changed, err = ensureStream(ctx, js, outputStreamConfig(spec))
	if err != nil {
		return res, err
	}
	res.Changed = res.Changed || changed

	changed, err = ensureConsumer(ctx, js, spec)
	if err != nil {
		return res, err
	}
	res.Changed = res.Changed || changed

	changed, err = ensureBucket(ctx, js, spec)
	if err != nil {
		return res, err
	}
	res.Changed = res.Changed || changed
	return res, nil
}

func eventsStreamConfig(spec Spec) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        spec.Stream,
		Description: "Freightcast events awaiting prediction",
		Subjects:    []string{spec.Subject},
		// Work-queue retention removes an event once its prediction is acknowledged, so the
		// limits below bound the backlog, not history.
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardNew,
		MaxMsgs:    spec.MaxMessages,
		MaxBytes:   spec.MaxBytes,
		MaxAge:     spec.MaxAge,
		Duplicates: spec.DuplicateWindow,
		Replicas:   1,
	}
}

func outputStreamConfig(spec Spec) jetstream.StreamConfig {
	window := spec.DuplicateWindow
	if window > spec.PredictionRetention {
		window = spec.PredictionRetention
	}
	return jetstream.StreamConfig{
		Name:        spec.OutputStream,
		Description: "Freightcast predictions and dead letters",
		Subjects:    []string{spec.PredictionSubject, spec.DeadLetterSubject},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		// Output never refuses a prediction: the oldest go first once it reaches the events
		// stream's byte cap, and all expire after the retention period.
		MaxMsgs:  -1,
		MaxBytes: spec.MaxBytes,
		MaxAge:   spec.PredictionRetention,
		// A redelivered event's prediction carries the same message id and is dropped here.
		Duplicates: window,
		Replicas:   1,
	}
}

// ensureStream creates the stream or updates the fields we own when they differ.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (bool, error) {
	stream, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return false, classify(fmt.Errorf("creating stream %s: %w", want.Name, err))
		}
		return true, nil
	}
	if err != nil {
		return false, classify(fmt.Errorf("reading stream %s: %w", want.Name, err))
	}
	have := stream.CachedInfo().Config
	if streamMatches(have, want) {
		return false, nil
	}
	// Start from the server's config so that fields we do not manage keep their values.
	update := have
	update.Description = want.Description
	update.Subjects = want.Subjects
	update.Discard = want.Discard
	update.MaxMsgs = want.MaxMsgs
	update.MaxBytes = want.MaxBytes
	update.MaxAge = want.MaxAge
	update.Duplicates = want.Duplicates
	if _, err := js.UpdateStream(ctx, update); err != nil {
		return false, classify(fmt.Errorf("updating stream %s: %w", want.Name, err))
	}
	return true, nil
}

func streamMatches(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Discard == want.Discard &&
		have.MaxMsgs == want.MaxMsgs &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates
}

func consumerConfig(spec Spec) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       spec.Consumer,
		Description:   "Freightcast inference pool",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       spec.AckWait,
		MaxDeliver:    spec.MaxDeliver,
		MaxAckPending: spec.MaxAckPending,
		FilterSubject: spec.Subject,
	}
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, spec Spec) (bool, error) {
	want := consumerConfig(spec)
	consumer, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err == nil {
		have := consumer.CachedInfo().Config
		if have.AckWait == want.AckWait && have.MaxDeliver == want.MaxDeliver &&
			have.MaxAckPending == want.MaxAckPending && have.Description == want.Description {
			return false, nil
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, classify(fmt.Errorf("reading consumer %s/%s: %w", spec.Stream, spec.Consumer, err))
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, spec.Stream, want); err != nil {
		return false, classify(fmt.Errorf("writing consumer %s/%s: %w", spec.Stream, spec.Consumer, err))
	}
	return true, nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, spec Spec) (bool, error) {
	want := jetstream.KeyValueConfig{
		Bucket:      spec.Bucket,
		Description: "Freightcast predictions by event id",
		History:     1,
		TTL:         spec.PredictionRetention,
		Storage:     jetstream.FileStorage,
		Replicas:    1,
	}
	kv, err := js.KeyValue(ctx, spec.Bucket)
	if err == nil {
		status, err := kv.Status(ctx)
		if err != nil {
			return false, classify(fmt.Errorf("reading bucket %s: %w", spec.Bucket, err))
		}
		if status.TTL() == want.TTL {
			return false, nil
		}
	} else if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return false, classify(fmt.Errorf("reading bucket %s: %w", spec.Bucket, err))
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, want); err != nil {
		return false, classify(fmt.Errorf("writing bucket %s: %w", spec.Bucket, err))
	}
	return true, nil
}
