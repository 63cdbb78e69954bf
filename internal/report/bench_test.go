package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// benchLanes is the lanes of the 90-day benchmark state, as the issue asks.
const benchLanes = 1000

func benchConfig() pipelineconfig.Reporting {
	cfg := testReporting()
	cfg.Dimensions = cfg.Dimensions[:1]
	cfg.MaxValues = 100_000
	return cfg
}

// ninetyDays builds, with Apply, the state of one record per lane and hour over 90 days.
func ninetyDays(lanes int) *State {
	s := NewState(benchConfig())
	rng := rand.New(rand.NewPCG(1, 1))
	start := t0.Add(-90 * 24 * time.Hour)
	var seq uint64
	for h := range 90 * 24 {
		at := start.Add(time.Duration(h) * time.Hour)
		for l := range lanes {
			seq++
			s.Apply(seq, &Record{Client: "acme", ID: fmt.Sprint(seq), PredictedAt: at, Outputs: []float64{rng.Float64()}, Dims: []string{fmt.Sprintf("lane-%04d", l)}})
		}
	}
	return s
}

// BenchmarkApply is records applied per second to a state (the consumer's work besides decoding).
func BenchmarkApply(b *testing.B) {
	s := NewState(testReporting())
	rng := rand.New(rand.NewPCG(2, 2))
	recs := make([]Record, 4096)
	for i := range recs {
		recs[i] = Record{Client: []string{"acme", "globex"}[i%2], ID: fmt.Sprint(i), Outputs: []float64{rng.Float64()},
			Dims: []string{fmt.Sprintf("lane-%03d", rng.IntN(1000)), []string{"maersk", "msc"}[i%2]}}
	}
	b.ResetTimer()
	for i := range b.N {
		r := &recs[i%len(recs)]
		r.PredictedAt = t0.Add(time.Duration(i) * time.Second)
		s.Apply(uint64(i+1), r)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkDecode is the record decoding and dimension evaluation per record: with the strict
// scanner (scan) and, as the anchor of the same run, with encoding/json (json).
func BenchmarkDecode(b *testing.B) {
	recs := generate(b, 9, 1000)
	for _, slow := range []bool{false, true} {
		b.Run(map[bool]string{false: "scan", true: "json"}[slow], func(b *testing.B) {
			dec, err := NewDecoder(testReporting())
			if err != nil {
				b.Fatal(err)
			}
			dec.slow = slow
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				_, _, _ = dec.Decode("acme", recs[i%len(recs)].data)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkReportAPI90Days queries a lane report (top 20 by mean) over the whole 90 days of
// hourly buckets over HTTP on a real listener, and reports the median and p99 of the requests
// and the state's heap. Each round of requests is followed by one call of the naive merge of
// every bucket (the query before coarse buckets, in process, without HTTP) as the anchor, and
// the two must answer the same.
func BenchmarkReportAPI90Days(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	st := ninetyDays(benchLanes)
	runtime.GC()
	runtime.ReadMemStats(&after)
	svc := &Service{cfg: benchConfig(), state: st}
	svc.ready.Store(true)
	mux := http.NewServeMux()
	NewAPI(svc, nil, func() time.Time { return t0 }).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	from, to := t0.Add(-90*24*time.Hour), t0
	url := srv.URL + "/v1/reports/lane?bucket=1h&top=20&from=" + from.Format(time.RFC3339) + "&to=" + to.Format(time.RFC3339)
	w := Window{Tier: 1, From: from, To: to, Visible: func(string) bool { return true }}
	durations := make([]time.Duration, 0, b.N)
	var naive []time.Duration
	b.ResetTimer()
	for i := range b.N {
		begin := time.Now()
		resp, err := http.Get(url)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", err, resp)
		}
		resp.Body.Close()
		durations = append(durations, time.Since(begin))
		if i%10 == 9 || i == b.N-1 {
			b.StopTimer()
			begin = time.Now()
			want, _, _ := naiveSummaries(st, w, 0, 0, "", 20)
			naive = append(naive, time.Since(begin))
			if got, _, _ := st.Summaries(w, 0, 0, "", 20); !slices.EqualFunc(got, want, func(a, b Summary) bool {
				// The sums of the naive merge are in map order: means to 12 digits.
				return a.Value == b.Value && a.Count == b.Count && a.P50 == b.P50 && a.P90 == b.P90 && a.P99 == b.P99 &&
					a.AboveThreshold == b.AboveThreshold && math.Abs(a.Mean-b.Mean) <= 1e-12
			}) {
				b.Fatalf("the query answers %+v, the naive merge %+v", got, want)
			}
			// The naive merge's garbage is the anchor's: collect it outside the measured requests.
			runtime.GC()
			b.StartTimer()
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	slices.Sort(naive)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(naive[len(naive)/2].Microseconds())/1000, "naive-p50-ms")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "state-MiB")
	runtime.KeepAlive(st)
}
