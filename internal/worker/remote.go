package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
)

// RemoteModel is a model another server runs, called over the Open Inference Protocol: REST
// (internal/oipclient) or gRPC. Implementations must be safe for concurrent use: every worker of
// a pool shares one.
type RemoteModel interface {
	// Metadata describes the model's inputs and outputs, as the server's model metadata says.
	Metadata() *model.Metadata
	// Infer runs one request with inputs (in Metadata().Inputs order) and fills outputs (in
	// Metadata().Outputs order), within ctx's deadline. An error that wraps ErrRejected is the
	// request's own fault (the server refused its values): sending it again changes nothing.
	// Any other error means the model did not answer now, and the request may be sent again.
	Infer(ctx context.Context, inputs, outputs []*model.Tensor) error
}

// ErrRejected marks a remote model's refusal of a request's values (an OIP 400).
var ErrRejected = errors.New("the model rejected the request")

// errModelUnavailable is a batch given back to the queue because its remote model did not
// answer before the worker was told to stop.
type errModelUnavailable struct{ err error }

func (e *errModelUnavailable) Error() string {
	return "the remote model is unavailable: " + e.err.Error()
}
func (e *errModelUnavailable) Unwrap() error { return e.err }

// errRequeued: while the remote model was down, the batch's events on their last allowed
// delivery went back to the queue (requeue); rest are the events still to score.
type errRequeued struct{ rest []pending }

func (e *errRequeued) Error() string {
	return fmt.Sprintf("events on their last delivery requeued while the remote model is down; %d left to score", len(e.rest))
}

// Defaults of the remote scoring knobs in Config.
const (
	defaultRemoteTimeout    = 10 * time.Second
	defaultRemoteMaxBackoff = 2 * time.Second
	remoteFirstBackoff      = 50 * time.Millisecond
)

// scoreRemote sends the batch to the remote model until it answers. A request that fails
// without a refusal (connection refused, 5xx, 429, the deadline passed) is sent again after a
// backoff, for as long as it takes: the events stay unacknowledged, kept from redelivery
// (InProgress) so that a model that is down never spends their delivery attempts, and the
// worker pulls nothing more meanwhile, so the queue holds the backlog and the autoscaler sees
// it. Only the first answer is stored: one that comes after its deadline is dropped with the
// request. When the worker is stopped while the model is down, the batch goes back to the
// queue (errModelUnavailable).
func (w *Worker) scoreRemote(ctx context.Context, good []pending) error {
	backoff := remoteFirstBackoff
	down := false
	defer func() {
		if down {
			w.cfg.Metrics.RemoteModelUnavailable.Dec()
		}
	}()
	for {
		span := w.runSpan(ctx, len(good))
		err := w.typed.run(func(in, out []*model.Tensor) error {
			rctx, cancel := context.WithTimeout(ctx, w.cfg.RemoteTimeout)
			defer cancel()
			return w.cfg.Remote.Infer(rctx, in, out)
		}, good)
		endSpan(span, err)
		if err == nil || errors.Is(err, ErrRejected) {
			return err
		}
		if !down {
			down = true
			w.cfg.Metrics.RemoteModelUnavailable.Inc()
			w.cfg.Logger.WarnContext(ctx, "worker: the remote model does not answer; holding the batch until it does", "events", len(good), "error", err)
			if rest, requeued := w.requeue(ctx, good); requeued {
				return &errRequeued{rest: rest}
			}
		}
		w.cfg.Metrics.RemoteRetries.Inc()
		for _, p := range good {
			// Resets the ack wait: the server redelivers none of them while we wait.
			_ = p.msg.InProgress()
		}
		select {
		case <-w.stop:
			return &errModelUnavailable{err: err}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.RemoteMaxBackoff)
	}
}

// requeue gives the events of good that are on their last allowed delivery back to the queue as
// new messages, and acknowledges the originals. Held for a model that is down, such an event
// would be stranded by the next restart of its worker: given back (graceful stop) or left to the
// ack wait (a killed pod), a message past its last delivery is never delivered again, and sits in
// the stream, neither predicted nor dead-lettered. A new message starts its deliveries afresh, so
// an outage outlasts any number of worker restarts; the model being down is no fault of the
// events. The copy keeps the subject (its status by id), the data and the headers (client, trace
// context), not the message id: the stream's duplicate window still holds the original's, and
// would drop the copy. A crash between the copy and the acknowledgement leaves two messages of
// one event, and the bucket, written only if absent, one prediction. An event whose copy cannot be
// stored (the stream full) stays in the batch, held. It returns the events left to score and
// whether any went back.
func (w *Worker) requeue(ctx context.Context, good []pending) ([]pending, bool) {
	rest := make([]pending, 0, len(good))
	for _, p := range good {
		meta, err := p.msg.Metadata()
		if err != nil || meta.NumDelivered < uint64(w.cfg.MaxDeliver) || !w.giveBack(ctx, p) {
			rest = append(rest, p)
		}
	}
	return rest, len(rest) < len(good)
}

// giveBack publishes a copy of p's message (see requeue) and acknowledges the original; it
// reports whether the copy is stored.
func (w *Worker) giveBack(ctx context.Context, p pending) bool {
	copied := nats.NewMsg(p.msg.Subject())
	copied.Data = p.msg.Data()
	for k, v := range p.msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			copied.Header[k] = v
		}
	}
	pctx, cancel := context.WithTimeout(ctx, w.cfg.StoreTimeout)
	defer cancel()
	if _, err := w.cfg.JetStream.PublishMsg(pctx, copied); err != nil {
		w.cfg.Logger.WarnContext(ctx, "worker: an event on its last delivery could not go back to the queue; holding it", "event", p.ev.ID, "error", err)
		return false
	}
	if err := p.msg.Ack(); err != nil {
		w.cfg.Logger.WarnContext(ctx, "worker: ack of a requeued event", "event", p.ev.ID, "error", err)
	}
	w.cfg.Metrics.Requeued.Inc()
	w.cfg.Logger.InfoContext(ctx, "worker: the remote model is down on an event's last allowed delivery; it goes back to the queue", "event", p.ev.ID)
	return true
}

// rejected settles a batch the remote model refused. One event refused alone is dead-lettered:
// its values are the fault. A refused batch of several is scored again one event at a time, so
// that only the events the model refuses alone are dead-lettered.
func (w *Worker) rejected(ctx context.Context, good []pending, err error, start time.Time) {
	if len(good) == 1 {
		w.deadLetter(ctx, good[0].msg, good[0].ev.ID, metrics.DeadLetterModelRejected, err)
		return
	}
	for i := range good {
		w.finish(ctx, good[i:i+1], start)
	}
}

// release gives a batch back to the queue without spending it on dead letters: its model is
// down, which is no fault of the events.
func (w *Worker) release(ctx context.Context, good []pending, err error) {
	w.cfg.Metrics.Failures.WithLabelValues("model_unavailable").Inc()
	w.cfg.Logger.WarnContext(ctx, "worker: stopping while the remote model is down; the batch goes back to the queue", "events", len(good), "error", err)
	for _, p := range good {
		_ = p.msg.NakWithDelay(time.Second)
	}
}

// checkRemote validates a remote model's configuration for New.
func checkRemote(cfg *Config) error {
	if cfg.Model != nil {
		return fmt.Errorf("worker: both a model and a remote model are configured")
	}
	if cfg.RemoteTimeout <= 0 {
		cfg.RemoteTimeout = defaultRemoteTimeout
	}
	if cfg.RemoteMaxBackoff <= 0 {
		cfg.RemoteMaxBackoff = defaultRemoteMaxBackoff
	}
	return nil
}
