package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
)

// SnapshotName is the object the snapshot is written to in the report store.
const SnapshotName = "snapshot"

// Options tune a Service.
type Options struct {
	// SnapshotInterval is how often a snapshot is written while records arrive (default 30s);
	// SnapshotRecords writes one sooner after that many records (default 100 000).
	SnapshotInterval time.Duration
	SnapshotRecords  int
	// Batch is how many records are fetched at once (default 500).
	Batch int
	Log   *slog.Logger
	Now   func() time.Time
	Hooks Hooks
}

// Hooks observe the service, for metrics and tests.
type Hooks struct {
	// Snapshot is called after each snapshot is written, with its size and the sequence it covers.
	Snapshot func(bytes int, seq uint64)
	// Acked is called after the acknowledgement that follows a snapshot; a test can stop the
	// service between the two (AfterSnapshotBeforeAck).
	Acked func(seq uint64)
	// AfterSnapshotBeforeAck, when it returns true, stops the service between a snapshot and its
	// acknowledgement, as a crash there would.
	AfterSnapshotBeforeAck func() bool
}

// Service is the reporting role's data side: it restores the state from the last snapshot,
// consumes the predictions bucket's stream from the sequence after it, applies each record in
// stream order, and writes a snapshot (the state and its sequence, one object) before
// acknowledging what it covers. The API reads the state under the same lock.
type Service struct {
	spec queue.Spec
	cfg  pipelineconfig.Reporting
	js   jetstream.JetStream
	opts Options
	dec  *Decoder

	mu    sync.RWMutex
	state *State
	// pending is the last message applied and not yet covered by a snapshot (under mu).
	pending jetstream.Msg

	ready         atomic.Bool
	lag           atomic.Uint64
	snapshotBytes atomic.Int64
	lastSnapshot  atomic.Int64 // unix nanoseconds; 0: none yet
}

// Stats are the service's numbers for its metrics.
func (s *Service) Stats() metrics.ReportStats {
	out := metrics.ReportStats{Lag: s.lag.Load(), SnapshotBytes: int(s.snapshotBytes.Load()), Ready: s.Ready(), SnapshotAgeSeconds: -1}
	if at := s.lastSnapshot.Load(); at != 0 {
		out.SnapshotAgeSeconds = s.opts.Now().Sub(time.Unix(0, at)).Seconds()
	}
	s.Read(func(st *State) {
		c := st.Counters
		out.Applied, out.Malformed, out.DimensionErrors, out.Folded, out.Late = c.Applied, c.Malformed, c.DimensionErrors, c.Folded, c.Late
	})
	return out
}

// NewService checks cfg and compiles its dimensions.
func NewService(js jetstream.JetStream, spec queue.Spec, cfg pipelineconfig.Reporting, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dec, err := NewDecoder(cfg)
	if err != nil {
		return nil, err
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 30 * time.Second
	}
	if opts.SnapshotRecords <= 0 {
		opts.SnapshotRecords = 100_000
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{spec: spec, cfg: cfg, js: js, opts: opts, dec: dec, state: NewState(cfg)}, nil
}

// Ready reports whether the snapshot was restored and the consumer attached.
func (s *Service) Ready() bool { return s.ready.Load() }

// Read runs fn with the state, under the read lock.
func (s *Service) Read(fn func(*State)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(s.state)
}

// Config is the reporting configuration served.
func (s *Service) Config() pipelineconfig.Reporting { return s.cfg }

// Run restores, attaches and consumes until ctx ends. It returns nil when ctx ends, without a
// last snapshot: what was applied since the last one is replayed by the next run, as after a
// crash. Call Snapshot before cancelling for a clean stop.
func (s *Service) Run(ctx context.Context) error {
	store, err := s.js.ObjectStore(ctx, s.spec.ReportStore)
	if err != nil {
		return fmt.Errorf("report store %s: %w", s.spec.ReportStore, err)
	}
	if err := s.restore(ctx, store); err != nil {
		return err
	}
	cons, err := s.attach(ctx)
	if err != nil {
		return err
	}
	s.ready.Store(true)
	defer s.ready.Store(false)
	since, lastSnap := 0, s.opts.Now()
	for ctx.Err() == nil {
		batch, err := cons.Fetch(s.opts.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Log.Warn("fetching predictions", "error", err)
			time.Sleep(time.Second)
			continue
		}
		// The lock is taken per record, not around the loop: the loop waits for the batch's
		// records to arrive (up to a second when few come), and the API must not wait with it.
		for m := range batch.Messages() {
			s.mu.Lock()
			s.apply(m)
			s.pending = m
			s.mu.Unlock()
			since++
		}
		s.mu.RLock()
		pending := s.pending
		s.mu.RUnlock()
		if err := batch.Error(); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
			s.opts.Log.Warn("fetching predictions", "error", err)
		}
		if pending != nil && (since >= s.opts.SnapshotRecords || s.opts.Now().Sub(lastSnap) >= s.opts.SnapshotInterval) {
			if err := s.snapshotAndAck(ctx, store, pending); err != nil {
				if ctx.Err() != nil || errors.Is(err, errStopped) {
					return nil
				}
				s.opts.Log.Error("writing a report snapshot", "error", err)
				continue
			}
			since, lastSnap = 0, s.opts.Now()
		}
	}
	return nil
}

