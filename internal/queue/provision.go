package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Metadata keys Provision writes on the pipeline's streams (and its bucket's stream), so that a
// stream that outlives its pipeline can be traced back to it (Capacity.Orphans).
const (
	MetadataNamespace = "freightcast.io/namespace"
	MetadataPipeline  = "freightcast.io/pipeline"
	// MetadataRole is RoleEvents, RoleOutput, RolePredictions or RoleReports.
	MetadataRole = "freightcast.io/role"

	RoleEvents      = "events"
	RoleOutput      = "output"
	RolePredictions = "predictions"
	RoleReports     = "reports"
)

// Result reports what Provision did.
type Result struct {
	// Changed is true when anything was created or updated on the server.
	Changed bool
	// Created names the streams (the bucket's among them) and the consumer this call created.
	Created []string
	// Rescaled lists the streams whose replica count this call changed.
	Rescaled []Rescale
	// Events is how many events the events stream held when Provision found it: a re-created
	// pipeline that finds its retained stream adopts these.
	Events uint64
	// EventsStreamExisted is true when the events stream was there before this call.
	EventsStreamExisted bool
	// Converging is true when a replica change is still under way on the servers (a scale-up
	// copies the streams first) and the consumer could not follow yet: call Provision again
	// in a few seconds.
	Converging bool
}

// Rescale is a stream whose replicas changed. JetStream moves the data itself: a scale-up copies
// the stream to the new servers (they show as lagging until they caught up), a scale-down keeps
// the leader.
type Rescale struct {
	Stream   string
	From, To int
}

// Option tunes Provision.
type Option func(*provisionOptions)

type provisionOptions struct {
	limit StoreLimit
}

// WithStoreLimit tells Provision the servers' stores, so that a pipeline that does not fit is
// refused with the numbers before anything is written (see StoreLimit).
func WithStoreLimit(l StoreLimit) Option {
	return func(o *provisionOptions) { o.limit = l }
}

// Provision makes the pipeline's streams, consumer and bucket exist as spec says, with spec's
// replicas (changing them in place when they differ). It reads first and writes only what is
// missing or differs, so calling it on every reconcile is cheap and quiet. It never deletes an
// object it did not create in the same call: events accepted into a stream outlive any spec
// change (Delete removes a pipeline's objects).
//
// A pipeline that is provisioned for the first time is provisioned whole or not at all: the
// output stream and the bucket's stream come first and the events stream, the only one clients
// write to, last;
// if the store refuses any of them, what this call created is deleted again (it is empty: nothing
// writes to it before the events stream exists), and the error is an *InsufficientStorageError.
func Provision(ctx context.Context, js jetstream.JetStream, spec Spec, opts ...Option) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, err
	}
	var o provisionOptions
	for _, opt := range opts {
		opt(&o)
	}
	p := &provisioner{js: js, spec: spec, opts: o}
	res, err := p.run(ctx)
	if err != nil && !p.res.EventsStreamExisted && len(p.created) > 0 {
		// Only a first provisioning is undone: once the events stream exists, workers may be
		// writing to whatever else this call created.
		p.rollback(ctx)
		res = Result{}
	}
	if err != nil && isStorageRefusal(err) {
		err = p.storageError(ctx, err)
	}
	return res, err
}

type provisioner struct {
	js      jetstream.JetStream
	spec    Spec
	opts    provisionOptions
	res     Result
	created []string // streams this call created, for rollback
}

