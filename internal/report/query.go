package report

import (
	"cmp"
	"slices"
	"time"
)

// Stats are the numbers of one summary or trend point.
type Stats struct {
	Count          uint64  `json:"count"`
	Mean           float64 `json:"mean"`
	P50            float64 `json:"p50"`
	P90            float64 `json:"p90"`
	P99            float64 `json:"p99"`
	AboveThreshold uint64  `json:"aboveThreshold"`
}

// Summary is one dimension value's aggregates over a window.
type Summary struct {
	Value string `json:"value"`
	Stats
}

// Point is one bucket of a trend.
type Point struct {
	Start time.Time `json:"start"`
	Stats
}

// Window selects what a query reads: a tier, the buckets that start in [From, To), and the
// clients visible to the caller.
type Window struct {
	Tier     int
	From, To time.Time
	Visible  func(client string) bool
}

func (w Window) buckets(s *State, fn func(start int64, clients map[string]*clientBucket)) {
	t := s.tiers[w.Tier]
	from, to := w.From.Unix(), w.To.Unix()
	// Walk bucket starts when the window has fewer of them than the tier has buckets: a 24 h
	// window of a 90-day tier reads 24 entries, not 2160.
	if n := (to - from) / t.width; n >= 0 && n < int64(len(t.buckets)) {
		for start := floorDiv(from+t.width-1, t.width) * t.width; start < to; start += t.width {
			if clients, ok := t.buckets[start]; ok {
				fn(start, clients)
			}
		}
		return
	}
	for start, clients := range t.buckets {
		if start >= from && start < to {
			fn(start, clients)
		}
	}
}

func summarize(a *Agg, output int) Stats {
	if a.Count == 0 {
		return Stats{}
	}
	sk := &a.Sketches[output]
	return Stats{Count: a.Count, Mean: a.Sums[output] / float64(a.Count), P50: sk.Quantile(0.5), P90: sk.Quantile(0.9),
		P99: sk.Quantile(0.99), AboveThreshold: a.Above}
}

// pieces calls fn with the clients of each entry that together count exactly the buckets of w:
// the coarse buckets all of whose buckets start in the window and none of which was evicted,
// and the buckets at the edges.
func (w Window) pieces(s *State, fn func(clients map[string]*clientBucket)) {
	t := s.tiers[w.Tier]
	if len(t.buckets) == 0 {
		return
	}
	from, to := w.From.Unix(), w.To.Unix()
	newestStart := floorDiv(s.Newest, t.width) * t.width
	// No bucket starts before oldest or after newestStart: the walk covers only those.
	lo, hi := max(from, t.oldest), min(to, newestStart+t.width)
	for start := floorDiv(lo+t.width-1, t.width) * t.width; start < hi; {
		c := floorDiv(start, t.coarseWidth) * t.coarseWidth
		if max(c, t.oldest) >= from && min(c+t.coarseWidth-t.width, newestStart) < to && t.intact(c, s.Newest) {
			if clients, ok := t.coarse[c]; ok {
				fn(clients)
			}
			start = c + t.coarseWidth
			continue
		}
		if clients, ok := t.buckets[start]; ok {
			fn(clients)
		}
		start += t.width
	}
}

// values calls fn with each value of dimension d of the visible clients.
func (w Window) values(clients map[string]*clientBucket, d int, fn func(v string, a *Agg)) {
	for client, cb := range clients {
		if w.Visible(client) {
			for v, a := range cb.dims[d] {
				fn(v, a)
			}
		}
	}
}

// Summaries are dimension d's values over w for output o, sorted by key (Sort) and the top
// first (all when top <= 0); with how many values there are in all, and how many distinct
// values the visible clients had folded into ValueOther (a lower bound past maxFolded).
// Counts and sums rank the values; only the values returned merge their sketches, in a second
// walk of the window.
func (s *State) Summaries(w Window, d, o int, key string, top int) (out []Summary, values, otherValues int) {
	type partial struct {
		count, above uint64
		sum          float64
	}
	merged := map[string]*partial{}
	w.pieces(s, func(clients map[string]*clientBucket) {
		w.values(clients, d, func(v string, a *Agg) {
			m := merged[v]
			if m == nil {
				m = &partial{}
				merged[v] = m
			}
			m.count += a.Count
			m.above += a.Above
			m.sum += a.Sums[o]
		})
	})
	out = make([]Summary, 0, len(merged))
	for v, m := range merged {
		out = append(out, Summary{Value: v, Stats: Stats{Count: m.count, Mean: m.sum / float64(m.count), AboveThreshold: m.above}})
	}
	Sort(out, key)
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	sketches := make([]Sketch, len(out))
	w.pieces(s, func(clients map[string]*clientBucket) {
		for client, cb := range clients {
			if !w.Visible(client) {
				continue
			}
			for i := range out {
				if a := cb.dims[d][out[i].Value]; a != nil {
					sketches[i].Merge(&a.Sketches[o])
				}
			}
		}
	})
	for i := range out {
		sk := &sketches[i]
		out[i].P50, out[i].P90, out[i].P99 = sk.Quantile(0.5), sk.Quantile(0.9), sk.Quantile(0.99)
	}
	for client, vs := range s.values {
		if w.Visible(client) {
			otherValues += len(vs[d].folded)
		}
	}
	return out, len(merged), otherValues
}

// Sort orders summaries by key (mean, count or aboveThreshold), highest first, then by value.
func Sort(out []Summary, key string) {
	slices.SortFunc(out, func(a, b Summary) int {
		var c int
		switch key {
		case "count":
			c = cmp.Compare(b.Count, a.Count)
		case "aboveThreshold":
			c = cmp.Compare(b.AboveThreshold, a.AboveThreshold)
		default:
			c = cmp.Compare(b.Mean, a.Mean)
		}
		if c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
}

// Trend is dimension d's value v bucket by bucket over w, oldest first; empty buckets are left
// out.
func (s *State) Trend(w Window, d, o int, v string) []Point {
	var out []Point
	w.buckets(s, func(start int64, clients map[string]*clientBucket) {
		m := newAgg(len(s.cfg.Outputs))
		for client, cb := range clients {
			if a := cb.dims[d][v]; a != nil && w.Visible(client) {
				m.merge(a)
			}
		}
		if m.Count == 0 {
			return
		}
		out = append(out, Point{Start: time.Unix(start, 0).UTC(), Stats: summarize(m, o)})
	})
	slices.SortFunc(out, func(a, b Point) int { return a.Start.Compare(b.Start) })
	return out
}

// Riskiest are the top riskiest shipments of the finest tier's buckets in w.
func (s *State) Riskiest(w Window, top int) []Shipment {
	w.Tier = 0
	var out []Shipment
	w.buckets(s, func(_ int64, clients map[string]*clientBucket) {
		for client, cb := range clients {
			if w.Visible(client) {
				out = append(out, cb.top...)
			}
		}
	})
	slices.SortFunc(out, riskier)
	return out[:min(top, len(out))]
}
