package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestResourcesConditionsAndRollbacks(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewResources(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.SetConditions(KindPredictionModel, "ns", "m", []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionFalse},
		{Type: "Degraded", Status: metav1.ConditionTrue},
		{Type: "Progressing", Status: metav1.ConditionUnknown},
	})
	cases := map[string]struct {
		typ  string
		want float64
	}{
		"false is 0":   {"Ready", 0},
		"true is 1":    {"Degraded", 1},
		"unknown is 0": {"Progressing", 0},
	}
	for name, c := range cases {
		if got := testutil.ToFloat64(m.Condition.WithLabelValues(KindPredictionModel, "ns", "m", c.typ)); got != c.want {
			t.Errorf("%s: %s = %v, want %v", name, c.typ, got, c.want)
		}
	}
	// The rollback counter exists at zero before the first rollback, so increase() sees it.
	if n := testutil.CollectAndCount(m.Rollbacks); n != 1 {
		t.Errorf("rollback series = %d, want 1 (at zero)", n)
	}
	m.RolledBack("ns", "m")
	if got := testutil.ToFloat64(m.Rollbacks.WithLabelValues("ns", "m")); got != 1 {
		t.Errorf("rollbacks = %v, want 1", got)
	}
	// A condition type no longer reported goes away; the others stay.
	m.SetConditions(KindPredictionModel, "ns", "m", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	if n := testutil.CollectAndCount(m.Condition); n != 1 {
		t.Errorf("condition series = %d after two types went away, want 1", n)
	}
	m.SetConditions(KindFreightPipeline, "ns", "p", []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}})
	m.Forget(KindPredictionModel, "ns", "m")
	if n := testutil.CollectAndCount(m.Condition); n != 1 {
		t.Errorf("condition series = %d after the model went away, want the pipeline's 1", n)
	}
	if n := testutil.CollectAndCount(m.Rollbacks); n != 0 {
		t.Errorf("rollback series = %d after the model went away, want 0", n)
	}
}
