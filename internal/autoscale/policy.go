package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy is what the user asked of the autoscaler. The zero value of each optional field means the
// documented default, so a caller converting the API only copies the fields the user set.
type Policy struct {
	// MinReplicas is the fewest workers; 0 allows scale to zero.
	MinReplicas int32
	// MaxReplicas is the most workers; at least 1.
	MaxReplicas int32
	// TargetPerReplica is the queue depth one worker is expected to hold; at least 1.
	TargetPerReplica int64
	// Tolerance is the dead band around the target, as a ratio. Zero means the HPA's 0.1, which
	// is what the API implies; a caller wanting a tighter band passes a small positive value.
	Tolerance float64
	// ActivationThreshold is the depth a pool at zero replicas must exceed before it starts a
	// worker (KEDA's activation). It only gates leaving zero: once running, any queued event keeps
	// a worker, so nothing is left below the threshold forever.
	ActivationThreshold int64
	// ScaleUp and ScaleDown are the HPA v2 behavior rules of each direction.
	ScaleUp, ScaleDown Rules
	// DrainTarget, when positive, sizes the pool so that the backlog clears within it at the
	// measured per-replica throughput, replacing the depth target; while throughput is unknown
	// the depth target applies. With events still arriving, the queue then settles where an
	// event waits about DrainTarget (Little's law), whatever the model's speed.
	DrainTarget time.Duration
	// FailureThreshold is how many failed reads in a row lead to FallbackReplicas (3 when 0).
	FailureThreshold int
	// FallbackReplicas is the size to run while the depth cannot be read, after FailureThreshold
	// failures; nil holds the current size. It must lie within [MinReplicas, MaxReplicas].
	FallbackReplicas *int32
}

// Rules limit scaling in one direction, with the HorizontalPodAutoscaler v2 behavior semantics and
// defaults.
type Rules struct {
	// StabilizationWindow is how far back recommendations are remembered; the most conservative
	// one in it wins. Nil means the HPA default: none for scale-up, 5 minutes for scale-down. A
	// pointer, because an explicit zero window and "the default" differ for scale-down.
	StabilizationWindow *time.Duration
	// Policies cap the rate of change. Empty means the HPA default: for scale-up the larger of
	// 100 % and 4 pods per 15 s, for scale-down 100 % per 15 s.
	Policies []RatePolicy
	// Select chooses among Policies; empty means SelectMax.
	Select Select
}

// RatePolicy allows at most Value pods, or Value percent of the pods, of change per Period.
type RatePolicy struct {
	// Type says how Value is read.
	Type PolicyType
	// Value is a number of pods or a percentage; at least 1.
	Value int32
	// Period is the sliding window the change is counted over; between 1s and 30m, as for an HPA.
	Period time.Duration
}

// PolicyType says how a RatePolicy's Value is read. Its values are spelled as in the API and the
// HPA, so callers convert with a plain type conversion.
type PolicyType string

const (
	// Pods allows a fixed number of pods of change per period.
	Pods PolicyType = "Pods"
	// Percent allows a percentage of the pods at the start of the period, rounded so that at
	// least one pod may change.
	Percent PolicyType = "Percent"
)

// Select chooses among a direction's rate policies.
type Select string

const (
	// SelectMax takes the policy that allows the biggest change.
	SelectMax Select = "Max"
	// SelectMin takes the policy that allows the smallest change.
	SelectMin Select = "Min"
	// SelectDisabled forbids scaling in this direction.
	SelectDisabled Select = "Disabled"
)

const (
	// DefaultTolerance is the HPA's dead band.
	DefaultTolerance = 0.1
	// DefaultFailureThreshold is KEDA's fallback failureThreshold.
	DefaultFailureThreshold = 3
	// DefaultScaleDownWindow is the HPA's scale-down stabilization window.
	DefaultScaleDownWindow = 5 * time.Minute
)

// The HPA's other defaults and bounds.
const (
	defaultPeriod               = 15 * time.Second
	defaultScaleUpPodsPerPeriod = 4
	maxStabilizationWindow      = time.Hour
	maxPolicyPeriod             = 30 * time.Minute
)

// rules are Rules with defaults applied, ready for use on every call.
type rules struct {
	window     time.Duration
	windowText string // window.String(), kept so that a reason costs no allocation to write
	policies   []RatePolicy
	sel        Select
}

