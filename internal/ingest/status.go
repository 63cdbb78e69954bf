package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/httpbody"
	"github.com/freightcast/freightcast/internal/jsonscan"
	"github.com/freightcast/freightcast/internal/queue"
)

// MaxBatchGetIDs bounds the ids of one POST /v1/predictions:batchGet (400 above it): each id
// costs up to four reads of the streams.
const MaxBatchGetIDs = 100

// maxBatchGetBytes bounds a batchGet body: MaxBatchGetIDs ids of the longest kind, quoted and
// separated, with room for whitespace.
const maxBatchGetBytes = MaxBatchGetIDs*(event.MaxIDLen+4) + 1024

// The statuses of an event.
const (
	statusQueued       = "queued"
	statusPredicted    = "predicted"
	statusDeadLettered = "dead_lettered"
	statusNotFound     = "not_found"
)

// eventStatus is the answer of GET /v1/events/{id} and one result of a batchGet.
type eventStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Prediction is the prediction record, as GET /v1/predictions/{id} answers it.
	Prediction json.RawMessage `json:"prediction,omitempty"`
	// DeadLetter says why the event was given up.
	DeadLetter *deadLetter `json:"deadLetter,omitempty"`
	// Error says, in a batchGet result, why this id has no status (not_found).
	Error string `json:"error,omitempty"`
}

type deadLetter struct {
	// Reason is the dead-letter reason (the freightcast_dead_letters_total label).
	Reason string `json:"reason"`
	// Detail is the error that made it one.
	Detail string `json:"detail,omitempty"`
	// Deliveries is how many times the inference pool received the event; 0 when the dead
	// letter was written by a release that did not record it.
	Deliveries int `json:"deliveries"`
}

// deadLetterOf reads a dead letter from the headers the inference pool stores it with.
func deadLetterOf(h nats.Header) deadLetter {
	n, _ := strconv.Atoi(h.Get(queue.HeaderDeliveries))
	return deadLetter{Reason: h.Get(queue.HeaderDeadLetterReason), Detail: h.Get(queue.HeaderDeadLetterError), Deliveries: n}
}

// errStoreUnavailable is a read that failed for a reason other than absence.
var errStoreUnavailable = errors.New("the pipeline's streams are unavailable; retry later")

// streams caches the handles of the streams reads go to: each lookup is a round trip, and a
// stream outlives the connection's reconnects.
type streams struct {
	mu      sync.Mutex
	byName  map[string]jetstream.Stream
	lookups jetstream.JetStream
}

func (s *streams) get(ctx context.Context, name string) (jetstream.Stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.byName[name]; ok {
		return st, nil
	}
	st, err := s.lookups.Stream(ctx, name)
	if err != nil {
		return nil, err
	}
	if s.byName == nil {
		s.byName = map[string]jetstream.Stream{}
	}
	s.byName[name] = st
	return st, nil
}

// lastMsg reads the last message of subject in stream, or nil when there is none.
func (h *Handler) lastMsg(ctx context.Context, stream, subject string) (*jetstream.RawStreamMsg, error) {
	st, err := h.streams.get(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	msg, err := st.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s from stream %s: %w", subject, stream, err)
	}
	return msg, nil
}

// prediction reads the stored prediction record of id if client may read it: another client's
// prediction is absent, like one never stored, so that ids cannot be probed.
func (h *Handler) prediction(ctx context.Context, client httpauth.Identity, id string) ([]byte, error) {
	msg, err := h.lastMsg(ctx, h.cfg.Topology.BucketStream(), h.cfg.Topology.PredictionKeySubject(id))
	// A key-value delete or purge marker carries its operation in a header; the bucket denies
	// deletes, but a marker is no prediction.
	if err != nil || msg == nil || msg.Header.Get("KV-Operation") != "" || !client.CanRead(msg.Header.Get(queue.HeaderClient)) {
		return nil, err
	}
	return msg.Data, nil
}

// status reads where event id is, from the streams alone. The order matters: an event leaves the
// events stream only after its prediction or dead letter is stored, so reading the prediction
// again after finding the event gone closes the window in which it was predicted between the
// first two reads.
func (h *Handler) status(ctx context.Context, client httpauth.Identity, id string) (eventStatus, error) {
	t := h.cfg.Topology
	st := eventStatus{ID: id}
	var err error
	if st.Prediction, err = h.prediction(ctx, client, id); err != nil || st.Prediction != nil {
		st.Status = statusPredicted
		return st, err
	}
	queued, err := h.lastMsg(ctx, t.Stream, t.EventSubject(id))
	if err != nil {
		return st, err
	}
	if queued != nil {
		if !client.CanRead(queued.Header.Get(queue.HeaderClient)) {
			return h.notFound(id), nil
		}
		st.Status = statusQueued
		return st, nil
	}
	dead, err := h.lastMsg(ctx, t.OutputStream, t.DeadLetterKeySubject(id))
	if err != nil {
		return st, err
	}
	if dead != nil {
		if !client.CanRead(dead.Header.Get(queue.HeaderClient)) {
			return h.notFound(id), nil
		}
		st.Status = statusDeadLettered
		dl := deadLetterOf(dead.Header)
		st.DeadLetter = &dl
		return st, nil
	}
	if st.Prediction, err = h.prediction(ctx, client, id); err != nil || st.Prediction != nil {
		st.Status = statusPredicted
		return st, err
	}
	return h.notFound(id), nil
}