func (p *provisioner) run(ctx context.Context) (Result, error) {
	events, err := p.js.Stream(ctx, p.spec.Stream)
	switch {
	case err == nil:
		p.res.EventsStreamExisted = true
		p.res.Events = events.CachedInfo().State.Msgs
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// A first provisioning: refuse before writing anything when the numbers prove it does
		// not fit. When they cannot prove it, the server decides, and rollback undoes a part.
		if err := p.preflight(ctx); err != nil {
			return Result{}, err
		}
	default:
		return Result{}, classify(fmt.Errorf("reading stream %s: %w", p.spec.Stream, err))
	}
	if err := p.ensureStream(ctx, outputStreamConfig(p.spec)); err != nil {
		return Result{}, err
	}
	if err := p.ensureStream(ctx, bucketStreamConfig(p.spec)); err != nil {
		return Result{}, err
	}
	if err := p.ensureStream(ctx, eventsStreamConfig(p.spec)); err != nil {
		return Result{}, err
	}
	if err := p.ensureConsumer(ctx); err != nil {
		return Result{}, err
	}
	if p.spec.Reporting {
		if err := p.ensureStream(ctx, reportStoreStreamConfig(p.spec)); err != nil {
			return Result{}, err
		}
		if err := p.ensureReportConsumer(ctx); err != nil {
			return Result{}, err
		}
	}
	p.res.Changed = len(p.res.Created) > 0 || len(p.res.Rescaled) > 0 || p.res.Changed
	return p.res, nil
}

func (p *provisioner) preflight(ctx context.Context) error {
	c, err := ReadCapacity(ctx, p.js, p.opts.limit)
	if err != nil {
		return err
	}
	// Streams of this pipeline that exist already (the output stream of a pipeline whose events
	// stream was deleted by hand) reserve nothing new.
	var asks []int64
	names := []string{p.spec.OutputStream, p.spec.BucketStream(), p.spec.Stream}
	if p.spec.Reporting {
		names = append(names, p.spec.ReportStoreStream())
	}
	for _, name := range names {
		if !slices.ContainsFunc(c.Streams, func(s Stream) bool { return s.Name == name }) {
			asks = append(asks, p.spec.MaxBytes)
		}
	}
	if ok, certain := c.fits(p.spec.replicas(), asks...); !ok && certain {
		return p.errorWith(c, nil)
	}
	return nil
}

// storageError turns the server's refusal into an *InsufficientStorageError with the numbers.
func (p *provisioner) storageError(ctx context.Context, cause error) error {
	c, err := ReadCapacity(ctx, p.js, p.opts.limit)
	if err != nil {
		c = Capacity{Limit: -1, Where: where(p.js)}
	}
	return p.errorWith(c, cause)
}

func (p *provisioner) errorWith(c Capacity, cause error) error {
	return &InsufficientStorageError{
		Pipeline: p.spec.Namespace + "/" + p.spec.Pipeline,
		Needed:   p.spec.Reservation(), MaxBytes: p.spec.MaxBytes, Replicas: p.spec.replicas(),
		Capacity: c, Cause: cause,
	}
}

// rollback deletes what this call created. Its errors are not the caller's concern: the next
// Provision finds the leftovers and adopts them.
func (p *provisioner) rollback(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	for _, name := range slices.Backward(p.created) {
		_ = p.js.DeleteStream(ctx, name)
	}
}

func metadataFor(spec Spec, role string) map[string]string {
	return map[string]string{MetadataNamespace: spec.Namespace, MetadataPipeline: spec.Pipeline, MetadataRole: role}
}

func eventsStreamConfig(spec Spec) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        spec.Stream,
		Description: "Freightcast events awaiting prediction",
		Subjects:    spec.EventSubjects(),
		// Work-queue retention removes an event once its prediction is acknowledged, so the
		// limits below bound the backlog, not history.
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Discard:    jetstream.DiscardNew,
		MaxMsgs:    spec.MaxMessages,
		MaxBytes:   spec.MaxBytes,
		MaxAge:     spec.MaxAge,
		Duplicates: spec.DuplicateWindow,
		Replicas:   spec.replicas(),
		Metadata:   metadataFor(spec, RoleEvents),
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
		Subjects:    []string{spec.PredictionSubject, spec.DeadLetterSubject, spec.DeadLetterKeySubject(">")},
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
		Replicas:   spec.replicas(),
		Metadata:   metadataFor(spec, RoleOutput),
	}
}

