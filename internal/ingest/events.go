package ingest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/ratelimit"
	"github.com/freightcast/freightcast/internal/tracing"
)

// maxPooledBytes is the largest body or payload buffer kept for the next request.
const maxPooledBytes = 1 << 20

// requestState is the scratch space of one POST, pooled so that a steady load allocates little.
type requestState struct {
	body    []byte
	batch   batch
	seen    []bool
	payload []byte
	ids     map[string]struct{}
	futures []jetstream.PubAckFuture
	// held is what the body budget lent for body.
	held int64
}

// postEvents answers POST /v1/events: 202 with what was stored, or the error that stored nothing
// (or, in a 503 after a partial publish, what was stored anyway).
func (h *Handler) postEvents(w http.ResponseWriter, r *http.Request) {
	received := h.cfg.Now()
	st := h.states.Get().(*requestState)
	reuse := true
	defer func() {
		// A rare huge body should not pin its buffers in the pool.
		if reuse && cap(st.body) <= maxPooledBytes && cap(st.payload) <= maxPooledBytes {
			st.batch.reset()
			h.states.Put(st)
		}
	}()
	accepted, dups, apiErr := h.ingest(r, st, received, &reuse)
	h.cfg.BodyBudget.Release(st.held)
	st.held = 0
	if h.tracer != nil {
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.Int("freightcast.events", st.batch.len()),
			attribute.Int("freightcast.events.accepted", accepted), attribute.Int("freightcast.events.duplicates", dups))
	}
	if apiErr != nil {
		if apiErr.unread {
			httpbody.Refuse(w, r, func() { h.fail(r.Context(), w, apiErr) })
			return
		}
		h.fail(r.Context(), w, apiErr)
		return
	}
	h.metrics.EventsAccepted.Add(float64(accepted))
	h.metrics.EventsDuplicate.Add(float64(dups))
	buf := make([]byte, 0, 48)
	buf = append(buf, `{"accepted":`...)
	buf = strconv.AppendInt(buf, int64(accepted), 10)
	buf = append(buf, `,"duplicates":`...)
	buf = strconv.AppendInt(buf, int64(dups), 10)
	buf = append(buf, "}\n"...)
	writeRaw(w, http.StatusAccepted, buf)
}

// ingest runs a POST from authentication to the last ack. *reuse is cleared when st must not go
// back to the pool because publishes may still read its buffers.
func (h *Handler) ingest(r *http.Request, st *requestState, received time.Time, reuse *bool) (accepted, dups int, _ *apiError) {
	client, aerr := h.authenticate(r)
	if aerr != nil {
		return 0, 0, aerr
	}
	ndjson, aerr := mediaType(r.Header.Get("Content-Type"))
	if aerr != nil {
		return 0, 0, aerr
	}
	if aerr := h.readBody(r, st); aerr != nil {
		return 0, 0, aerr
	}
	var err error
	if ndjson {
		err = h.dec.decodeNDJSON(st.body, &st.batch, st.seen)
	} else {
		err = h.dec.decodeJSON(st.body, &st.batch, st.seen)
	}
	if err != nil {
		var ee *eventError
		if !errors.As(err, &ee) {
			return 0, 0, &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid, body: errorBody{Error: err.Error()}}
		}
		body := errorBody{Error: ee.msg, Field: ee.field}
		if ee.index >= 0 {
			body.Index = &ee.index
		}
		return 0, 0, &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid, body: body}
	}
	n := st.batch.len()
	var paid ratelimit.Charge
	if h.limits != nil {
		if float64(n) > h.limits.Burst() {
			return 0, 0, &apiError{status: http.StatusRequestEntityTooLarge, reason: metrics.ReasonTooLarge,
				body: errorBody{Error: fmt.Sprintf("the body holds %d events, more than the rate limit's burst of %s; send smaller bodies", n, formatRate(h.limits.Burst()))}}
		}
		var ok bool
		var wait time.Duration
		if paid, ok, wait = h.limits.Take(client.Key(), n); !ok {
			return 0, 0, &apiError{status: http.StatusTooManyRequests, reason: metrics.ReasonRateLimited, retryAfter: wait,
				body: errorBody{Error: fmt.Sprintf("rate limit of %s events/s for the pipeline exceeded", formatRate(h.limits.Rate()))}}
		}
	}
	if status := h.cfg.Conn.Status(); status != nats.CONNECTED {
		h.limits.Refund(paid, 0)
		return 0, 0, &apiError{status: http.StatusServiceUnavailable, reason: metrics.ReasonUnavailable, retryAfter: retryUnavailable,
			body: errorBody{Error: "the queue is unavailable (NATS " + strings.ToLower(status.String()) + "); nothing was stored, retry later"}}
	}
	accepted, dups, perr := h.publish(r.Context(), st, client.Client, received, reuse)
	if perr != nil {
		// Duplicates count as stored: the client sent them, and the retry sends them again.
		h.limits.Refund(paid, perr.stored())
	}
	return accepted, dups, perr
}

