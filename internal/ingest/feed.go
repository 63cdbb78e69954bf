package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
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

// feedDeadLetterBuffer bounds the dead letters the server sends a reader ahead of what it
// wrote: they are rare, and each carries the event it gave up.
const feedDeadLetterBuffer = 16

// feedID is a Last-Event-ID: where a reader is in each of the two streams the feed follows,
// the predictions bucket's and the output stream's (dead letters). The feed writes it
// PRED.DEAD, the stream sequence of the last prediction and of the last dead letter it sent the
// reader (0 for none yet).
type feedID struct {
	pred, dead uint64
	// resume is false without a Last-Event-ID: the feed starts with what comes next.
	resume bool
	// predOnly is an id of the form an older release sent, one prediction sequence with no
	// dead-letter position.
	predOnly bool
}

// maxFeedIDLen is two sequences of at most 20 digits and the dot.
const maxFeedIDLen = 41

// parseLastEventID reads the position a reader last received: PRED.DEAD, or PRED alone (the
// form of releases that sent predictions only), each decimal digits within uint64. Empty means
// "from now on".
func parseLastEventID(v string) (feedID, error) {
	if v == "" {
		return feedID{}, nil
	}
	if len(v) > maxFeedIDLen {
		return feedID{}, fmt.Errorf("Last-Event-ID %.24q… is longer than an id of this feed (%d characters at most)", v, maxFeedIDLen)
	}
	pred, dead, two := strings.Cut(v, ".")
	id := feedID{resume: true, predOnly: !two}
	var err error
	if id.pred, err = parseFeedSeq(v, "prediction", pred); err != nil {
		return feedID{}, err
	}
	if two {
		if id.dead, err = parseFeedSeq(v, "dead-letter", dead); err != nil {
			return feedID{}, err
		}
	}
	return id, nil
}

// parseFeedSeq reads the part of Last-Event-ID v that is the position in one stream.
func parseFeedSeq(v, stream, part string) (uint64, error) {
	if part == "" || len(part) > 20 || strings.IndexFunc(part, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("Last-Event-ID %q is not an id this feed sent: its %s position %q is not a sequence number (want PRED.DEAD, two of them)", v, stream, part)
	}
	seq, err := strconv.ParseUint(part, 10, 64)
	if err != nil || seq == ^uint64(0) {
		return 0, fmt.Errorf("Last-Event-ID %q is out of range: its %s position %s does not fit a stream sequence", v, stream, part)
	}
	return seq, nil
}

// feedStream is one of the streams the feed follows: the predictions bucket's, or the output
// stream's dead letters.
type feedStream struct {
	stream, filter string
	// event names its entries on the feed and in a gap event; noun in messages.
	event, noun string
	buffer      int
}

// feedStart reads where a reader's consumer of fs begins: after `after` when it resumes, else after
// the stream's last message, so that the reader's position is known before anything arrives
// (every event's id carries both positions). pos is that position; gap is set when what the
// reader would read next left the stream, or the stream is not the one it followed.
func (h *Handler) feedStart(ctx context.Context, fs feedStream, resume bool, after uint64) (start, pos uint64, gap *feedGap, _ error) {
	stream, err := h.js.Stream(ctx, fs.stream)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("feed: stream %s: %w", fs.stream, err)
	}
	st := stream.CachedInfo().State
	switch {
	case !resume:
		return st.LastSeq + 1, st.LastSeq, nil, nil
	case after == 0:
		return 1, 0, nil, nil
	}
	if gap = gapAfter(fs, after, st); gap != nil && gap.To == 0 {
		return 1, 0, gap, nil
	}
	return after + 1, after, gap, nil
}

// feedConsume follows fs from sequence start with an ordered consumer.
func (h *Handler) feedConsume(ctx context.Context, fs feedStream, start uint64) (jetstream.MessagesContext, error) {
	cons, err := h.js.OrderedConsumer(ctx, fs.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{fs.filter},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       start,
		InactiveThreshold: feedInactive,
	})
	if err != nil {
		return nil, fmt.Errorf("feed consumer of %s: %w", fs.stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(fs.buffer))
	if err != nil {
		return nil, fmt.Errorf("feed consumer of %s: %w", fs.stream, err)
	}
	return it, nil
}

