package ingest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// tokenCheckInterval is how often, at most, the tokens file is looked at for changes. A mounted
// Secret changes by an atomic symlink swap, so a stat sees it; once a second is cheap.
const tokenCheckInterval = time.Second

// digest is a token's SHA-256. Tokens are compared as digests, so every comparison takes the
// same time whatever the token lengths, and the process keeps no plain token after loading.
type digest [sha256.Size]byte

// tokens authenticates bearer tokens against a file of accepted tokens, one a line, re-read
// when it changes. Blank lines and lines starting with '#' are ignored.
type tokens struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	set       atomic.Pointer[[]digest]
	nextCheck atomic.Int64 // unix nanos

	mu      sync.Mutex // serialises reloads
	modTime time.Time
	size    int64
}

func newTokens(path string, log *slog.Logger, now func() time.Time) (*tokens, error) {
	t := &tokens{path: path, log: log, now: now}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the file if it changed since the last read.
func (t *tokens) reload() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	info, err := os.Stat(t.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	if t.set.Load() != nil && info.ModTime().Equal(t.modTime) && info.Size() == t.size {
		return nil
	}
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("tokens file: %w", err)
	}
	var set []digest
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		set = append(set, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tokens file %s: %w", t.path, err)
	}
	t.set.Store(&set)
	t.modTime, t.size = info.ModTime(), info.Size()
	t.log.Info("loaded bearer tokens", "file", t.path, "tokens", len(set))
	return nil
}

// maybeReload re-reads the file at most once per tokenCheckInterval. A file that cannot be read
// keeps the tokens loaded before: a Secret being rotated must not lock every client out.
func (t *tokens) maybeReload() {
	now := t.now().UnixNano()
	next := t.nextCheck.Load()
	if now < next || !t.nextCheck.CompareAndSwap(next, now+int64(tokenCheckInterval)) {
		return
	}
	if err := t.reload(); err != nil {
		t.log.Error("keeping the previous bearer tokens", "err", err)
	}
}

// authenticate returns the digest of the request's bearer token if it is accepted.
func (t *tokens) authenticate(r *http.Request) (digest, bool) {
	t.maybeReload()
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return digest{}, false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
	found := 0
	// Look at every token, so the time taken does not tell which one, or whether any, matched.
	for _, want := range *t.set.Load() {
		found |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return got, found == 1
}

// maxIdleLimiters is how many buckets may exist before idle ones are swept. With tokens their
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
}

func newLimiters(eventsPerSecond float64, burst int, now func() time.Time) *limiters {
	return &limiters{limit: rate.Limit(eventsPerSecond), burst: burst, now: now, m: map[string]*rate.Limiter{}}
}

// take charges n events to key's bucket. When the bucket lacks them it charges nothing and
// says how long until it holds them.
func (l *limiters) take(key string, n int) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	lim, found := l.m[key]
	if !found {
		if len(l.m) >= maxIdleLimiters {
			// A full bucket is the same as a new one: forgetting it changes nothing.
			for k, old := range l.m {
				if old.TokensAt(now) >= float64(l.burst) {
					delete(l.m, k)
				}
			}
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
