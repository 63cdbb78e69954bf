package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Inference holds the metrics of a model-serving process (freightcast infer).
type Inference struct {
	// RequestDuration observes every HTTP request by endpoint (a fixed set of names, never raw
	// paths, to bound cardinality) and status code.
	RequestDuration *prometheus.HistogramVec
	// BatchSize observes the rows of every model run, after micro-batching.
	BatchSize prometheus.Histogram
	// RowsPredicted counts the rows the model has predicted.
	RowsPredicted prometheus.Counter
	// ModelLoadDuration records how long loading (fetching, decoding, compiling) the model took.
	ModelLoadDuration prometheus.Gauge
	// Errors counts failed requests by reason.
	Errors *prometheus.CounterVec
}

// Reasons an inference request fails, the values of the errors counter's reason label; a
// refused bearer token counts as ReasonUnauthorized, the same value as ingestion's.
const (
	ReasonBadRequest           = "bad_request"
	ReasonNotFound             = "not_found"
	ReasonMethodNotAllowed     = "method_not_allowed"
	ReasonBodyTooLarge         = "body_too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonNotReady             = "not_ready"
	ReasonInternal             = "internal"
)

// NewInference creates the inference metrics and registers them on reg, which is the serving
// process's own registry (tests pass a fresh one).
func NewInference(reg prometheus.Registerer) (*Inference, error) {
	m := &Inference{
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "freightcast_inference_request_duration_seconds",
			Help: "Duration of Open Inference Protocol HTTP requests by endpoint and status code.",
			// From 50 µs: a batch-1 infer takes tens of microseconds on loopback.
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16),
		}, []string{"endpoint", "code"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_inference_batch_size",
			Help:    "Rows per model run, after micro-batching of concurrent requests.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		RowsPredicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_inference_rows_predicted_total",
			Help: "Rows the model has predicted.",
		}),
		ModelLoadDuration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "freightcast_inference_model_load_duration_seconds",
			Help: "Time the last model load took: fetch, checksum, decode and compile.",
		}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_inference_errors_total",
			Help: "Failed inference-server requests by reason.",
		}, []string{"reason"}),
	}
	for _, c := range []prometheus.Collector{m.RequestDuration, m.BatchSize, m.RowsPredicted, m.ModelLoadDuration, m.Errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