func (h *Handler) notFound(id string) eventStatus {
	return eventStatus{ID: id, Status: statusNotFound,
		Error: "no event " + id + " is known: never accepted, accepted by another client, or older than the pipeline's retention"}
}

// getEvent answers GET /v1/events/{eventId}: 200 with the event's status, 404 when it is unknown
// to this client.
func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request) {
	client, id, ok := h.readRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	st, err := h.status(ctx, client, id)
	switch {
	case err != nil:
		h.unavailable(ctx, w, err)
	case st.Status == statusNotFound:
		writeJSON(w, http.StatusNotFound, errorBody{Error: st.Error})
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// readRequest authenticates a read of one event and checks its id; it answers the error itself.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (httpauth.Identity, string, bool) {
	client, aerr := h.authenticate(r)
	if aerr != nil {
		h.fail(r.Context(), w, aerr)
		return client, "", false
	}
	id := r.PathValue("eventId")
	if err := event.ValidID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: "eventId"})
		return client, "", false
	}
	return client, id, true
}

// unavailable answers a read the streams could not serve.
func (h *Handler) unavailable(ctx context.Context, w http.ResponseWriter, err error) {
	h.log.WarnContext(ctx, "reading the pipeline's streams", "error", err)
	w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: errStoreUnavailable.Error()})
}

// batchGetAnswer lists one result per requested id, in the request's order.
type batchGetAnswer struct {
	Results []eventStatus `json:"results"`
}

// parseBatchGet reads a batchGet body: {"ids": [...]}, 1 to MaxBatchGetIDs valid ids, and
// nothing else, with the scanner the events are read with: a key given twice is refused, as in
// an event, rather than one of its values silently kept. The error names what is wrong, and the
// index of a bad id.
func parseBatchGet(body []byte) ([]string, *errorBody) {
	const form = `the body is not {"ids": ["id", ...]}: `
	var s jsonscan.Scanner
	s.Reset(body)
	s.SkipSpace()
	var ids []string
	seen := false
	var bad *errorBody
	err := s.Object(func(key []byte) error {
		if string(key) != "ids" {
			return fmt.Errorf("unknown key %q", key)
		}
		if seen {
			return errors.New(`the key "ids" is given twice`)
		}
		seen = true
		ids = []string{}
		return s.Array(func() error {
			s.SkipSpace()
			i := len(ids)
			id, err := s.String()
			if err != nil {
				bad = &errorBody{Error: "ids[" + strconv.Itoa(i) + "] is not a string: " + err.Error(), Field: "ids", Index: &i}
				return err
			}
			ids = append(ids, string(id))
			s.SkipSpace()
			return nil
		})
	})
	switch {
	case bad != nil:
		return nil, bad
	case err != nil:
		return nil, &errorBody{Error: form + err.Error()}
	}
	if s.SkipSpace(); !s.EOF() {
		return nil, &errorBody{Error: fmt.Sprintf("the body holds more than one JSON value: text follows the object at byte %d", s.Pos())}
	}
	switch {
	case !seen:
		return nil, &errorBody{Error: form + `no key "ids"`, Field: "ids"}
	case len(ids) == 0:
		return nil, &errorBody{Error: "ids is empty; name 1 to " + strconv.Itoa(MaxBatchGetIDs) + " event ids", Field: "ids"}
	case len(ids) > MaxBatchGetIDs:
		return nil, &errorBody{Error: fmt.Sprintf("ids holds %d ids, the limit is %d; split the request", len(ids), MaxBatchGetIDs), Field: "ids"}
	}
	for i, id := range ids {
		if err := event.ValidID(id); err != nil {
			return nil, &errorBody{Error: err.Error(), Field: "ids", Index: &i}
		}
	}
	return ids, nil
}

// batchGet answers POST /v1/predictions:batchGet: 200 with the status of each id, in order; an
// id unknown to this client is a not_found result, not a failure of the request.
func (h *Handler) batchGet(w http.ResponseWriter, r *http.Request) {
	client, aerr := h.authenticate(r)
	if aerr != nil {
		h.fail(r.Context(), w, aerr)
		return
	}
	if _, aerr := mediaType(r.Header.Get("Content-Type")); aerr != nil {
		h.fail(r.Context(), w, aerr)
		return
	}
	body, held, err := httpbody.Read(r.Body, nil, maxBatchGetBytes, h.cfg.BodyBudget)
	// The body's bytes count against the budget until nothing reads them any more: the ids
	// are copies.
	released := false
	release := func() {
		if !released {
			h.cfg.BodyBudget.Release(held)
			released = true
		}
	}
	defer release()
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		httpbody.Refuse(w, r, func() {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Error: fmt.Sprintf("the body is larger than %d bytes; name at most %d ids", maxBatchGetBytes, MaxBatchGetIDs)})
		})
		return
	case errors.Is(err, httpbody.ErrBusy):
		httpbody.Refuse(w, r, func() {
			w.Header().Set("Retry-After", retryAfterSeconds(retryBusy))
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "ingestion holds as many bodies as its memory allows; retry later"})
		})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "reading the body: " + err.Error()})
		return
	}
	ids, bad := parseBatchGet(body)
	release()
	if bad != nil {
		writeJSON(w, http.StatusBadRequest, bad)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	answer := batchGetAnswer{Results: make([]eventStatus, len(ids))}
	for i, id := range ids {
		if answer.Results[i], err = h.status(ctx, client, id); err != nil {
			h.unavailable(ctx, w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, answer)
}
