package httpbody

import (
	"math"
	"runtime/debug"
	"sync/atomic"
)

// DefaultBudget is the body budget of a process without a memory limit (GOMEMLIMIT): an eighth
// of the pod limit the samples give (256 MiB).
const DefaultBudget = 32 << 20

// Budget bounds the bytes of request bodies a process holds in memory at once, across all
// requests. A body takes from it as its buffer grows and gives back once handled; when the
// budget is spent, the request gets ErrBusy (a 503) instead of the process growing towards its
// memory limit. The zero of a *Budget (nil) has no bound.
type Budget struct {
	size int64
	used atomic.Int64
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget { return &Budget{size: size} }

// BudgetFromMemoryLimit sizes a budget as an eighth of the Go memory limit (GOMEMLIMIT, which
// pods set from their memory limit), or DefaultBudget when there is none: a body costs about as
// much again once decoded and once more encoded, the collector needs room for the garbage of
// the last bodies, and the rest of the process needs room too. With an eighth, 100 bodies of
// 3.7 MB at once peaked at about 125 MiB of heap under a 230 MiB limit (a quarter: 221 MiB).
func BudgetFromMemoryLimit() *Budget {
	limit := debug.SetMemoryLimit(-1)
	if limit <= 0 || limit == math.MaxInt64 {
		return NewBudget(DefaultBudget)
	}
	return NewBudget(limit / 8)
}

// Size is the budget in bytes.
func (b *Budget) Size() int64 {
	if b == nil {
		return math.MaxInt64
	}
	return b.size
}

// InUse is how many bytes are lent out now.
func (b *Budget) InUse() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Take lends n bytes for a request whose body arrived whole by other means (a gRPC message),
// and tells whether the budget had them; give them back with Release.
func (b *Budget) Take(n int64) bool { return b.take(n) }

func (b *Budget) take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.size {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives back what Read lent.
func (b *Budget) Release(held int64) {
	if b != nil && held > 0 {
		b.used.Add(-held)
	}
}
