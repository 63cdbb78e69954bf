package ingest

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/metrics"
)

// maxIdleLimiters is how many buckets may exist before idle ones are first swept. With tokens their
// number is bounded by the tokens file; keyed by client address it is not, hence the sweep.
const maxIdleLimiters = 10000

// limiters hold one token bucket per client: per bearer token, or per client address when the
// pipeline has no authentication (the connection's address; X-Forwarded-For is not trusted, a
// client could make up one per request).
type limiters struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*rate.Limiter
	// sweepAt is the map size that triggers the next sweep: twice what a sweep left, so that
	// many busy clients cost one scan per doubling, not one per newcomer.
	sweepAt int
}

func newLimiters(eventsPerSecond float64, burst int, now func() time.Time) *limiters {
	return &limiters{limit: rate.Limit(eventsPerSecond), burst: burst, now: now, m: map[string]*rate.Limiter{}, sweepAt: maxIdleLimiters}
}

// take charges n events to key's bucket. When the bucket lacks them it charges nothing and
// says how long until it holds them.
func (l *limiters) take(key string, n int) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	lim, found := l.m[key]
	if !found {
		if len(l.m) >= l.sweepAt {
			// A full bucket is the same as a new one: forgetting it changes nothing.
			for k, old := range l.m {
				if old.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
			l.sweepAt = max(maxIdleLimiters, 2*len(l.m))
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[key] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return false, 0
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

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

// rateKey names the client's bucket: its token's digest, or its address without tokens.
func rateKey(r *http.Request, token httpauth.Digest, authenticated bool) string {
	if authenticated {
		return string(token[:])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
