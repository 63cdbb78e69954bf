package spec

import (
	"time"

	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/autoscale"
)

// Autoscale is the recommender policy that sizes pipeline p's inference pool, and how often its
// queue depth is sampled: what the operator scales the pool's Deployment with, and what local mode
// sizes its workers with.
func Autoscale(p *freightcastv1alpha1.FreightPipeline) (autoscale.Policy, time.Duration) {
	inf := defaultedPipeline(p).Spec.Inference
	pol := autoscale.Policy{
		MinReplicas:         *inf.MinReplicas,
		MaxReplicas:         inf.MaxReplicas,
		TargetPerReplica:    inf.TargetQueueDepthPerReplica,
		Tolerance:           float64(inf.TolerancePercent) / 100,
		ActivationThreshold: inf.ActivationQueueDepth,
		ScaleUp:             rules(inf.ScaleUp),
		ScaleDown:           rules(inf.ScaleDown),
	}
	if inf.DrainTarget != nil {
		pol.DrainTarget = inf.DrainTarget.Duration
	}
	if inf.Fallback != nil {
		pol.FailureThreshold = int(inf.Fallback.FailureThreshold)
		pol.FallbackReplicas = ptr.To(inf.Fallback.Replicas)
	}
	return pol, inf.PollInterval.Duration
}

func rules(r *freightcastv1alpha1.ScalingRules) autoscale.Rules {
	if r == nil {
		return autoscale.Rules{}
	}
	out := autoscale.Rules{Select: autoscale.Select(r.SelectPolicy)}
	if r.StabilizationWindow != nil {
		out.StabilizationWindow = ptr.To(r.StabilizationWindow.Duration)
	}
	for _, pol := range r.Policies {
		out.Policies = append(out.Policies, autoscale.RatePolicy{Type: autoscale.PolicyType(pol.Type), Value: pol.Value, Period: pol.Period.Duration})
	}
	return out
}
