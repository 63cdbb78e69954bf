package controllers

import (
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

func TestLowestNonZeroResult(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		a, b, want time.Duration
	}{
		"neither asks":         {},
		"only the first asks":  {a: time.Minute, want: time.Minute},
		"only the second asks": {b: time.Second, want: time.Second},
		"the sooner wins":      {a: time.Minute, b: 10 * time.Second, want: 10 * time.Second},
		"the sooner wins back": {a: 10 * time.Second, b: time.Minute, want: 10 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := lowestNonZeroResult(ctrl.Result{RequeueAfter: tc.a}, ctrl.Result{RequeueAfter: tc.b})
			if got != (ctrl.Result{RequeueAfter: tc.want}) {
				t.Errorf("lowestNonZeroResult(%s, %s) = %+v, want RequeueAfter %s", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
