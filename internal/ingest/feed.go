package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/queue"
)

// Defaults of the push feed (GET /v1/predictions:stream).
const (
	// DefaultFeedReaders bounds the feed's readers per pod: each holds a consumer on the
	// server and a goroutine here.
	DefaultFeedReaders = 256
	// DefaultFeedMaxLag is how many predictions a reader may be behind the bucket's newest
	// before the feed closes it: a reader that slow is better served by resuming from where it
	// is (Last-Event-ID) or by batchGet than by a consumer the server keeps for it.
	DefaultFeedMaxLag = 100_000
	// DefaultFeedHeartbeat is how often an idle feed sends a comment, so that proxies and the
	// reader see the connection alive.
	DefaultFeedHeartbeat = 15 * time.Second
	// feedBuffer bounds the predictions the server sends a reader ahead of what it wrote to
	// the connection: the flow control of the feed (a pull consumer gets no more than asked).
	feedBuffer = 256
	// feedCoalesce is how long the feed waits for a next prediction before it flushes those it
	// wrote, should the stream's count of what is pending be stale.
	feedCoalesce = time.Millisecond
	// feedFlushEvery flushes a long burst at least every this many predictions.
	feedFlushEvery = 64
	// feedWriteTimeout bounds one write to a reader: a connection that takes longer is closed.
	feedWriteTimeout = 30 * time.Second
	// feedInactive is how long the server keeps a reader's consumer once the pod stops asking
	// (the pod died): the consumer is memory on the server.
	feedInactive = 30 * time.Second
)

// parseLastEventID reads the stream sequence a reader last received: decimal digits, at most
// 20 of them, within uint64. Empty means "from now on".
func parseLastEventID(v string) (seq uint64, set bool, _ error) {
	if v == "" {
		return 0, false, nil
	}
	if len(v) > 20 {
		return 0, false, fmt.Errorf("Last-Event-ID %.24q… is not a sequence number", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false, fmt.Errorf("Last-Event-ID %q is not a sequence number (the id: of an event this feed sent)", v)
		}
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	if err != nil || seq == ^uint64(0) {
		return 0, false, fmt.Errorf("Last-Event-ID %q is out of range", v)
	}
	return seq, true, nil
}

// feed answers GET /v1/predictions:stream: the predictions of this client (every client's with
// read-all) as server-sent events, in the order the bucket stored them, each with its stream
// sequence as id. With Last-Event-ID (header, or lastEventId query for readers that cannot set
// headers) it resumes after that sequence, so that a reader that reconnects loses and repeats
// nothing; without, it starts with the predictions stored from now on.
func (h *Handler) feed(w http.ResponseWriter, r *http.Request) {
	client, aerr := h.authenticate(r)
	if aerr != nil {
		h.fail(r.Context(), w, aerr)
		return
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	after, resume, err := parseLastEventID(last)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: "Last-Event-ID"})
		return
	}
	select {
	case h.feedSlots <- struct{}{}:
		defer func() { <-h.feedSlots }()
	default:
		w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: fmt.Sprintf("this pod serves as many feed readers as it may (%d); retry later, or on another pod", cap(h.feedSlots))})
		return
	}
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{h.cfg.Topology.PredictionKeySubject(">")},
		DeliverPolicy:     jetstream.DeliverNewPolicy,
		InactiveThreshold: feedInactive,
	}
	ctx := r.Context()
	var gap *feedGap
	if resume {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
		if after > 0 {
			stream, err := h.js.Stream(ctx, h.cfg.Topology.BucketStream())
			if err != nil {
				h.unavailable(ctx, w, fmt.Errorf("feed: the predictions store: %w", err))
				return
			}
			if gap = gapAfter(after, stream.CachedInfo().State); gap != nil && gap.To == 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverAllPolicy, 0
			}
		}
	}
	cons, err := h.js.OrderedConsumer(ctx, h.cfg.Topology.BucketStream(), cfg)
	if err != nil {
		h.unavailable(ctx, w, fmt.Errorf("feed consumer: %w", err))
		return
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(feedBuffer))
	if err != nil {
		h.unavailable(ctx, w, fmt.Errorf("feed consumer: %w", err))
		return
	}
	defer it.Stop()
	rc := http.NewResponseController(w)
	// The server's read deadline would end the request (and so the feed) mid-stream; each
	// write gets a deadline of its own instead.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: rc}
	if !s.send([]byte(": feed of predictions; resume with Last-Event-ID\n\n")) {
		return
	}
	if gap != nil {
		data, _ := json.Marshal(gap)
		if !s.send(append(append([]byte("event: gap\ndata: "), data...), "\n\n"...)) {
			return
		}
	}
	h.metrics.FeedReaders.Inc()
	defer h.metrics.FeedReaders.Dec()
	h.metrics.FeedClosed.WithLabelValues(h.pump(ctx, client, it, s)).Inc()
}

