package metrics

import "github.com/prometheus/client_golang/prometheus"

// ReportStats is what the reporting role exports, read at scrape time (internal/report).
type ReportStats struct {
	// Applied, Malformed, DimensionErrors, Folded and Late are the state's counters since it
	// began (they survive restarts in the snapshot).
	Applied, Malformed, DimensionErrors, Folded, Late uint64
	// Lag is how many predictions the stream holds past the last one applied.
	Lag uint64
	// SnapshotAgeSeconds is the time since the last snapshot was written or restored (-1: none
	// yet); SnapshotBytes its size.
	SnapshotAgeSeconds float64
	SnapshotBytes      int
	Ready              bool
}

var (
	reportApplied   = prometheus.NewDesc("freightcast_report_records_applied_total", "Prediction records counted in the report aggregates.", nil, nil)
	reportMalformed = prometheus.NewDesc("freightcast_report_records_malformed_total",
		"Prediction records the reports could not count: undecodable, or without a finite value of a reported output.", nil, nil)
	reportDimErrors = prometheus.NewDesc("freightcast_report_dimension_errors_total",
		"Dimension values counted as \"unknown\" because the dimension's expression failed on the record.", nil, nil)
	reportFolded = prometheus.NewDesc("freightcast_report_values_folded_total",
		"Dimension values counted as \"other\" because their client and dimension had maxValues values already.", nil, nil)
	reportLate = prometheus.NewDesc("freightcast_report_records_late_total",
		"Records older than a tier's retention when they came (per tier), not counted in that tier.", nil, nil)
	reportLag           = prometheus.NewDesc("freightcast_report_lag_records", "Predictions in the stream not yet applied to the reports.", nil, nil)
	reportSnapshotAge   = prometheus.NewDesc("freightcast_report_snapshot_age_seconds", "Time since the last report snapshot was written or restored; -1 before any.", nil, nil)
	reportSnapshotBytes = prometheus.NewDesc("freightcast_report_snapshot_bytes", "Size of the last report snapshot.", nil, nil)
	reportReady         = prometheus.NewDesc("freightcast_report_ready", "1 once the snapshot is restored and the consumer attached.", nil, nil)
)

// ReportCollector exports the reporting role's ReportStats, read at each scrape.
type ReportCollector struct{ Read func() ReportStats }

func (c ReportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{reportApplied, reportMalformed, reportDimErrors, reportFolded, reportLate, reportLag, reportSnapshotAge, reportSnapshotBytes, reportReady} {
		ch <- d
	}
}

func (c ReportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.Read()
	ready := 0.0
	if s.Ready {
		ready = 1
	}
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{reportApplied, prometheus.CounterValue, float64(s.Applied)},
		{reportMalformed, prometheus.CounterValue, float64(s.Malformed)},
		{reportDimErrors, prometheus.CounterValue, float64(s.DimensionErrors)},
		{reportFolded, prometheus.CounterValue, float64(s.Folded)},
		{reportLate, prometheus.CounterValue, float64(s.Late)},
		{reportLag, prometheus.GaugeValue, float64(s.Lag)},
		{reportSnapshotAge, prometheus.GaugeValue, s.SnapshotAgeSeconds},
		{reportSnapshotBytes, prometheus.GaugeValue, float64(s.SnapshotBytes)},
		{reportReady, prometheus.GaugeValue, ready},
	} {
		ch <- prometheus.MustNewConstMetric(m.d, m.t, m.v)
	}
}
