package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Autoscaling is what the operator's autoscaler exports.
type Autoscaling struct {
	// QueueDepth is each pipeline's last queue depth read.
	QueueDepth *prometheus.GaugeVec
	// DesiredReplicas is each pipeline's last decided inference pool size.
	DesiredReplicas *prometheus.GaugeVec
	// ScaleDecisions counts pool size changes by direction (up, down) and reason (queue_depth,
	// fallback, bounds).
	ScaleDecisions *prometheus.CounterVec
	// ReadErrors counts failed queue depth reads by reason (unreachable, consumer_missing, other).
	ReadErrors *prometheus.CounterVec
	// SampleLateness observes how late each sample ran after its due time: the autoscaler
	// keeping its interval with many pipelines.
	SampleLateness prometheus.Histogram
}

// NewAutoscaling creates the autoscaler metrics and registers them on reg. A registry that
// already has them (a second manager in one test process) hands back the registered ones.
func NewAutoscaling(reg prometheus.Registerer) (*Autoscaling, error) {
	m := &Autoscaling{
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "freightcast_queue_depth",
			Help: "Last queue depth read per pipeline: pending plus unacknowledged events.",
		}, []string{"namespace", "pipeline"}),
		DesiredReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "freightcast_inference_desired_replicas",
			Help: "Inference pool size the autoscaler decided, per pipeline.",
		}, []string{"namespace", "pipeline"}),
		ScaleDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_scale_decisions_total",
			Help: "Inference pool size changes, by direction and reason.",
		}, []string{"direction", "reason"}),
		ReadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_queue_depth_read_errors_total",
			Help: "Failed queue depth reads, by reason.",
		}, []string{"reason"}),
		SampleLateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "freightcast_autoscaler_sample_lateness_seconds",
			Help:    "How long after its due time each queue depth sample ran.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
	}
	var err error
	if m.QueueDepth, err = registerOrExisting(reg, m.QueueDepth); err != nil {
		return nil, err
	}
	if m.DesiredReplicas, err = registerOrExisting(reg, m.DesiredReplicas); err != nil {
		return nil, err
	}
	if m.ScaleDecisions, err = registerOrExisting(reg, m.ScaleDecisions); err != nil {
		return nil, err
	}
	if m.ReadErrors, err = registerOrExisting(reg, m.ReadErrors); err != nil {
		return nil, err
	}
	if m.SampleLateness, err = registerOrExisting(reg, m.SampleLateness); err != nil {
		return nil, err
	}
	return m, nil
}

func registerOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
