package autoscale

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func ptr[T any](v T) *T { return &v }

// valid is the smallest valid policy; cases change one thing in it.
func valid(change func(*Policy)) Policy {
	p := Policy{MinReplicas: 1, MaxReplicas: 10, TargetPerReplica: 100}
	if change != nil {
		change(&p)
	}
	return p
}

func TestNewRejectsInvalidPolicies(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		policy Policy
		want   string
	}{
		"zero policy": {
			policy: Policy{},
			want:   "maxReplicas 0 must be at least 1\ntargetPerReplica 0 must be at least 1",
		},
		"negative min": {
			policy: valid(func(p *Policy) { p.MinReplicas = -1 }),
			want:   "minReplicas -1 must not be negative",
		},
		"min over max": {
			policy: valid(func(p *Policy) { p.MinReplicas = 11 }),
			want:   "minReplicas 11 must not exceed maxReplicas 10",
		},
		"tolerance of one or more": {
			policy: valid(func(p *Policy) { p.Tolerance = 1 }),
			want:   "tolerance 1 must be at least 0 and below 1",
		},
		"negative tolerance": {
			policy: valid(func(p *Policy) { p.Tolerance = -0.1 }),
			want:   "tolerance -0.1 must be at least 0 and below 1",
		},
		"negative activation, drain and failure threshold": {
			policy: valid(func(p *Policy) {
				p.ActivationThreshold = -1
				p.DrainTarget = -time.Second
				p.FailureThreshold = -1
			}),
			want: "activationThreshold -1 must not be negative\ndrainTarget -1s must not be negative\nfailureThreshold -1 must not be negative",
		},
		"fallback outside the bounds": {
			policy: valid(func(p *Policy) { p.FallbackReplicas = ptr[int32](11) }),
			want:   "fallbackReplicas 11 must be between minReplicas 1 and maxReplicas 10",
		},
		"stabilization window over an hour": {
			policy: valid(func(p *Policy) { p.ScaleDown.StabilizationWindow = ptr(2 * time.Hour) }),
			want:   "scaleDown.stabilizationWindow 2h0m0s must be between 0s and 1h0m0s",
		},
		"negative stabilization window": {
			policy: valid(func(p *Policy) { p.ScaleUp.StabilizationWindow = ptr(-time.Second) }),
			want:   "scaleUp.stabilizationWindow -1s must be between 0s and 1h0m0s",
		},
		"bad rate policies": {
			policy: valid(func(p *Policy) {
				p.ScaleUp.Policies = []RatePolicy{
					{Type: "pods", Value: 0, Period: 0},
					{Type: Percent, Value: 10, Period: time.Hour},
				}
			}),
			want: `scaleUp.policies[0].type "pods" must be "Pods" or "Percent"` + "\n" +
				"scaleUp.policies[0].value 0 must be at least 1\n" +
				"scaleUp.policies[0].period 0s must be between 1s and 30m0s\n" +
				"scaleUp.policies[1].period 1h0m0s must be between 1s and 30m0s",
		},
		"unknown select": {
			policy: valid(func(p *Policy) { p.ScaleDown.Select = "Off" }),
			want:   `scaleDown.select "Off" must be "Max", "Min" or "Disabled"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.policy)
			if err == nil {
				t.Fatalf("New accepted the policy: %+v", r.p)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewAppliesDefaults(t *testing.T) {
	t.Parallel()
	up := []RatePolicy{{Type: Pods, Value: 2, Period: time.Minute}}
	cases := map[string]struct {
		policy         Policy
		wantUp, wantDn rules
		wantTolerance  float64
		wantFailures   int
	}{
		"empty rules are the HPA's": {
			policy: valid(nil),
			wantUp: rules{window: 0, windowText: "0s", sel: SelectMax, policies: []RatePolicy{
				{Type: Percent, Value: 100, Period: 15 * time.Second},
				{Type: Pods, Value: 4, Period: 15 * time.Second},
			}},
			wantDn: rules{window: 5 * time.Minute, windowText: "5m0s", sel: SelectMax, policies: []RatePolicy{
				{Type: Percent, Value: 100, Period: 15 * time.Second},
			}},
			wantTolerance: 0.1,
			wantFailures:  3,
		},
		"set fields are kept, including an explicit zero window": {
			policy: valid(func(p *Policy) {
				p.Tolerance = 0.05
				p.FailureThreshold = 1
				p.ScaleUp = Rules{StabilizationWindow: ptr(time.Minute), Policies: up, Select: SelectMin}
				p.ScaleDown = Rules{StabilizationWindow: ptr(time.Duration(0)), Select: SelectDisabled}
			}),
			wantUp: rules{window: time.Minute, windowText: "1m0s", sel: SelectMin, policies: up},
			wantDn: rules{window: 0, windowText: "0s", sel: SelectDisabled, policies: []RatePolicy{
				{Type: Percent, Value: 100, Period: 15 * time.Second},
			}},
			wantTolerance: 0.05,
			wantFailures:  1,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			opt := cmp.AllowUnexported(rules{})
			if diff := cmp.Diff(tc.wantUp, r.up, opt); diff != "" {
				t.Errorf("scale-up rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDn, r.down, opt); diff != "" {
				t.Errorf("scale-down rules (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTolerance, r.p.Tolerance); diff != "" {
				t.Errorf("tolerance (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFailures, r.p.FailureThreshold); diff != "" {
				t.Errorf("failure threshold (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewCopiesPolicies(t *testing.T) {
	mine := []RatePolicy{{Type: Pods, Value: 1, Period: time.Minute}}
	r, err := New(valid(func(p *Policy) { p.ScaleUp.Policies = mine }))
	if err != nil {
		t.Fatal(err)
	}
	mine[0].Value = 1000
	if got := r.up.policies[0].Value; got != 1 {
		t.Errorf("changing the caller's slice changed the Recommender's policy to %d pods", got)
	}
}
