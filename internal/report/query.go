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

// Summaries are dimension d's values over w, for output o, with how many distinct values the
// visible clients had folded into ValueOther (a lower bound past maxFolded).
func (s *State) Summaries(w Window, d, o int) (out []Summary, otherValues int) {
	merged := map[string]*Agg{}
	w.buckets(s, func(_ int64, clients map[string]*clientBucket) {
		for client, cb := range clients {
			if !w.Visible(client) {
				continue
			}
			for v, a := range cb.dims[d] {
				m := merged[v]
				if m == nil {
					m = newAgg(len(s.cfg.Outputs))
					merged[v] = m
				}
				m.merge(a)
			}
		}
	})
	for v, a := range merged {
		out = append(out, Summary{Value: v, Stats: summarize(a, o)})
	}
	for client, vs := range s.values {
		if w.Visible(client) {
			otherValues += len(vs[d].folded)
		}
	}
	return out, otherValues
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
