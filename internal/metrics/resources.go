package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Models is what the operator exports about PredictionModels that no object in the cluster
// holds: the rollbacks it performed. (The objects' conditions are exported by the operator's
// own collector, which reads them from its informer cache at scrape time.)
type Models struct {
	// Rollbacks counts a PredictionModel's failed rollouts rolled back to the last good model.
	Rollbacks *prometheus.CounterVec
}

// NewModels creates the model metrics and registers them on reg. A registry that already has
// them (a second manager in one test process) hands back the registered ones.
func NewModels(reg prometheus.Registerer) (*Models, error) {
	m := &Models{
		Rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_model_rollbacks_total",
			Help: "Failed PredictionModel rollouts rolled back to the last model that served.",
		}, []string{"namespace", "name"}),
	}
	var err error
	if m.Rollbacks, err = registerOrExisting(reg, m.Rollbacks); err != nil {
		return nil, err
	}
	return m, nil
}

// Seen exports a model's rollback count at zero before the first rollback, so that increase()
// sees the first one.
func (m *Models) Seen(namespace, name string) {
	m.Rollbacks.WithLabelValues(namespace, name)
}

// RolledBack counts a rollback of a PredictionModel.
func (m *Models) RolledBack(namespace, name string) {
	m.Rollbacks.WithLabelValues(namespace, name).Inc()
}

// Forget drops the series of a deleted model.
func (m *Models) Forget(namespace, name string) {
	m.Rollbacks.DeleteLabelValues(namespace, name)
}