// feed answers GET /v1/predictions:stream: the predictions and dead letters of this client
// (every client's with read-all) as server-sent events, each kind in the order its stream
// stored it, interleaved as they arrive, each with the reader's position in both streams as id.
// With Last-Event-ID (header, or lastEventId query for readers that cannot set headers) it
// resumes after that position, so that a reader that reconnects loses and repeats nothing;
// without, it starts with what is stored from now on.
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
	id, err := parseLastEventID(last)
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
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	t := h.cfg.Topology
	preds := feedStream{stream: t.BucketStream(), filter: t.PredictionKeySubject(">"), event: "prediction", noun: "predictions", buffer: feedBuffer}
	deads := feedStream{stream: t.OutputStream, filter: t.DeadLetterKeySubject(">"), event: "dead_letter", noun: "dead letters", buffer: feedDeadLetterBuffer}
	predStart, predPos, predGap, err := h.feedStart(ctx, preds, id.resume, id.pred)
	if err != nil {
		h.unavailable(ctx, w, err)
		return
	}
	// An id of the older form holds no dead-letter position: that reader never got dead
	// letters on the feed, and follows them by status if at all, so it gets those stored from
	// now on rather than the whole retention's again. "0" asks for everything retained, of
	// both kinds.
	deadResume := id.resume && (!id.predOnly || id.pred == 0)
	deadStart, deadPos, deadGap, err := h.feedStart(ctx, deads, deadResume, id.dead)
	if err != nil {
		h.unavailable(ctx, w, err)
		return
	}
	predIt, err := h.feedConsume(ctx, preds, predStart)
	if err != nil {
		h.unavailable(ctx, w, err)
		return
	}
	defer predIt.Stop()
	deadIt, err := h.feedConsume(ctx, deads, deadStart)
	if err != nil {
		h.unavailable(ctx, w, err)
		return
	}
	defer deadIt.Stop()
	rc := http.NewResponseController(w)
	// The server's read deadline would end the request (and so the feed) mid-stream; each
	// write gets a deadline of its own instead.
	_ = rc.SetReadDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: rc, pred: predPos, dead: deadPos}
	if !s.send([]byte(": feed of predictions and dead letters; resume with Last-Event-ID\n\n")) {
		return
	}
	for _, gap := range []*feedGap{predGap, deadGap} {
		if gap == nil {
			continue
		}
		data, _ := json.Marshal(gap)
		if !s.send(append(append([]byte("event: gap\ndata: "), data...), "\n\n"...)) {
			return
		}
	}
	h.metrics.FeedReaders.Inc()
	defer h.metrics.FeedReaders.Dec()
	// Dead letters have a goroutine of their own, so that one goes out as it is stored however
	// long the predictions' wait; the writer's lock orders the two.
	deadEnd := make(chan string, 1)
	go func() {
		defer cancel()
		deadEnd <- h.pumpDeadLetters(ctx, client, deadIt, s)
	}()
	reason := h.pump(ctx, client, predIt, s)
	cancel()
	// The response is written by no one once the handler returns.
	if dr := <-deadEnd; reason == "gone" {
		reason = dr
	}
	h.metrics.FeedClosed.WithLabelValues(reason).Inc()
}

// feedGap tells a resuming reader that entries stored after its Last-Event-ID are gone from
// their stream, so that it knows it missed some rather than believing it has them all.
type feedGap struct {
	Message string `json:"message"`
	// Of is the kind of entry missed: prediction or dead_letter.
	Of string `json:"of"`
	// From and To bound the sequences removed (To is 0 when the stream was created anew).
	From uint64 `json:"from"`
	To   uint64 `json:"to,omitempty"`
}

// gapAfter compares the sequence a reader resumes after with what fs's stream holds.
// Retention removes the oldest first, so the stream's first sequence past after+1 means those
// between were removed unread (of the output stream, not all of them need have been dead
// letters: undecodable events' are there too); a sequence beyond the last the stream ever gave
// means the stream is not the one the reader followed (created anew: the pipeline recreated,
// local mode on a new data directory), and starting after it would wait for the new stream to
// catch up while its entries went by unseen.
func gapAfter(fs feedStream, after uint64, st jetstream.StreamState) *feedGap {
	switch {
	case after > st.LastSeq:
		return &feedGap{From: after + 1, Of: fs.event, Message: fmt.Sprintf("Last-Event-ID's %s position %d is beyond the newest the store has held (%d): the store was created anew since "+
			"(the pipeline deleted and created again, or local mode started on a new data directory) and what this reader had not read of the old one is gone; "+
			"the feed starts again from the oldest of its %s retained", fs.event, after, st.LastSeq, fs.noun)}
	case st.FirstSeq > after+1:
		return &feedGap{From: after + 1, To: st.FirstSeq - 1, Of: fs.event, Message: fmt.Sprintf("the %s stored after %d up to %d left the store before this reader came back "+
			"(spec.output.predictionRetention): those of this client among them are not on the feed; it goes on with the oldest retained, %d", fs.noun, after, st.FirstSeq-1, st.FirstSeq)}
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
			if !s.flush() {
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
			s.closeWith(fmt.Sprintf("this reader is %d predictions behind, more than the feed keeps a reader for (%d); reconnect with Last-Event-ID %s to resume, or read by id with batchGet",
				meta.NumPending, h.cfg.FeedMaxLag, s.resumeAt(meta.Sequence.Stream-1)))
			return "lagging"
		}
		hd := msg.Headers()
		if hd.Get("KV-Operation") == "" && client.CanRead(hd.Get(queue.HeaderClient)) {
			if !s.prediction(meta.Sequence.Stream, msg.Data()) {
				return "gone"
			}
			unflushed++
		}
		// Flushed when the stream has nothing more for now (a lone prediction goes out at
		// once), or after a run of them; a burst goes out in a few writes, not one each.
		if unflushed > 0 && (meta.NumPending == 0 || unflushed >= feedFlushEvery) {
			if !s.flush() {
				return "gone"
			}
			unflushed = 0
		}
	}
}

