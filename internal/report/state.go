package report

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// Values a dimension takes besides its expression's results.
const (
	// ValueOther holds the values beyond Reporting.MaxValues of a client and dimension.
	ValueOther = "other"
	// ValueUnknown is a dimension whose expression failed on the record (a missing field).
	ValueUnknown = "unknown"
)

// maxFolded bounds the distinct values remembered as folded into ValueOther per client and
// dimension; beyond it the count the API gives is a lower bound.
const maxFolded = 1 << 16

// maxShipmentBytes bounds the shipment JSON kept with a riskiest shipment.
const maxShipmentBytes = 8 << 10

// Record is one prediction as the aggregates count it.
type Record struct {
	Client      string
	ID          string
	PredictedAt time.Time
	// Outputs are the configured outputs' values, in Reporting.Outputs order; all finite.
	Outputs []float64
	// Dims are the dimensions' values, in Reporting.Dimensions order.
	Dims     []string
	Shipment json.RawMessage
}

// Agg is the summary of the values that fell into one bucket and dimension value.
type Agg struct {
	Count uint64
	// Above counts the first output's values at or above the threshold.
	Above uint64
	// Sums and Sketches are per output.
	Sums     []float64
	Sketches []Sketch
}

func newAgg(outputs int) *Agg {
	return &Agg{Sums: make([]float64, outputs), Sketches: make([]Sketch, outputs)}
}

func (a *Agg) add(outputs []float64, threshold float64) {
	a.Count++
	if outputs[0] >= threshold {
		a.Above++
	}
	for o, x := range outputs {
		a.Sums[o] += x
		a.Sketches[o].Add(x)
	}
}

func (a *Agg) merge(o *Agg) {
	a.Count += o.Count
	a.Above += o.Above
	for i := range a.Sums {
		a.Sums[i] += o.Sums[i]
		a.Sketches[i].Merge(&o.Sketches[i])
	}
}

// Shipment is one of the riskiest shipments of a bucket.
type Shipment struct {
	ID          string            `json:"id"`
	Risk        float64           `json:"risk"`
	PredictedAt time.Time         `json:"predictedAt"`
	Dimensions  map[string]string `json:"dimensions"`
	Shipment    json.RawMessage   `json:"shipment,omitempty"`
}