// mediaType accepts application/json and application/x-ndjson, with a UTF-8 charset if any.
func mediaType(header string) (ndjson bool, _ *apiError) {
	fail := func(msg string) (bool, *apiError) {
		return false, &apiError{status: http.StatusUnsupportedMediaType, reason: metrics.ReasonMediaType,
			body: errorBody{Error: msg + "; send application/json or application/x-ndjson"}}
	}
	if header == "" {
		return fail("Content-Type is missing")
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return fail(fmt.Sprintf("Content-Type %q does not parse", header))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fail(fmt.Sprintf("charset %q is not supported, only utf-8", cs))
	}
	switch mt {
	case "application/json":
		return false, nil
	case "application/x-ndjson":
		return true, nil
	}
	return fail(fmt.Sprintf("Content-Type %q is not supported", mt))
}

// readBody reads the whole body into st.body, up to MaxBodyBytes and within the process's body
// budget. Reading it all first is what makes all-or-nothing cheap: the body is bounded anyway,
// and parsing from memory is fastest. The buffer grows as bytes arrive: a Content-Length is a
// claim, and sizing from it let clients that send nothing hold memory.
func (h *Handler) readBody(r *http.Request, st *requestState) *apiError {
	limit := h.cfg.MaxBodyBytes
	// Built only when needed: most bodies fit, and building it cost every request allocations.
	tooLarge := func() *apiError {
		return &apiError{status: http.StatusRequestEntityTooLarge, reason: metrics.ReasonTooLarge, unread: true,
			body: errorBody{Error: fmt.Sprintf("the body is larger than %d bytes; send fewer events per request", limit)}}
	}
	if r.ContentLength > limit {
		return tooLarge()
	}
	buf, held, err := httpbody.Read(r.Body, st.body[:0], limit, h.cfg.BodyBudget)
	st.held = held
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		st.body = buf[:0]
		return tooLarge()
	case errors.Is(err, httpbody.ErrBusy):
		st.body = buf[:0]
		return &apiError{status: http.StatusServiceUnavailable, reason: metrics.ReasonBusy, retryAfter: retryBusy, unread: true,
			body: errorBody{Error: "ingestion holds as many bodies as its memory allows; nothing was stored, retry later"}}
	case err != nil:
		st.body = buf[:0]
		return &apiError{status: http.StatusBadRequest, reason: metrics.ReasonInvalid,
			body: errorBody{Error: "reading the body: " + err.Error()}}
	}
	st.body = buf
	return nil
}

