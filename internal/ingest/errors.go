package ingest

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/throttle"
)

// Retry-After hints: a NATS outage is usually a restart of seconds; a full stream drains only
// as fast as the inference pool works, so clients should back off longer.
const (
	retryUnavailable = 2 * time.Second
	retryStreamFull  = 5 * time.Second
)

// apiError is an answer other than 2xx.
type apiError struct {
	status     int
	reason     string // metrics label
	body       errorBody
	retryAfter time.Duration
	err        error // logged, not shown
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	// Index is the 0-based position of the offending event (array element or NDJSON line).
	Index *int `json:"index,omitempty"`
	// Field is the offending field, e.g. "features.port_congestion_index".
	Field string `json:"field,omitempty"`
	// Accepted and Duplicates tell, in a 503 after a partial publish, what was stored anyway.
	Accepted   *int `json:"accepted,omitempty"`
	Duplicates *int `json:"duplicates,omitempty"`
}

// fail answers e as JSON, with the headers its status calls for, and counts it.
func (h *Handler) fail(ctx context.Context, w http.ResponseWriter, e *apiError) {
	h.metrics.RequestsRejected.WithLabelValues(e.reason).Inc()
	if e.status >= 500 {
		// During an outage every request fails the same way; one line a second tells as much.
		if ok, suppressed := h.refusals.allow(h.cfg.Now()); ok {
			attrs := []any{"status", e.status, "reason", e.reason, "error", e.body.Error, "alikeSuppressed", suppressed}
			if e.err != nil {
				attrs = append(attrs, "cause", e.err.Error())
			}
			h.log.WarnContext(ctx, "refusing events", attrs...)
		}
	}
	switch e.status {
	case http.StatusUnauthorized:
		httpauth.SetChallenge(w.Header())
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfterSeconds(e.retryAfter))
	}
	writeJSON(w, e.status, e.body)
}

// logThrottle lets one log line through per second and counts the ones it held back.
type logThrottle struct {
	gate       throttle.Gate
	suppressed atomic.Int64
}

func (t *logThrottle) allow(now time.Time) (bool, int64) {
	if !t.gate.Allow(now, time.Second) {
		t.suppressed.Add(1)
		return false, 0
	}
	return true, t.suppressed.Swap(0)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	writeRaw(w, status, append(data, '\n'))
}

// jsonContentType is shared by every answer, so setting the header allocates nothing; net/http
// only reads it.
var jsonContentType = []string{"application/json"}

// writeRaw answers body, which ends with the newline every answer has.
func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