var errStopped = errors.New("stopped between snapshot and acknowledgement")

// apply counts one message; s.mu is held.
func (s *Service) apply(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq := md.Sequence.Stream
	s.lag.Store(md.NumPending)
	if seq <= s.state.LastSeq {
		return // redelivered, counted already
	}
	if op := m.Headers().Get("KV-Operation"); op != "" {
		s.state.LastSeq = seq // a delete or purge marker: no record
		return
	}
	r, dimErrors, err := s.dec.Decode(m.Headers().Get(queue.HeaderClient), m.Data())
	if err != nil {
		s.state.LastSeq = seq
		s.state.Counters.Malformed++
		return
	}
	s.state.Counters.DimensionErrors += uint64(dimErrors)
	s.state.Apply(seq, &r)
}

// Snapshot writes a snapshot of what Run applied and acknowledges it: a clean stop, called after
// Run returned, so that the next start replays nothing.
func (s *Service) Snapshot(ctx context.Context) error {
	s.mu.RLock()
	pending := s.pending
	s.mu.RUnlock()
	if pending == nil {
		return nil
	}
	store, err := s.js.ObjectStore(ctx, s.spec.ReportStore)
	if err != nil {
		return fmt.Errorf("report store %s: %w", s.spec.ReportStore, err)
	}
	return s.snapshotAndAck(ctx, store, pending)
}

// snapshotAndAck writes the snapshot, then acknowledges up to last (AckAll): the
// acknowledgement never runs ahead of a written snapshot.
func (s *Service) snapshotAndAck(ctx context.Context, store jetstream.ObjectStore, last jetstream.Msg) error {
	s.mu.RLock()
	data, err := s.state.MarshalSnapshot()
	seq := s.state.LastSeq
	s.mu.RUnlock()
	if err != nil {
		return err
	}
	if _, err := store.PutBytes(ctx, SnapshotName, data); err != nil {
		return fmt.Errorf("writing snapshot of sequence %d: %w", seq, err)
	}
	s.lastSnapshot.Store(s.opts.Now().UnixNano())
	s.snapshotBytes.Store(int64(len(data)))
	if h := s.opts.Hooks.Snapshot; h != nil {
		h(len(data), seq)
	}
	if h := s.opts.Hooks.AfterSnapshotBeforeAck; h != nil && h() {
		return errStopped
	}
	if err := last.DoubleAck(ctx); err != nil {
		// Harmless for correctness: the next run resumes from the snapshot, not the ack floor.
		return fmt.Errorf("acknowledging sequence %d: %w", seq, err)
	}
	s.mu.Lock()
	if s.pending == last {
		s.pending = nil
	}
	s.mu.Unlock()
	if h := s.opts.Hooks.Acked; h != nil {
		h(seq)
	}
	return nil
}

// restore loads the snapshot; none (or one of another configuration) starts empty.
func (s *Service) restore(ctx context.Context, store jetstream.ObjectStore) error {
	data, err := store.GetBytes(ctx, SnapshotName)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the report snapshot: %w", err)
	}
	st := NewState(s.cfg)
	switch err := st.RestoreSnapshot(data); {
	case errors.Is(err, ErrOtherConfig):
		s.opts.Log.Warn("the report snapshot was written for another reporting configuration; rebuilding from the stream")
		return nil
	case err != nil:
		return err
	}
	s.mu.Lock()
	s.state = st
	s.mu.Unlock()
	s.snapshotBytes.Store(int64(len(data)))
	s.lastSnapshot.Store(s.opts.Now().UnixNano())
	s.opts.Log.Info("restored the report snapshot", "sequence", st.LastSeq, "bytes", len(data))
	return nil
}

// attach re-creates the durable consumer to start right after the restored sequence, so that
// records come in stream order with nothing skipped: a consumer left by the previous run would
// first send the messages it had after its ack floor, and redeliver the rest later.
func (s *Service) attach(ctx context.Context) (jetstream.Consumer, error) {
	stream, name := s.spec.BucketStream(), s.spec.ReportConsumer
	if err := s.js.DeleteConsumer(ctx, stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("re-creating consumer %s/%s: %w", stream, name, err)
	}
	s.mu.RLock()
	after := s.state.LastSeq
	s.mu.RUnlock()
	cons, err := s.js.CreateConsumer(ctx, stream, queue.ReportConsumerConfig(s.spec, after))
	if err != nil {
		return nil, fmt.Errorf("re-creating consumer %s/%s: %w", stream, name, err)
	}
	return cons, nil
}
