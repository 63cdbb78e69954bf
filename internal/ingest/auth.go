package ingest

import (
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
)

// retryAfterSeconds renders d as a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return fmt.Sprint(max(1, int(math.Ceil(d.Seconds()))))
}

// authenticate checks the request's bearer token and returns who presents it; without a tokens
// file every request is the anonymous client, which reads everything.
func (h *Handler) authenticate(r *http.Request) (httpauth.Identity, *apiError) {
	if h.tokens == nil {
		return httpauth.Anonymous, nil
	}
	id, ok := h.tokens.Authenticate(r)
	if !ok {
		return httpauth.Identity{}, &apiError{status: http.StatusUnauthorized, reason: metrics.ReasonUnauthorized,
			body: errorBody{Error: "missing or unknown bearer token"}}
	}
	return id, nil
}
