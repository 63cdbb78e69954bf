package ingest

import (
	"context"
	"errors"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
)

// getPrediction answers GET /v1/predictions/{eventId} with the stored prediction record as it is,
// 404 until the worker has stored it.
func (h *Handler) getPrediction(w http.ResponseWriter, r *http.Request) {
	if _, aerr := h.authenticate(r); aerr != nil {
		h.fail(r.Context(), w, aerr)
		return
	}
	id := r.PathValue("eventId")
	if err := event.ValidID(id); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error(), Field: "eventId"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	kv, err := h.bucket(ctx)
	if err != nil {
		h.log.WarnContext(ctx, "predictions bucket unavailable", "bucket", h.cfg.Topology.Bucket, "error", err)
		w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the predictions store is unavailable; retry later"})
		return
	}
	entry, err := kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no prediction for event " + id + " (yet)"})
		return
	case err != nil:
		h.log.WarnContext(ctx, "reading a prediction", "id", id, "error", err)
		w.Header().Set("Retry-After", retryAfterSeconds(retryUnavailable))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "the predictions store is unavailable; retry later"})
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(entry.Value())
}

// bucket returns the predictions bucket, looked up once and then kept: the lookup is a round
// trip, and the bucket outlives the connection's reconnects.
func (h *Handler) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	h.kvMu.Lock()
	defer h.kvMu.Unlock()
	if h.kv != nil {
		return h.kv, nil
	}
	kv, err := h.js.KeyValue(ctx, h.cfg.Topology.Bucket)
	if err != nil {
		return nil, err
	}
	h.kv = kv
	return kv, nil
}
