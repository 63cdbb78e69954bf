package local

import (
	"bufio"
	"flag"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/cputime"
)

// benchReporting runs BenchmarkEndToEnd's pipeline with spec.reporting (withReporting: two CEL
// dimensions, two tiers), so that reporting's cost is measured by alternating runs with and
// without it on the same machine: `-reporting` on the test binary's command line.
var benchReporting = flag.Bool("reporting", false, "BenchmarkEndToEnd: run the pipeline with spec.reporting (its reporting role consuming every prediction)")

// startBench starts BenchmarkEndToEnd's local mode, with reporting when -reporting is given.
func startBench(b *testing.B) Endpoints {
	if *benchReporting {
		return startWith(b, 2, withReporting)
	}
	return start(b, 2)
}

// reportCatchUp, with -reporting, waits until the reporting role has applied stored records
// and reports how long after the last stored prediction that was, and the process's CPU time
// per event from since until then: the reporting role may lag behind the workers, and its
// catch-up is part of what it costs.
func reportCatchUp(b *testing.B, eps Endpoints, stored uint64, storedAt time.Time, cpuSince time.Duration, events int) {
	if !*benchReporting {
		return
	}
	url := eps.Reports["orders"] + "/metrics"
	deadline := time.Now().Add(5 * time.Minute)
	for reportApplied(b, url) < stored {
		if time.Now().After(deadline) {
			b.Fatalf("the reporting role applied fewer than %d records within 5 minutes", stored)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(float64(time.Since(storedAt).Microseconds())/1000, "report-lag-ms")
	b.ReportMetric(float64((cputime.Process()-cpuSince).Microseconds())/float64(events), "cpu-µs/event-reported")
}

// reportApplied reads freightcast_report_records_applied_total from the role's /metrics.
func reportApplied(b *testing.B, url string) uint64 {
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "freightcast_report_records_applied_total "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("applied records %q: %v", v, err)
			}
			return uint64(n)
		}
	}
	return 0
}