// feedDeadLetter is a dead_letter event's data: the event's id and the status endpoint's
// deadLetter object.
type feedDeadLetter struct {
	ID string `json:"id"`
	deadLetter
}

// pumpDeadLetters writes the dead letters client may read, each at once, until the reader goes
// or a write fails. Dead letters are few: no lag bound of their own; a reader that does not
// read holds up the consumer's pulls, which the server bounds to feedDeadLetterBuffer.
func (h *Handler) pumpDeadLetters(ctx context.Context, client httpauth.Identity, it jetstream.MessagesContext, s *sseWriter) (reason string) {
	defer context.AfterFunc(ctx, it.Stop)()
	prefix := h.cfg.Topology.DeadLetterKeySubject("")
	for {
		msg, err := it.Next()
		switch {
		case ctx.Err() != nil:
			return "gone"
		case err != nil:
			s.closeWith("the dead letters' store is unavailable; reconnect with Last-Event-ID to resume")
			h.log.WarnContext(ctx, "feed: reading the dead letters", "error", err)
			return "unavailable"
		}
		meta, err := msg.Metadata()
		if err != nil || !client.CanRead(msg.Headers().Get(queue.HeaderClient)) {
			continue
		}
		data, err := json.Marshal(feedDeadLetter{ID: strings.TrimPrefix(msg.Subject(), prefix), deadLetter: deadLetterOf(msg.Headers())})
		if err != nil {
			continue
		}
		if !s.deadLetter(meta.Sequence.Stream, data) {
			return "gone"
		}
	}
}

var heartbeat = []byte(": heartbeat\n\n")

// sseWriter writes server-sent events, each within feedWriteTimeout. Predictions and dead
// letters are written from two goroutines: mu orders them, and keeps the positions each id
// carries those of what was written before it.
type sseWriter struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf []byte
	// pred and dead are the stream sequences of the last prediction and dead letter written
	// (or where the reader started).
	pred, dead uint64
}

// send writes b and flushes it.
func (s *sseWriter) send(b []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(b) && s.rc.Flush() == nil
}

// flush sends what was written.
func (s *sseWriter) flush() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rc.Flush() == nil
}

// write writes b, which reaches the reader when the response's buffer fills or is flushed.
func (s *sseWriter) write(b []byte) bool {
	_ = s.rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
	_, err := s.w.Write(b)
	return err == nil
}

// prediction writes the prediction of stream sequence seq, unflushed.
func (s *sseWriter) prediction(seq uint64, data []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pred = seq
	return s.event("prediction", data)
}

// deadLetter writes and flushes the dead letter of stream sequence seq.
func (s *sseWriter) deadLetter(seq uint64, data []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = seq
	return s.event("dead_letter", data) && s.rc.Flush() == nil
}

// resumeAt is the Last-Event-ID that resumes after prediction pred and the dead letters sent.
func (s *sseWriter) resumeAt(pred uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(appendFeedID(nil, pred, s.dead))
}

func appendFeedID(b []byte, pred, dead uint64) []byte {
	b = strconv.AppendUint(b, pred, 10)
	b = append(b, '.')
	return strconv.AppendUint(b, dead, 10)
}

// event writes one event with the current positions as id; data lines are split at newlines,
// as the format requires (records are compact JSON and have none). s.mu is held.
func (s *sseWriter) event(name string, data []byte) bool {
	b := append(s.buf[:0], "id: "...)
	b = appendFeedID(b, s.pred, s.dead)
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
