package ratelimit

import (
	"sync"
	"time"
)

// maxIdleBuckets is how many buckets may exist before idle ones are first swept. Keys are client
// names and bare tokens' digests, bounded by the tokens file, but a rotated token leaves its
// bucket behind.
const maxIdleBuckets = 10000

// Budget is a pipeline's rate limit as one pod holds it: a token bucket per key (a client,
// httpauth.Identity.Key) refilled at the pipeline's rate divided by the live pods, holding at most the
// pipeline's burst divided by them. Keys never share a bucket, so one client's spending costs
// another nothing.
//
// A request of n events is admitted when its bucket holds min(n, share of the burst) and then
// pays all n, which may leave the bucket in debt: a body larger than this pod's share of the
// burst (but within the pipeline's burst) is admitted from a full bucket and repaid over time,
// instead of never fitting. So over any span T one pod admits at most its rate·T plus the
// larger of its burst share and the largest body, and the pipeline, while its pods agree on how
// many they are, at most limit·T + burst when no body exceeds a pod's share.
type Budget struct {
	rate  float64 // events per second, the whole pipeline's
	burst float64
	pods  func() int
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*bucket
	// sweepAt is the map size that triggers the next sweep: twice what a sweep left.
	sweepAt int
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBudget returns the budget of a pipeline limited to eventsPerSecond with burst, shared with
// pods() pods (nil: this pod alone).
func NewBudget(eventsPerSecond, burst float64, pods func() int, now func() time.Time) *Budget {
	if pods == nil {
		pods = func() int { return 1 }
	}
	if now == nil {
		now = time.Now
	}
	return &Budget{rate: eventsPerSecond, burst: burst, pods: pods, now: now, m: map[string]*bucket{}, sweepAt: maxIdleBuckets}
}

// Rate and Burst are the pipeline's limit, as configured.
func (b *Budget) Rate() float64  { return b.rate }
func (b *Budget) Burst() float64 { return b.burst }

// Charge is what Take drew from a bucket, so that Refund can give it back.
type Charge struct {
	b *bucket
	n int
}

// Take charges n events to key's bucket. When the bucket lacks them it charges nothing and says
// how long until it holds them.
func (b *Budget) Take(key string, n int) (_ Charge, ok bool, retryAfter time.Duration) {
	now := b.now()
	pods := float64(max(1, b.pods()))
	rate, capacity := b.rate/pods, b.burst/pods
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.m[key]
	if bk == nil {
		if len(b.m) >= b.sweepAt {
			b.sweep(now, rate, capacity)
		}
		bk = &bucket{tokens: capacity, at: now}
		b.m[key] = bk
	}
	bk.refill(now, rate, capacity)
	need := min(float64(n), capacity)
	if bk.tokens < need {
		return Charge{}, false, time.Duration((need - bk.tokens) / rate * float64(time.Second))
	}
	bk.tokens -= float64(n)
	return Charge{b: bk, n: n}, true, 0
}

// Refund gives back what c paid for events the pipeline did not store: a client told "the queue
// is full, retry" must not also lose the budget of its retry.
func (b *Budget) Refund(c Charge, stored int) {
	if c.b == nil || stored >= c.n {
		return
	}
	b.mu.Lock()
	// The next refill caps the bucket at its capacity again.
	c.b.tokens += float64(c.n - max(stored, 0))
	b.mu.Unlock()
}

// refill adds what rate earned since the last look, up to capacity; a capacity that shrank (a
// pod joined) caps what the bucket held.
func (bk *bucket) refill(now time.Time, rate, capacity float64) {
	if d := now.Sub(bk.at); d > 0 {
		bk.tokens += d.Seconds() * rate
		bk.at = now
	}
	bk.tokens = min(bk.tokens, capacity)
}

// sweep forgets full buckets: a full bucket is the same as a new one.
func (b *Budget) sweep(now time.Time, rate, capacity float64) {
	for k, bk := range b.m {
		if bk.refill(now, rate, capacity); bk.tokens >= capacity {
			delete(b.m, k)
		}
	}
	b.sweepAt = max(maxIdleBuckets, 2*len(b.m))
}
