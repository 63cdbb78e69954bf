// Package throttle lets a cheap check through at most once per interval, without a lock, on
// paths that every request takes: reloading a mounted file, logging a refusal.
package throttle

import (
	"sync/atomic"
	"time"
)

// Gate opens at most once per interval. The zero value opens on the first call. It is safe for
// concurrent use: of callers racing at the same moment, one gets through.
type Gate struct {
	next atomic.Int64 // unix nanos
}

// Allow reports whether the caller, at now, is the one let through for this interval.
func (g *Gate) Allow(now time.Time, interval time.Duration) bool {
	t := now.UnixNano()
	next := g.next.Load()
	return t >= next && g.next.CompareAndSwap(next, t+int64(interval))
}
