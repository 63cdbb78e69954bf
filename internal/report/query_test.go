package report

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// naiveSummaries is the query as it was before coarse buckets: merge every bucket of the window,
// then sort and cut. Summaries must answer exactly this.
func naiveSummaries(s *State, w Window, d, o int, key string, top int) (out []Summary, values, otherValues int) {
	t := s.tiers[w.Tier]
	from, to := w.From.Unix(), w.To.Unix()
	merged := map[string]*Agg{}
	for start, clients := range t.buckets {
		if start < from || start >= to {
			continue
		}
		w.values(clients, d, func(v string, a *Agg) {
			if merged[v] == nil {
				merged[v] = newAgg(len(s.cfg.Outputs))
			}
			merged[v].merge(a)
		})
	}
	for v, a := range merged {
		out = append(out, Summary{Value: v, Stats: summarize(a, o)})
	}
	Sort(out, key)
	if top > 0 && len(out) > top {
		out = out[:top]
	}
	for client, vs := range s.values {
		if w.Visible(client) {
			otherValues += len(vs[d].folded)
		}
	}
	return out, len(merged), otherValues
}

// TestSummariesEqualTheNaiveMerge applies random records (out of order, some late, with
// evictions that cut coarse buckets) and compares Summaries with the merge of every bucket over
// random windows whose edges cut coarse buckets, before and after a snapshot round trip. Outputs
// are multiples of 1/1024, so that sums are exact in any order and the answers must be equal,
// means included.
func TestSummariesEqualTheNaiveMerge(t *testing.T) {
	cfg := pipelineconfig.Reporting{
		Dimensions:   []pipelineconfig.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}, {Name: "carrier", Expression: "event.shipment.carrier"}},
		Outputs:      []pipelineconfig.ReportOutput{{Name: "risk"}, {Name: "risk", Index: 1}},
		Threshold:    0.5,
		Buckets:      []pipelineconfig.ReportBucket{{Width: "5m", Retention: "6h"}, {Width: "1h", Retention: "72h"}},
		MaxValues:    12,
		TopShipments: 2,
	}
	rng := rand.New(rand.NewPCG(19, 1))
	s := NewState(cfg)
	start := t0
	clients := []string{"acme", "globex", ""}
	dyadic := func() float64 { return float64(rng.IntN(1300)-200) / 1024 }
	var seq uint64
	check := func(s *State, label string) {
		t.Helper()
		newest := time.Unix(s.Newest, 0)
		for range 40 {
			// Windows from whole minutes anywhere in the last 4 days (past the hourly retention)
			// to a little past the newest record.
			from := newest.Add(-time.Duration(rng.IntN(4*24*60)) * time.Minute)
			to := from.Add(time.Duration(1+rng.IntN(4*24*60)) * time.Minute)
			vis := func(c string) bool { return true }
			if rng.IntN(2) == 0 {
				vis = func(c string) bool { return c == "acme" }
			}
			key := []string{"", "mean", "count", "aboveThreshold"}[rng.IntN(4)]
			top := []int{0, 1, 3, 20}[rng.IntN(4)]
			w := Window{Tier: rng.IntN(2), From: from, To: to, Visible: vis}
			d, o := rng.IntN(2), rng.IntN(2)
			got, n, other := s.Summaries(w, d, o, key, top)
			want, wn, wother := naiveSummaries(s, w, d, o, key, top)
			if len(got) == 0 && len(want) == 0 {
				got, want = nil, nil
			}
			if !reflect.DeepEqual(got, want) || n != wn || other != wother {
				t.Fatalf("%s, tier %d, dimension %d, output %d, %s to %s, sort %q top %d:\n got %d/%d %+v\nwant %d/%d %+v",
					label, w.Tier, d, o, from.Format(time.RFC3339), to.Format(time.RFC3339), key, top, n, other, got, wn, wother, want)
			}
		}
	}
	for round := range 12 {
		for range 400 {
			seq++
			// Mostly forward in time, some records up to 4 days back (late for a tier or both).
			at := start.Add(time.Duration(seq) * 90 * time.Second)
			if rng.IntN(10) == 0 {
				at = at.Add(-time.Duration(rng.IntN(4*24*60)) * time.Minute)
			}
			s.Apply(seq, &Record{Client: clients[rng.IntN(3)], ID: fmt.Sprint(seq), PredictedAt: at, Outputs: []float64{dyadic(), dyadic()},
				Dims: []string{fmt.Sprintf("lane-%d", rng.IntN(15)), []string{"maersk", "msc", "cma"}[rng.IntN(3)]}})
		}
		check(s, fmt.Sprintf("round %d", round))
		data, err := s.MarshalSnapshot()
		if err != nil {
			t.Fatal(err)
		}
		restored := NewState(cfg)
		if err := restored.RestoreSnapshot(data); err != nil {
			t.Fatal(err)
		}
		check(restored, fmt.Sprintf("round %d, restored", round))
		if round%3 == 2 {
			s = restored // carry on from the restored state: its coarse buckets were rebuilt
		}
	}
	if s.Counters.Late == 0 {
		t.Fatal("no record came late: the test does not reach eviction's edge cases")
	}
}
