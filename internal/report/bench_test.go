package report

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

// benchLanes is the lanes of the 90-day benchmark state; the issue asks for 1000 (see
// docs/benchmarks.md for how the figure scales).
var benchLanes = 100

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

// BenchmarkDecode is the record decoding and dimension evaluation per record.
func BenchmarkDecode(b *testing.B) {
	recs := generate(b, 9, 1000)
	dec, err := NewDecoder(testReporting())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		_, _, _ = dec.Decode("acme", recs[i%len(recs)].data)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkReportAPI90Days queries a lane report over the whole 90 days of hourly buckets over
// HTTP on a real listener, and reports the median and p99 of the requests and the state's heap.
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
	url := srv.URL + "/v1/reports/lane?bucket=1h&top=20&from=" + t0.Add(-90*24*time.Hour).Format(time.RFC3339) + "&to=" + t0.Format(time.RFC3339)
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		begin := time.Now()
		resp, err := http.Get(url)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("%v %v", err, resp)
		}
		resp.Body.Close()
		durations = append(durations, time.Since(begin))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "state-MiB")
	runtime.KeepAlive(st)
}
