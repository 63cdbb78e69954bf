package ingest

import (
	"context"
	"net/http"
)

// getPrediction answers GET /v1/predictions/{eventId} with the stored prediction record as it is,
// 404 until the worker has stored it, and for another client's event (httpauth.Identity.CanRead).
func (h *Handler) getPrediction(w http.ResponseWriter, r *http.Request) {
	client, id, ok := h.readRequest(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.PublishTimeout)
	defer cancel()
	record, err := h.prediction(ctx, client, id)
	switch {
	case err != nil:
		h.unavailable(ctx, w, err)
	case record == nil:
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no prediction for event " + id + " (yet)"})
	default:
		w.Header()["Content-Type"] = jsonContentType
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(record)
	}
}