// ensureStream creates the stream or updates the fields we own when they differ.
func (p *provisioner) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	stream, err := p.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := p.js.CreateStream(ctx, want); err != nil {
			return classify(fmt.Errorf("creating stream %s: %w", want.Name, err))
		}
		p.created = append(p.created, want.Name)
		p.res.Created = append(p.res.Created, want.Name)
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("reading stream %s: %w", want.Name, err))
	}
	have := stream.CachedInfo().Config
	if streamMatches(have, want) {
		return nil
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
	update.Replicas = want.Replicas
	update.Metadata = withMetadata(have.Metadata, want.Metadata)
	if _, err := p.js.UpdateStream(ctx, update); err != nil {
		return classify(fmt.Errorf("updating stream %s: %w", want.Name, err))
	}
	p.noteUpdate(want.Name, have.Replicas, want.Replicas)
	return nil
}

func (p *provisioner) noteUpdate(name string, from, to int) {
	p.res.Changed = true
	if max(from, 1) != max(to, 1) {
		p.res.Rescaled = append(p.res.Rescaled, Rescale{Stream: name, From: max(from, 1), To: max(to, 1)})
	}
}

func streamMatches(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		slices.Equal(have.Subjects, want.Subjects) &&
		have.Discard == want.Discard &&
		have.MaxMsgs == want.MaxMsgs &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxAge == want.MaxAge &&
		have.Duplicates == want.Duplicates &&
		max(have.Replicas, 1) == max(want.Replicas, 1) &&
		hasMetadata(have.Metadata, want.Metadata)
}

// hasMetadata reports whether have holds every key of want with its value. The server adds keys
// of its own (_nats.*), which are no difference.
func hasMetadata(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func withMetadata(have, want map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
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
		// No filter: the stream holds nothing but events, under Subject and below it
		// (EventSubjects), and a consumer has one filter or a list, not both.
		// As many replicas as the stream, so that the delivery state survives the loss of a
		// server as the events do. Set, not left at 0: a consumer that inherits the stream's
		// count at creation keeps it when the stream is scaled later.
		Replicas: spec.replicas(),
	}
}

func (p *provisioner) ensureConsumer(ctx context.Context) error {
	spec := p.spec
	want := consumerConfig(spec)
	consumer, err := p.js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err == nil {
		have := consumer.CachedInfo().Config
		if have.AckWait == want.AckWait && have.MaxDeliver == want.MaxDeliver &&
			have.MaxAckPending == want.MaxAckPending && have.Description == want.Description &&
			have.Replicas == want.Replicas && have.FilterSubject == want.FilterSubject {
			return nil
		}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return classify(fmt.Errorf("reading consumer %s/%s: %w", spec.Stream, spec.Consumer, err))
	}
	written, werr := p.writeConsumer(ctx, want)
	switch {
	case werr != nil:
		return classify(fmt.Errorf("writing consumer %s/%s: %w", spec.Stream, spec.Consumer, werr))
	case !written:
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		p.res.Created = append(p.res.Created, spec.Stream+"/"+spec.Consumer)
	default:
		p.res.Changed = true
	}
	return nil
}

// errCodeConsumerReplicasExceedStream: the stream's scale-up has not completed yet.
const errCodeConsumerReplicasExceedStream jetstream.ErrorCode = 10126

// writeConsumer creates or updates the consumer. While a stream's scale-up is still copying it
// to its new servers (seconds, or longer for a large stream), the stream keeps its old replica
// count and refuses a consumer with the new one: the result then says Converging, and a later
// call finishes the job.
func (p *provisioner) writeConsumer(ctx context.Context, want jetstream.ConsumerConfig) (bool, error) {
	_, err := p.js.CreateOrUpdateConsumer(ctx, p.spec.Stream, want)
	if code, _ := apiCode(err); code == errCodeConsumerReplicasExceedStream {
		p.res.Converging = true
		return false, nil
	}
	return err == nil, err
}

