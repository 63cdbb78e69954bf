package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a request to the ingestion API is refused; the values of the reason label of
// freightcast_ingest_requests_rejected_total.
const (
	ReasonInvalid       = "invalid"        // 400: malformed body or event
	ReasonUnauthorized  = "unauthorized"   // 401
	ReasonTooLarge      = "too_large"      // 413
	ReasonMediaType     = "media_type"     // 415
	ReasonRateLimited   = "rate_limited"   // 429
	ReasonStreamFull    = "stream_full"    // 503: the stream refused (DiscardNew at its limits)
	ReasonUnavailable   = "unavailable"    // 503: NATS or the stream unreachable
	ReasonPartialAccept = "partial_accept" // 503 after some events of the body were stored
	ReasonBusy          = "busy"           // 503: the process's body budget is spent (both APIs)
)

// Ingest is what an ingestion pod exports.
type Ingest struct {
	// EventsAccepted counts events newly stored in the stream.
	EventsAccepted prometheus.Counter
	// EventsDuplicate counts events answered as duplicates: already stored (the server's
	// deduplication) or repeated within one body.
	EventsDuplicate prometheus.Counter
	// RequestsRejected counts refused POST /v1/events requests by reason. Requests, not events:
	// a body refused before it is parsed has no event count.
	RequestsRejected *prometheus.CounterVec
	// PublishDuration is the time from the first publish of a body to its last ack: the
	// latency the queue adds to a request.
	PublishDuration prometheus.Histogram
	// RequestDuration is the time to answer an API request, by handler and HTTP status code.
	RequestDuration *prometheus.HistogramVec
	// FeedReaders is how many readers follow the push feed on this pod now.
	FeedReaders prometheus.Gauge
	// FeedClosed counts feeds this pod ended, by why: the reader went ("gone"), fell too far
	// behind ("lagging") or the store failed ("unavailable").
	FeedClosed *prometheus.CounterVec
}

// NewIngest creates the ingestion metrics and registers them on reg.
func NewIngest(reg prometheus.Registerer) (*Ingest, error) {
	m := &Ingest{
		EventsAccepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_ingest_events_accepted_total",
			Help: "Events newly stored in the pipeline's stream.",
		}),
		EventsDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_ingest_events_duplicate_total",
			Help: "Events answered as duplicates: already stored, or repeated within one request.",
		}),
		RequestsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_ingest_requests_rejected_total",
			Help: "POST /v1/events requests refused, by reason.",
		}, []string{"reason"}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_ingest_publish_duration_seconds",
			Help:    "Time from the first publish of a request's events to the last acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14), // 0.2 ms … 1.6 s
		}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "freightcast_ingest_request_duration_seconds",
			Help:    "Time to answer an ingestion API request, by handler and HTTP status code.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16), // 0.2 ms … 6.5 s
		}, []string{"handler", "code"}),
		FeedReaders: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "freightcast_ingest_feed_readers",
			Help: "Readers of the push feed (GET /v1/predictions:stream) on this pod.",
		}),
		FeedClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_ingest_feed_closed_total",
			Help: "Push feeds ended, by reason: gone, lagging, unavailable.",
		}, []string{"reason"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.EventsAccepted, m.EventsDuplicate, m.RequestsRejected, m.PublishDuration, m.RequestDuration, m.FeedReaders, m.FeedClosed} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Pre-create every reason so that rate() sees a zero rather than a missing series.
	for _, r := range []string{ReasonInvalid, ReasonUnauthorized, ReasonTooLarge, ReasonMediaType, ReasonRateLimited, ReasonStreamFull, ReasonUnavailable, ReasonPartialAccept} {
		m.RequestsRejected.WithLabelValues(r)
	}
	return m, nil
}

// RegisterRateLimitPods exports the number of ingestion pods this pod divides the pipeline's
// rate limit by, read at scrape time: the live pods it hears, or the fallback while it does not
// know. A value above the Deployment's replicas for more than seconds says the pods cannot hear
// each other.
func RegisterRateLimitPods(reg prometheus.Registerer, pods func() int) error {
	return reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "freightcast_ingest_rate_limit_pods",
		Help: "Ingestion pods the pipeline's rate limit is divided by on this pod (the fallback while it does not know).",
	}, func() float64 { return float64(pods()) }))
}