// publish queues every distinct event of the batch asynchronously and then waits for all acks,
// so that a body costs about one round trip, not one per event. Each event carries the name of
// its client (none for the anonymous one), which its prediction and dead letter keep.
func (h *Handler) publish(ctx context.Context, st *requestState, client string, received time.Time, reuse *bool) (accepted, dups int, _ *apiError) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout+500*time.Millisecond)
	defer cancel()
	b := &st.batch
	nf := len(h.cfg.Features)
	clear(st.ids)
	st.futures = st.futures[:0]
	st.payload = st.payload[:0]
	start := h.cfg.Now()
	// One producer span for the body; every message carries its context, so a worker can tell
	// which request queued the event it scores. The header values are computed once and shared.
	var traceHeader nats.Header
	if h.tracer != nil {
		var span trace.Span
		ctx, span = h.tracer.Start(ctx, "send "+h.cfg.Topology.Subject, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
				semconv.MessagingDestinationName(h.cfg.Topology.Subject), semconv.MessagingBatchMessageCount(len(b.ids))))
		defer func() {
			span.SetAttributes(attribute.Int("freightcast.events.accepted", accepted), attribute.Int("freightcast.events.duplicates", dups))
			span.End()
		}()
		traceHeader = tracing.Inject(ctx)
	}
	var pubErr error
	for i, id := range b.ids {
		if _, dup := st.ids[id]; dup {
			dups++ // first one wins, like the server's deduplication
			continue
		}
		st.ids[id] = struct{}{}
		from := len(st.payload)
		ev := event.Event{ID: id, Shipment: b.shipments[i], ReceivedAt: received}
		if h.dec.typed {
			ev.Values = b.typed[i*nf : (i+1)*nf]
		} else {
			ev.Features = b.values[i*nf : (i+1)*nf]
		}
		st.payload = event.AppendEncode(st.payload, &ev)
		// A later append may move st.payload; this message keeps the bytes it was given.
		data := st.payload[from:len(st.payload):len(st.payload)]
		// A body may hold more events than the pending-ack window; wait for room as long as
		// the request may take rather than failing after the library's default 200 ms.
		msg := &nats.Msg{Subject: h.cfg.Topology.EventSubject(id), Data: data}
		if traceHeader != nil || client != "" {
			// Room for the message id the library adds.
			msg.Header = make(nats.Header, len(traceHeader)+2)
			maps.Copy(msg.Header, traceHeader)
			if client != "" {
				msg.Header[queue.HeaderClient] = []string{client}
			}
		}
		f, err := h.js.PublishMsgAsync(msg, jetstream.WithMsgID(id), h.stallWait)
		if err != nil {
			pubErr = err
			break
		}
		st.futures = append(st.futures, f)
	}
	resolved, unconfirmed := 0, 0
	for _, f := range st.futures {
		select {
		case ack := <-f.Ok():
			resolved++
			if ack.Duplicate {
				dups++
			} else {
				accepted++
			}
		case err := <-f.Err():
			resolved++
			if mayBeStored(err) {
				unconfirmed++
			}
			if pubErr == nil {
				pubErr = err
			}
		case <-ctx.Done():
			if pubErr == nil {
				pubErr = fmt.Errorf("waiting for acknowledgements: %w", ctx.Err())
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	// Published messages may still be resent by the library (no-responders retry) until their
	// futures resolve; only a fully resolved batch may hand its buffers back to the pool.
	*reuse = resolved == len(st.futures)
	// A message sent and never answered may be stored: the server can store it and the ack be
	// lost or late. Only the retry can tell (a duplicate then), so the answer must not call
	// such events refused.
	unconfirmed += len(st.futures) - resolved
	h.metrics.PublishDuration.Observe(h.cfg.Now().Sub(start).Seconds())
	if pubErr == nil {
		return accepted, dups, nil
	}
	if h.tracer != nil {
		span := trace.SpanFromContext(ctx)
		span.RecordError(pubErr)
		span.SetStatus(codes.Error, "publish failed")
	}
	aerr := classifyPublishError(pubErr)
	if accepted > 0 || dups > 0 {
		aerr.reason = metrics.ReasonPartialAccept
		aerr.body.Error += fmt.Sprintf("; %d events of this body were stored and %d were duplicates: retry the whole body, the stored ones will count as duplicates", accepted, dups)
		stored, repeated := accepted, dups // not the results, which the return below zeroes
		aerr.body.Accepted, aerr.body.Duplicates = &stored, &repeated
		h.metrics.EventsAccepted.Add(float64(accepted))
		h.metrics.EventsDuplicate.Add(float64(dups))
	}
	if unconfirmed > 0 {
		aerr.reason = metrics.ReasonPartialAccept
		aerr.body.Error += fmt.Sprintf("; %d events of this body were sent but not confirmed: they may be stored, and the retry will count those as duplicates", unconfirmed)
		aerr.body.Unconfirmed = &unconfirmed
	}
	return 0, 0, aerr
}

// mayBeStored tells a failed publish that may have reached the stream (no answer in time, a
// connection lost after sending) from one the stream refused or that never left.
func mayBeStored(err error) bool {
	var apiErr *jetstream.APIError
	return !errors.As(err, &apiErr) && !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrNoStreamResponse)
}

// JetStream error codes (nats-server errors.json) that mean "the stream is at its limits":
// JSStreamStoreFailedF carries "maximum messages exceeded", "maximum bytes exceeded" and
// "maximum messages per subject exceeded" under DiscardNew; JSInsufficientResourcesErr is the
// account or server running out of storage.
const (
	errCodeStoreFailed           jetstream.ErrorCode = 10077
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// classifyPublishError maps a publish failure to a 503 with the right hint.
func classifyPublishError(err error) *apiError {
	unavailable := func(msg string, retry time.Duration, reason string) *apiError {
		return &apiError{status: http.StatusServiceUnavailable, reason: reason, retryAfter: retry, err: err,
			body: errorBody{Error: msg}}
	}
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeInsufficientResources ||
		apiErr.ErrorCode == errCodeStoreFailed && strings.Contains(apiErr.Description, "exceeded")):
		return unavailable("the pipeline's queue is full ("+apiErr.Description+"); retry later", retryStreamFull, metrics.ReasonStreamFull)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return unavailable("the pipeline's stream does not exist: the operator has not provisioned it (see the FreightPipeline's QueueReady condition); nothing was stored, retry later", retryStreamFull, metrics.ReasonUnavailable)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return unavailable("ingestion is overloaded; retry later", retryUnavailable, metrics.ReasonUnavailable)
	}
	return unavailable("the queue is unavailable; retry later", retryUnavailable, metrics.ReasonUnavailable)
}

func formatRate(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