// bucketStreamConfig is the predictions bucket's stream, as JetStream's key-value layer lays a
// bucket out (one subject per key, the last value kept, reads by direct get), with two choices
// of ours: it is bounded by maxBytes like the output stream, so that its storage is reserved up
// front rather than growing unseen until the store is full, and when full it drops the oldest
// predictions rather than refusing new ones, which would stall the pipeline.
func bucketStreamConfig(spec Spec) jetstream.StreamConfig {
	// Writes carry no message id; the key-value layer's own window, kept for its tools.
	window := min(spec.PredictionRetention, 2*time.Minute)
	return jetstream.StreamConfig{
		Name:              spec.BucketStream(),
		Description:       "Freightcast predictions by event id",
		Subjects:          []string{spec.PredictionKeySubject(">")},
		Retention:         jetstream.LimitsPolicy,
		Storage:           jetstream.FileStorage,
		Discard:           jetstream.DiscardOld,
		MaxMsgs:           -1,
		MaxMsgsPerSubject: 1,
		MaxBytes:          spec.MaxBytes,
		MaxAge:            spec.PredictionRetention,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		Duplicates:        window,
		AllowRollup:       true,
		DenyDelete:        true,
		AllowDirect:       true,
		Replicas:          spec.replicas(),
		Metadata:          metadataFor(spec, RolePredictions),
	}
}

// reportStoreStreamConfig is the reporting role's snapshot store, laid out as JetStream's object
// store lays one out (chunks and metadata subjects, rollup, direct reads), bounded by maxBytes
// like the other streams. It refuses rather than drops when full: a snapshot that does not fit
// fails, and the previous one, which the new one's chunks have not replaced yet, stays whole.
func reportStoreStreamConfig(spec Spec) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        spec.ReportStoreStream(),
		Description: "Freightcast report snapshots",
		Subjects:    []string{"$O." + spec.ReportStore + ".C.>", "$O." + spec.ReportStore + ".M.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    spec.MaxBytes,
		// The server's default, written out so that a provisioned store matches its spec.
		Duplicates:  2 * time.Minute,
		AllowRollup: true,
		AllowDirect: true,
		Replicas:    spec.replicas(),
		Metadata:    metadataFor(spec, RoleReports),
	}
}

// ReportConsumerConfig is the reporting role's durable consumer on the predictions bucket's
// stream, starting after sequence after (0: from the first prediction kept). It acknowledges
// cumulatively (AckAll), only what a written snapshot covers, so its ack floor is the position a
// restart resumes from and its pending count the reporting lag. Nothing is redelivered while the
// role runs (the ack wait is long and the role skips sequences it applied), and a restarting role
// re-creates it at its snapshot's sequence (internal/report), so that records arrive in stream
// order.
func ReportConsumerConfig(spec Spec, after uint64) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{
		Durable:       spec.ReportConsumer,
		Description:   "Freightcast reporting",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       ReportAckWait,
		MaxDeliver:    -1,
		MaxAckPending: -1,
		Replicas:      spec.replicas(),
	}
	if after > 0 {
		c.DeliverPolicy, c.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	return c
}

// ReportAckWait is how long the reporting consumer waits for an acknowledgement before it
// redelivers: longer than any snapshot interval, so that a running role is not sent again what
// it holds unacknowledged until its next snapshot.
const ReportAckWait = time.Hour

// ensureReportConsumer creates the reporting consumer when it is missing. An existing one is left
// as it is: its position belongs to the reporting role, which re-creates it where its snapshot
// ends.
func (p *provisioner) ensureReportConsumer(ctx context.Context) error {
	stream, name := p.spec.BucketStream(), p.spec.ReportConsumer
	_, err := p.js.Consumer(ctx, stream, name)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, jetstream.ErrConsumerNotFound):
		return classify(fmt.Errorf("reading consumer %s/%s: %w", stream, name, err))
	}
	_, err = p.js.CreateConsumer(ctx, stream, ReportConsumerConfig(p.spec, 0))
	if code, _ := apiCode(err); code == errCodeConsumerReplicasExceedStream {
		p.res.Converging = true
		return nil
	}
	if err != nil {
		return classify(fmt.Errorf("creating consumer %s/%s: %w", stream, name, err))
	}
	p.res.Created = append(p.res.Created, stream+"/"+name)
	return nil
}
