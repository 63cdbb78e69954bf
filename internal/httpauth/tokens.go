// Package httpauth authenticates HTTP requests by bearer token against a file of accepted
// tokens (a mounted Secret key), re-read when it changes, and tells who the caller is: each
// token names a client and its scopes (ParseLine has the format). Ingestion and model serving
// share it; model serving only asks whether a token is accepted.
package httpauth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/throttle"
)

// CheckInterval is how often, at most, the tokens file is looked at for changes. A mounted
// Secret changes by an atomic symlink swap, so a stat sees it; once a second is cheap.
const CheckInterval = time.Second

// Digest is a token's SHA-256. Tokens are compared as digests, so every comparison takes the
// same time whatever the token lengths, and the process keeps no plain token after loading.
type Digest [sha256.Size]byte

// Tokens authenticates bearer tokens against a file of accepted tokens, one a line (ParseLine),
// re-read when it changes. Blank lines and lines starting with '#' are ignored.
type Tokens struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	set       atomic.Pointer[[]entry]
	nextCheck throttle.Gate

	mu      sync.Mutex // serialises reloads
	modTime time.Time
	size    int64
}

// NewTokens loads the tokens file at path; it fails, naming the file, when the file cannot be
// read. An empty file is allowed (no token is accepted until one is added). log and now may
// be nil.
func NewTokens(path string, log *slog.Logger, now func() time.Time) (*Tokens, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{path: path, log: log, now: now}
	if err := t.reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// reload reads the file if it changed since the last read.
func (t *Tokens) reload() error {
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
	set, err := parseFile(data)
	if err != nil {
		return fmt.Errorf("tokens file %s: %w", t.path, err)
	}
	t.set.Store(&set)
	t.modTime, t.size = info.ModTime(), info.Size()
	t.log.Info("loaded bearer tokens", "file", t.path, "tokens", len(set))
	return nil
}

// entry is one accepted token: its digest and who presents it.
type entry struct {
	digest Digest
	id     Identity
}

// parseFile reads every line of a tokens file. One bad line refuses the whole file: accepting
// the rest would silently lock that client out, or give it another identity.
func parseFile(data []byte) ([]entry, error) {
	set := []entry{}
	seen := map[Digest]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		token, id, ok, err := ParseLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		d := sha256.Sum256([]byte(token))
		if id.Client == "" {
			id.token = d
		}
		if first, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: the same token as line %d; a token names one client", n, first)
		}
		seen[d] = n
		set = append(set, entry{digest: d, id: id})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return set, nil
}

// maybeReload re-reads the file at most once per CheckInterval. A file that cannot be read
// keeps the tokens loaded before: a Secret being rotated must not lock every client out.
func (t *Tokens) maybeReload() {
	if !t.nextCheck.Allow(t.now(), CheckInterval) {
		return
	}
	if err := t.reload(); err != nil {
		t.log.Error("keeping the previous bearer tokens", "err", err)
	}
}

// SetChallenge adds the WWW-Authenticate header that a 401 answer must carry (RFC 6750): it
// tells the client which scheme to retry with.
func SetChallenge(h http.Header) {
	h.Set("WWW-Authenticate", `Bearer realm="freightcast"`)
}

// Authenticate returns who presents the request's bearer token, if the token is accepted.
func (t *Tokens) Authenticate(r *http.Request) (Identity, bool) {
	return t.AuthenticateValue(r.Header.Get("Authorization"))
}

// AuthenticateValue returns who presents the bearer token in auth, the value of an
// Authorization header (or of gRPC's authorization metadata), if the token is accepted.
func (t *Tokens) AuthenticateValue(auth string) (Identity, bool) {
	t.maybeReload()
	const prefix = "Bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return Identity{}, false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(auth[len(prefix):])))
	set := *t.set.Load()
	found, at := 0, 0
	// Look at every token, so the time taken does not tell which one, or whether any, matched.
	for i, want := range set {
		eq := subtle.ConstantTimeCompare(got[:], want.digest[:])
		found |= eq
		at = subtle.ConstantTimeSelect(eq, i, at)
	}
	if found != 1 {
		return Identity{}, false
	}
	return set[at].id, true
}
