package metrics

import "github.com/prometheus/client_golang/prometheus"

// Reasons an event goes to the dead-letter subject; the reason label of
// freightcast_worker_dead_letters_total.
const (
	DeadLetterUndecodable   = "undecodable"    // the queue message is not a valid event
	DeadLetterFeatureCount  = "feature_count"  // the event's features do not fit the model's input
	DeadLetterFeatureType   = "feature_type"   // a feature value is not one its model input's type holds
	DeadLetterNonFinite     = "non_finite"     // the model produced NaN or Inf for the event
	DeadLetterMaxDeliveries = "max_deliveries" // the event failed on its last allowed delivery
	DeadLetterModelRejected = "model_rejected" // a remote model refused the event itself (400)
)

// Worker is what an inference pool worker exports.
type Worker struct {
	// EventsPredicted counts events whose prediction was stored and acknowledged.
	EventsPredicted prometheus.Counter
	// DeadLetters counts events sent to the dead-letter subject, by reason.
	DeadLetters *prometheus.CounterVec
	// BatchDuration observes fetch-to-ack time of each batch.
	BatchDuration prometheus.Histogram
	// BatchSize observes the events of each fetched batch.
	BatchSize prometheus.Histogram
	// EventLatency observes the time from ingestion receiving an event to its prediction being
	// stored: what a client waiting for a prediction sees.
	EventLatency prometheus.Histogram
	// Failures counts batches that failed and were left for redelivery, by stage.
	Failures *prometheus.CounterVec
	// RemoteModelUnavailable is the number of workers whose remote model does not answer now
	// (their batches wait, unacknowledged, for it).
	RemoteModelUnavailable prometheus.Gauge
	// RemoteRetries counts remote model requests retried because the model did not answer.
	RemoteRetries prometheus.Counter
	// Requeued counts events given back to the queue as new messages because their remote
	// model was down on their last allowed delivery.
	Requeued prometheus.Counter
	// Predictions observes the predicted values of acknowledged events, by pipeline and model
	// output: the distribution operators watch drift in. The outputs are the model's (a fixed,
	// small set), so the labels stay bounded.
	Predictions *prometheus.HistogramVec
}

// NewWorker creates the worker metrics and registers them on reg.
func NewWorker(reg prometheus.Registerer) (*Worker, error) {
	m := &Worker{
		EventsPredicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_worker_events_predicted_total",
			Help: "Events whose prediction was stored and whose queue message was acknowledged.",
		}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_worker_dead_letters_total",
			Help: "Events sent to the pipeline's dead-letter subject, by reason.",
		}, []string{"reason"}),
		BatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_worker_batch_duration_seconds",
			Help:    "Time from receiving a batch from the queue to acknowledging it.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_worker_batch_size",
			Help:    "Events per batch fetched from the queue.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		EventLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_worker_event_latency_seconds",
			Help:    "Time from ingestion receiving an event to its prediction being stored.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_worker_batch_failures_total",
			Help: "Batches left unacknowledged for redelivery, by the stage that failed.",
		}, []string{"stage"}),
		RemoteModelUnavailable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "freightcast_worker_remote_model_unavailable",
			Help: "Workers whose remote model does not answer now; their batches stay queued until it does.",
		}),
		RemoteRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_worker_remote_retries_total",
			Help: "Remote model requests retried because the model was down, slow or overloaded.",
		}),
		Requeued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "freightcast_worker_requeued_total",
			Help: "Events given back to the queue as new messages because their remote model was down on their last allowed delivery.",
		}),
		Predictions: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "freightcast_worker_prediction_value",
			Help: "Predicted values written, per pipeline and model output: a one-value output's value, a two-value output's second (a binary classifier's positive class).",
			// Probabilities in twentieths; scores beyond 1 fall in the coarse upper buckets.
			Buckets: append(prometheus.LinearBuckets(0.05, 0.05, 20), 2, 5, 10, 100),
		}, []string{"pipeline", "output"}),
	}
	for _, c := range []prometheus.Collector{m.EventsPredicted, m.DeadLetters, m.BatchDuration, m.BatchSize, m.EventLatency, m.Failures,
		m.RemoteModelUnavailable, m.RemoteRetries, m.Requeued, m.Predictions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