// feedGap tells a resuming reader that predictions stored after its Last-Event-ID are gone
// from the store, so that it knows it missed some rather than believing it has them all.
type feedGap struct {
	Message string `json:"message"`
	// From and To bound the sequences removed (To is 0 when the store was created anew).
	From uint64 `json:"from"`
	To   uint64 `json:"to,omitempty"`
}

// gapAfter compares the sequence a reader resumes after with what the bucket's stream holds.
// Retention removes the oldest predictions first, so the stream's first sequence past after+1
// means those between were removed unread; a sequence beyond the last the stream ever gave
// means the stream is not the one the reader followed (created anew: the pipeline recreated,
// local mode on a new data directory), and starting after it would wait for the new stream to
// catch up while its predictions went by unseen.
func gapAfter(after uint64, st jetstream.StreamState) *feedGap {
	switch {
	case after > st.LastSeq:
		return &feedGap{From: after + 1, Message: fmt.Sprintf("Last-Event-ID %d is beyond the newest prediction the store has held (%d): the store was created anew since "+
			"(the pipeline deleted and created again, or local mode started on a new data directory) and what this reader had not read of the old one is gone; "+
			"the feed starts again from the oldest prediction retained", after, st.LastSeq)}
	case st.FirstSeq > after+1:
		return &feedGap{From: after + 1, To: st.FirstSeq - 1, Message: fmt.Sprintf("the predictions stored after %d up to %d left the store before this reader came back "+
			"(spec.output.predictionRetention): those of this client among them are not on the feed; it goes on with the oldest retained, %d", after, st.FirstSeq-1, st.FirstSeq)}
	}
	return nil
}

// pump writes the predictions client may read until the reader goes, falls too far behind, or
// a write fails.
func (h *Handler) pump(ctx context.Context, client httpauth.Identity, it jetstream.MessagesContext, s *sseWriter) (reason string) {
	// Next waits at most a heartbeat; the reader leaving stops the iterator, which ends it.
	defer context.AfterFunc(ctx, it.Stop)()
	unflushed := 0
	for {
		wait := h.cfg.FeedHeartbeat
		if unflushed > 0 {
			wait = feedCoalesce
		}
		msg, err := it.Next(jetstream.NextMaxWait(wait))
		switch {
		case ctx.Err() != nil:
			return "gone"
		case errors.Is(err, nats.ErrTimeout) && unflushed > 0:
			if s.rc.Flush() != nil {
				return "gone"
			}
			unflushed = 0
			continue
		case errors.Is(err, nats.ErrTimeout):
			if !s.send(heartbeat) {
				return "gone"
			}
			continue
		case err != nil:
			s.closeWith("the predictions store is unavailable; reconnect with Last-Event-ID to resume")
			h.log.WarnContext(ctx, "feed: reading the predictions", "error", err)
			return "unavailable"
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		if meta.NumPending > uint64(h.cfg.FeedMaxLag) {
			s.closeWith(fmt.Sprintf("this reader is %d predictions behind, more than the feed keeps a reader for (%d); reconnect with Last-Event-ID %d to resume, or read by id with batchGet",
				meta.NumPending, h.cfg.FeedMaxLag, meta.Sequence.Stream-1))
			return "lagging"
		}
		hd := msg.Headers()
		if hd.Get("KV-Operation") == "" && client.CanRead(hd.Get(queue.HeaderClient)) {
			if !s.event(meta.Sequence.Stream, "prediction", msg.Data()) {
				return "gone"
			}
			unflushed++
		}
		// Flushed when the stream has nothing more for now (a lone prediction goes out at
		// once), or after a run of them; a burst goes out in a few writes, not one each.
		if unflushed > 0 && (meta.NumPending == 0 || unflushed >= feedFlushEvery) {
			if s.rc.Flush() != nil {
				return "gone"
			}
			unflushed = 0
		}
	}
}

var heartbeat = []byte(": heartbeat\n\n")

// sseWriter writes server-sent events, each flushed at once and within feedWriteTimeout.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
}

// send writes b and flushes it.
func (s *sseWriter) send(b []byte) bool {
	return s.write(b) && s.rc.Flush() == nil
}

// write writes b, which reaches the reader when the response's buffer fills or is flushed.
func (s *sseWriter) write(b []byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
	_, err := s.w.Write(b)
	return err == nil
}

// event writes one event, unflushed; data lines are split at newlines, as the format requires
// (records are compact JSON and have none).
func (s *sseWriter) event(id uint64, name string, data []byte) bool {
	b := append(s.buf[:0], "id: "...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, name...)
	b = append(b, '\n')
	for line := range bytes.Lines(data) {
		b = append(b, "data: "...)
		b = append(b, bytes.TrimRight(line, "\r\n")...)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	s.buf = b
	return s.write(b)
}

// closeWith ends the feed with an error event that says why, as JSON like every error answer.
func (s *sseWriter) closeWith(reason string) {
	data, _ := json.Marshal(errorBody{Error: reason})
	b := append([]byte("event: error\ndata: "), data...)
	s.send(append(b, "\n\n"...))
}
