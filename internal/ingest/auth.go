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

// authenticate checks the request's bearer token and returns its digest, the client's rate-limit
// key; without a tokens file every request passes.
func (h *Handler) authenticate(r *http.Request) (httpauth.Digest, *apiError) {
	if h.tokens == nil {
		return httpauth.Digest{}, nil
	}
	key, ok := h.tokens.Authenticate(r)
	if !ok {
		return httpauth.Digest{}, &apiError{status: http.StatusUnauthorized, reason: metrics.ReasonUnauthorized,
			body: errorBody{Error: "missing or unknown bearer token"}}
	}
	return key, nil
}

// rateKey names the client's budget: its token's digest. Without tokens every client shares the
// pipeline's one budget: an address says little behind a Service or a Gateway, and a client
// could make up one per request with X-Forwarded-For.
func rateKey(token httpauth.Digest, authenticated bool) string {
	if authenticated {
		return string(token[:])
	}
	return ""
}