// resolve validates r and applies the defaults of one direction.
func (r Rules) resolve(name string, defWindow time.Duration, defPolicies []RatePolicy) (rules, error) {
	var errs []error
	out := rules{window: defWindow, policies: defPolicies, sel: r.Select}
	if r.StabilizationWindow != nil {
		out.window = *r.StabilizationWindow
		if out.window < 0 || out.window > maxStabilizationWindow {
			errs = append(errs, fmt.Errorf("%s.stabilizationWindow %v must be between 0s and %v", name, out.window, maxStabilizationWindow))
		}
	}
	if len(r.Policies) > 0 {
		// Copied so that the caller reusing its slice cannot change a running Recommender.
		out.policies = append([]RatePolicy(nil), r.Policies...)
	}
	for i, p := range r.Policies {
		where := fmt.Sprintf("%s.policies[%d]", name, i)
		if p.Type != Pods && p.Type != Percent {
			errs = append(errs, fmt.Errorf("%s.type %q must be %q or %q", where, p.Type, Pods, Percent))
		}
		if p.Value < 1 {
			errs = append(errs, fmt.Errorf("%s.value %d must be at least 1", where, p.Value))
		}
		if p.Period < time.Second || p.Period > maxPolicyPeriod {
			errs = append(errs, fmt.Errorf("%s.period %v must be between 1s and %v", where, p.Period, maxPolicyPeriod))
		}
	}
	switch r.Select {
	case "":
		out.sel = SelectMax
	case SelectMax, SelectMin, SelectDisabled:
	default:
		errs = append(errs, fmt.Errorf("%s.select %q must be %q, %q or %q", name, r.Select, SelectMax, SelectMin, SelectDisabled))
	}
	out.windowText = out.window.String()
	return out, errors.Join(errs...)
}

// validate checks the fields outside the rules and applies their defaults.
func (p *Policy) validate() error {
	var errs []error
	if p.MinReplicas < 0 {
		errs = append(errs, fmt.Errorf("minReplicas %d must not be negative", p.MinReplicas))
	}
	if p.MaxReplicas < 1 {
		errs = append(errs, fmt.Errorf("maxReplicas %d must be at least 1", p.MaxReplicas))
	}
	if p.MinReplicas > p.MaxReplicas {
		errs = append(errs, fmt.Errorf("minReplicas %d must not exceed maxReplicas %d", p.MinReplicas, p.MaxReplicas))
	}
	if p.TargetPerReplica < 1 {
		errs = append(errs, fmt.Errorf("targetPerReplica %d must be at least 1", p.TargetPerReplica))
	}
	if p.Tolerance == 0 {
		p.Tolerance = DefaultTolerance
	}
	if math.IsNaN(p.Tolerance) || p.Tolerance < 0 || p.Tolerance >= 1 {
		errs = append(errs, fmt.Errorf("tolerance %v must be at least 0 and below 1", p.Tolerance))
	}
	if p.ActivationThreshold < 0 {
		errs = append(errs, fmt.Errorf("activationThreshold %d must not be negative", p.ActivationThreshold))
	}
	if p.DrainTarget < 0 {
		errs = append(errs, fmt.Errorf("drainTarget %v must not be negative", p.DrainTarget))
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultFailureThreshold
	}
	if p.FailureThreshold < 0 {
		errs = append(errs, fmt.Errorf("failureThreshold %d must not be negative", p.FailureThreshold))
	}
	if f := p.FallbackReplicas; f != nil && (*f < p.MinReplicas || *f > p.MaxReplicas) {
		errs = append(errs, fmt.Errorf("fallbackReplicas %d must be between minReplicas %d and maxReplicas %d", *f, p.MinReplicas, p.MaxReplicas))
	}
	return errors.Join(errs...)
}

var (
	defaultScaleUpPolicies = []RatePolicy{
		{Type: Percent, Value: 100, Period: defaultPeriod},
		{Type: Pods, Value: defaultScaleUpPodsPerPeriod, Period: defaultPeriod},
	}
	defaultScaleDownPolicies = []RatePolicy{
		{Type: Percent, Value: 100, Period: defaultPeriod},
	}
)