// riskier orders shipments by risk, highest first, then by id, so that the order and what a
// full list keeps do not depend on arrival order among equals.
func riskier(a, b Shipment) int {
	if c := cmp.Compare(b.Risk, a.Risk); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// clientBucket is one client's aggregates in one bucket: per dimension, per value.
type clientBucket struct {
	dims []map[string]*Agg
	// top is the riskiest shipments, riskiest first (the finest tier only).
	top []Shipment
}

type tier struct {
	width, retention int64 // seconds
	buckets          map[int64]map[string]*clientBucket
	// oldest is the start of the oldest bucket, so that evict looks at the buckets only when
	// one is due.
	oldest int64
	// coarse is the same aggregates merged over coarseFactor buckets (a day of hours), so that
	// a 90-day query merges 90 entries per value and the edges, not 2160. A coarse bucket
	// counts exactly what its buckets count until the first of them is evicted (intact); it
	// is kept until the last of them is. It is derived: snapshots leave it out, restore
	// rebuilds it.
	coarse      map[int64]map[string]*clientBucket
	coarseWidth int64
}

// coarseFactor is how many buckets of a tier a coarse bucket holds.
const coarseFactor = 24

// intact reports whether none of coarse bucket start's buckets was evicted at newest: they go
// oldest first, so whether its first one is still due to be kept.
func (t *tier) intact(start, newest int64) bool { return start+t.width > newest-t.retention }

// bucketAt is the client's bucket at start of level, created empty when missing.
func bucketAt(level map[int64]map[string]*clientBucket, start int64, client string, dims int) *clientBucket {
	clients := level[start]
	if clients == nil {
		clients = map[string]*clientBucket{}
		level[start] = clients
	}
	cb := clients[client]
	if cb == nil {
		cb = &clientBucket{dims: make([]map[string]*Agg, dims)}
		for i := range cb.dims {
			cb.dims[i] = map[string]*Agg{}
		}
		clients[client] = cb
	}
	return cb
}

// valueSet tracks one client's values of one dimension: how many (tier, bucket) entries each
// kept value has, so that a value leaves the set when its last bucket is evicted; and the values
// folded into ValueOther.
type valueSet struct {
	kept   map[string]int
	folded map[string]struct{}
}

// Counters are the records the state could not count as they came.
type Counters struct {
	Applied uint64
	// Malformed records (undecodable, or without a finite value of a configured output) are
	// skipped.
	Malformed uint64
	// DimensionErrors counts dimension values that are ValueUnknown because the expression
	// failed on the record.
	DimensionErrors uint64
	// Late counts (record, tier) pairs older than the tier's retention when they came.
	Late uint64
	// Folded counts records whose dimension value went to ValueOther.
	Folded uint64
}

// State is the aggregates: per client, tier, bucket start, dimension and value. It is not safe
// for concurrent use; the consumer and the API share it under a lock (Service). Retention is
// measured from the newest predictedAt seen, not the clock, so that replaying the same records
// gives the same state.
type State struct {
	cfg    pipelineconfig.Reporting
	tiers  []*tier
	values map[string][]*valueSet // client -> per dimension
	// LastSeq is the stream sequence of the last record applied.
	LastSeq uint64
	// Newest is the newest predictedAt applied, Unix seconds.
	Newest   int64
	Counters Counters
}

// NewState is an empty state for cfg, which must be valid.
func NewState(cfg pipelineconfig.Reporting) *State {
	s := &State{cfg: cfg, values: map[string][]*valueSet{}}
	for _, t := range cfg.Tiers() {
		w := int64(t.Width / time.Second)
		s.tiers = append(s.tiers, &tier{width: w, retention: int64(t.Retention / time.Second),
			buckets: map[int64]map[string]*clientBucket{}, coarse: map[int64]map[string]*clientBucket{}, coarseWidth: w * coarseFactor})
	}
	return s
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Apply counts r, the record at stream sequence seq. Records at or below LastSeq were counted
// already and are ignored: this is what makes a replay after a restart count nothing twice.
func (s *State) Apply(seq uint64, r *Record) {
	if seq <= s.LastSeq {
		return
	}
	s.LastSeq = seq
	s.Counters.Applied++
	at := r.PredictedAt.Unix()
	s.Newest = max(s.Newest, at)
	vs := s.valueSets(r.Client)
	dims := s.resolve(vs, r.Dims)
	for ti, t := range s.tiers {
		start := floorDiv(at, t.width) * t.width
		if start+t.width <= s.Newest-t.retention {
			s.Counters.Late++
			continue
		}
		if _, ok := t.buckets[start]; !ok && (len(t.buckets) == 0 || start < t.oldest) {
			t.oldest = start
		}
		cb := bucketAt(t.buckets, start, r.Client, len(dims))
		coarse := bucketAt(t.coarse, floorDiv(at, t.coarseWidth)*t.coarseWidth, r.Client, len(dims))
		for d, v := range dims {
			a := cb.dims[d][v]
			if a == nil {
				a = newAgg(len(s.cfg.Outputs))
				cb.dims[d][v] = a
				if v != ValueOther {
					vs[d].kept[v]++
				}
			}
			a.add(r.Outputs, s.cfg.Threshold)
			c := coarse.dims[d][v]
			if c == nil {
				c = newAgg(len(s.cfg.Outputs))
				coarse.dims[d][v] = c
			}
			c.add(r.Outputs, s.cfg.Threshold)
		}
		if ti == 0 && s.cfg.TopShipments > 0 {
			cb.top = s.keepTop(cb.top, r, dims)
		}
	}
	s.evict()
}

func (s *State) valueSets(client string) []*valueSet {
	vs := s.values[client]
	if vs == nil {
		vs = make([]*valueSet, len(s.cfg.Dimensions))
		for i := range vs {
			vs[i] = &valueSet{kept: map[string]int{}, folded: map[string]struct{}{}}
		}
		s.values[client] = vs
	}
	return vs
}

// resolve maps each dimension value to itself, or to ValueOther once the client's dimension
// has MaxValues values.
func (s *State) resolve(vs []*valueSet, values []string) []string {
	out := make([]string, len(values))
	for d, v := range values {
		_, kept := vs[d].kept[v]
		if kept || v == ValueOther || len(vs[d].kept) < s.cfg.MaxValues {
			out[d] = v
			continue
		}
		out[d] = ValueOther
		s.Counters.Folded++
		if len(vs[d].folded) < maxFolded {
			vs[d].folded[v] = struct{}{}
		}
	}
	return out
}

func (s *State) keepTop(top []Shipment, r *Record, dims []string) []Shipment {
	sh := Shipment{ID: r.ID, Risk: r.Outputs[0], PredictedAt: r.PredictedAt.UTC(), Dimensions: make(map[string]string, len(dims))}
	if len(top) == s.cfg.TopShipments && riskier(sh, top[len(top)-1]) >= 0 {
		return top
	}
	for i, d := range s.cfg.Dimensions {
		sh.Dimensions[d.Name] = dims[i]
	}
	if len(r.Shipment) <= maxShipmentBytes {
		sh.Shipment = slices.Clone(r.Shipment)
	}
	at, _ := slices.BinarySearchFunc(top, sh, riskier)
	top = slices.Insert(top, at, sh)
	if len(top) > s.cfg.TopShipments {
		top = top[:s.cfg.TopShipments]
	}
	return top
}

// evict drops the buckets that ended more than their tier's retention before Newest, and their
// values from the value sets.
func (s *State) evict() {
	for _, t := range s.tiers {
		if len(t.buckets) == 0 || t.oldest+t.width > s.Newest-t.retention {
			continue
		}
		oldest := int64(math.MaxInt64)
		for start, clients := range t.buckets {
			if start+t.width > s.Newest-t.retention {
				oldest = min(oldest, start)
				continue
			}
			for client, cb := range clients {
				vs := s.values[client]
				for d, values := range cb.dims {
					for v := range values {
						if v == ValueOther {
							continue
						}
						if vs[d].kept[v]--; vs[d].kept[v] <= 0 {
							delete(vs[d].kept, v)
						}
					}
				}
			}
			delete(t.buckets, start)
		}
		t.oldest = oldest
		for start := range t.coarse {
			if start+t.coarseWidth <= s.Newest-t.retention {
				delete(t.coarse, start)
			}
		}
	}
}

// buildCoarse derives the coarse buckets from the buckets (after a restore).
func (t *tier) buildCoarse(outputs int) {
	t.coarse = map[int64]map[string]*clientBucket{}
	for start, clients := range t.buckets {
		cstart := floorDiv(start, t.coarseWidth) * t.coarseWidth
		for client, cb := range clients {
			coarse := bucketAt(t.coarse, cstart, client, len(cb.dims))
			for d, values := range cb.dims {
				for v, a := range values {
					c := coarse.dims[d][v]
					if c == nil {
						c = newAgg(outputs)
						coarse.dims[d][v] = c
					}
					c.merge(a)
				}
			}
		}
	}
}

// Finite reports whether f is a number the aggregates can hold.
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
