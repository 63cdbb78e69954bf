package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Resources is what the operator exports about the objects it manages, for alerts that
// kubectl users would otherwise read from status: conditions and rollbacks.
type Resources struct {
	// Condition is 1 while the object's condition of that type is True, 0 otherwise (False or
	// Unknown), per kind, namespace, name and condition type.
	Condition *prometheus.GaugeVec
	// Rollbacks counts a PredictionModel's failed rollouts rolled back to the last good model.
	Rollbacks *prometheus.CounterVec

	mu    sync.Mutex
	types map[[3]string][]string // the condition types exported per kind, namespace, name
}

// NewResources creates the resource metrics and registers them on reg. A registry that already
// has them (a second manager in one test process) hands back the registered ones.
func NewResources(reg prometheus.Registerer) (*Resources, error) {
	m := &Resources{
		Condition: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "freightcast_condition",
			Help: "1 while the object's status condition of this type is True, 0 while it is False or Unknown.",
		}, []string{"kind", "namespace", "name", "type"}),
		Rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "freightcast_model_rollbacks_total",
			Help: "Failed PredictionModel rollouts rolled back to the last model that served.",
		}, []string{"namespace", "name"}),
		types: map[[3]string][]string{},
	}
	var err error
	if m.Condition, err = registerOrExisting(reg, m.Condition); err != nil {
		return nil, err
	}
	if m.Rollbacks, err = registerOrExisting(reg, m.Rollbacks); err != nil {
		return nil, err
	}
	return m, nil
}

// SetConditions exports an object's conditions. A condition type the object no longer reports
// is removed; the others are set in place, so that a scrape never misses them.
func (m *Resources) SetConditions(kind, namespace, name string, conditions []metav1.Condition) {
	key := [3]string{kind, namespace, name}
	var types []string
	for _, c := range conditions {
		v := 0.0
		if c.Status == metav1.ConditionTrue {
			v = 1
		}
		m.Condition.WithLabelValues(kind, namespace, name, c.Type).Set(v)
		types = append(types, c.Type)
	}
	m.mu.Lock()
	for _, t := range m.types[key] {
		if !slices.Contains(types, t) {
			m.Condition.DeleteLabelValues(kind, namespace, name, t)
		}
	}
	m.types[key] = types
	m.mu.Unlock()
	if kind == KindPredictionModel {
		// Exported at zero before the first rollback, so that increase() sees the first one.
		m.Rollbacks.WithLabelValues(namespace, name)
	}
}

// RolledBack counts a rollback of a PredictionModel.
func (m *Resources) RolledBack(namespace, name string) {
	m.Rollbacks.WithLabelValues(namespace, name).Inc()
}

// Forget drops the series of a deleted object.
func (m *Resources) Forget(kind, namespace, name string) {
	m.mu.Lock()
	delete(m.types, [3]string{kind, namespace, name})
	m.mu.Unlock()
	m.Condition.DeletePartialMatch(prometheus.Labels{"kind": kind, "namespace": namespace, "name": name})
	if kind == KindPredictionModel {
		m.Rollbacks.DeleteLabelValues(namespace, name)
	}
}

// The kind label values of freightcast_condition.
const (
	KindPredictionModel = "PredictionModel"
	KindFreightPipeline = "FreightPipeline"
)
