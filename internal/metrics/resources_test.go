package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestModelRollbacks(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := NewModels(reg)
	if err != nil {
		t.Fatal(err)
	}
	// The rollback counter exists at zero before the first rollback, so increase() sees it.
	m.Seen("ns", "m")
	if n := testutil.CollectAndCount(m.Rollbacks); n != 1 {
		t.Errorf("rollback series = %d, want 1 (at zero)", n)
	}
	m.RolledBack("ns", "m")
	if got := testutil.ToFloat64(m.Rollbacks.WithLabelValues("ns", "m")); got != 1 {
		t.Errorf("rollbacks = %v, want 1", got)
	}
	// A second registration in the same process (a second manager) shares the counter.
	again, err := NewModels(reg)
	if err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(again.Rollbacks.WithLabelValues("ns", "m")); got != 1 {
		t.Errorf("rollbacks through a second registration = %v, want 1", got)
	}
	m.Forget("ns", "m")
	if n := testutil.CollectAndCount(m.Rollbacks); n != 0 {
		t.Errorf("rollback series = %d after the model went away, want 0", n)
	}
}
