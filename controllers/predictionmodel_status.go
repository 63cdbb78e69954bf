package controllers

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/modelcheck"
)

// modelObservation is what one reconcile of a PredictionModel learned.
type modelObservation struct {
	// digest of the resolved model file ("" when unknown or unresolved).
	digest string
	// sourceErr is an *errSourceNotFound or *errSourceInvalid when the source did not resolve.
	sourceErr error
	// unloadable is why the operator's own load of the source's model file refused it, nil when
	// it loaded or was not checked.
	unloadable *modelcheck.Unloadable
	// predictor is the serving Deployment's rollout.
	predictor rollout
	// applyErr is the first error writing a child.
	applyErr error
	// served is the revision the serving Deployment was given (the spec's, or the last good
	// one while rolled back); nil when the reconcile did not get that far, and the status then
	// keeps its rollback record as it was.
	served *freightcastv1alpha1.ModelRevision
	// failed is the rollout of the spec's revision that failed (rolled back, when there was a
	// revision to go back to) or was refused, nil when none did.
	failed *freightcastv1alpha1.FailedRollout
	// crashLooping describes the serving pods in CrashLoopBackOff.
	crashLooping []string
	// route and grpcRoute are what became of spec.route's HTTPRoute and GRPCRoute.
	route, grpcRoute routeObservation
}

// modelStatus derives the whole status from the observation, one condition setter after the
// other. It is pure: the same inputs give the same status, and conditions keep their transition
// times unless they change.
func modelStatus(model *freightcastv1alpha1.PredictionModel, obs modelObservation, now time.Time) freightcastv1alpha1.PredictionModelStatus {
	st := model.Status
	st.ObservedGeneration = model.Generation
	st.Selector = labels.SelectorFromSet(predictorSelector(model)).String()
	st.Endpoint = predictorEndpoint(model)
	st.Replicas = obs.predictor.replicas
	st.ReadyReplicas = obs.predictor.ready
	if obs.served != nil || obs.failed != nil {
		st.FailedRollout = obs.failed
	}
	if obs.served != nil {
		if obs.sourceErr == nil && obs.predictor.complete {
			// The digest reports what is served, so it moves only once the rollout has finished.
			st.ModelDigest = obs.served.Digest
			if obs.failed == nil && obs.predictor.ready > 0 {
				// Every pod of this revision loaded the model and passes readiness: it is what
				// a later failed rollout comes back to.
				st.LastGoodRevision = obs.served.DeepCopy()
			}
		}
	}
	failure := rolloutFailure(model.Generation, st.FailedRollout, st.LastGoodRevision)

	c := newConditionSetter(model.Status.Conditions, model.Generation, now)
	p := obs.predictor
	setModelLoaded(c, obs.sourceErr, failure, p, model.Spec.Runtime)
	setDegraded(c, modelProblems(obs, failure)...)
	rolling := problem{}
	if !p.complete {
		rolling = problem{freightcastv1alpha1.ReasonRollingOut, p.message}
	}
	setProgressing(c, obs.sourceErr != nil || p.stalled || !failure.none(), rolling,
		problem{freightcastv1alpha1.ReasonReconciled, "the serving pods run the current spec"})
	// Ready: serving the current spec with every desired pod. The Deployment may count every
	// desired pod ready for a moment between two crashes, hence the crash-looping pods.
	var blockers []problem
	if loaded := c.get(freightcastv1alpha1.ConditionModelLoaded); loaded.Status != metav1.ConditionTrue {
		blockers = append(blockers, problem{loaded.Reason, loaded.Message})
	}
	if len(obs.crashLooping) > 0 {
		blockers = append(blockers, problem{freightcastv1alpha1.ReasonCrashLoopBackOff, strings.Join(obs.crashLooping, "; ")})
	}
	setReady(c, problem{freightcastv1alpha1.ReasonAvailable, fmt.Sprintf("serving at %s", st.Endpoint)}, blockers...)
	setRouteCondition(c, obs.route, obs.grpcRoute)
	st.Conditions = c.conditions
	return st
}

// rolloutFailure is the problem a failed or refused rollout of the current generation is, with
// what the pods serve meanwhile; the zero problem when there is none.
func rolloutFailure(generation int64, f *freightcastv1alpha1.FailedRollout, lastGood *freightcastv1alpha1.ModelRevision) problem {
	if f == nil || f.Generation != generation {
		return problem{}
	}
	reason := cmp.Or(f.Reason, freightcastv1alpha1.ReasonRolloutFailed)
	var what string
	switch reason {
	case freightcastv1alpha1.ReasonUnsupportedModel, freightcastv1alpha1.ReasonInvalidModel:
		what = fmt.Sprintf("the model file of %s cannot load, so no pod was moved to it: %s", revisionString(f.Revision), f.Message)
	case freightcastv1alpha1.ReasonModelLoadFailed:
		what = fmt.Sprintf("the model of %s cannot load: %s", revisionString(f.Revision), f.Message)
	default:
		what = fmt.Sprintf("the rollout of %s failed: %s", revisionString(f.Revision), f.Message)
	}
	var serving string
	switch {
	case lastGood == nil || equality.Semantic.DeepEqual(*lastGood, f.Revision):
		serving = "no other revision served before it, so nothing serves the model until the spec or the model file changes"
	case rolledBack(f, lastGood):
		serving = fmt.Sprintf("the serving pods were rolled back to %s and stay there until the spec or the model file changes", revisionString(*lastGood))
	default:
		serving = fmt.Sprintf("the serving pods stay on %s until the spec or the model file changes", revisionString(*lastGood))
	}
	return problem{reason, what + "; " + serving}
}

// setModelLoaded sets ModelLoaded. Pods only pass readiness once they have loaded the model, so
// a finished rollout with ready pods proves the current model file loads. failure is a failed
// or refused rollout of the spec, the zero problem when there is none.
// With another runtime (rt), True says its pods pass the protocol's readiness, and that the
// operator's own checks of the file were skipped.
func setModelLoaded(c *conditionSetter, sourceErr error, failure problem, p rollout, rt *freightcastv1alpha1.RuntimeSpec) {
	const loaded = freightcastv1alpha1.ConditionModelLoaded
	if sp := sourceProblem(sourceErr); !sp.none() {
		c.set(loaded, metav1.ConditionFalse, sp.reason, sp.message)
		return
	}
	switch {
	case !failure.none():
		c.set(loaded, metav1.ConditionFalse, failure.reason, failure.message)
	case p.exists && p.desired == 0:
		c.set(loaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonScaledToZero, "spec.replicas is 0: no pod serves the model")
	case p.complete && p.ready > 0 && rt != nil:
		c.set(loaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded, fmt.Sprintf("%d of %d serving pods of runtime %s are ready (Open Inference Protocol %s); "+
			"the operator's checks of the model file against its features and inputs were skipped: they apply to Freightcast's own runtime only", p.ready, p.desired, rt.Image, rt.Protocol))
	case p.complete && p.ready > 0:
		c.set(loaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded, fmt.Sprintf("%d of %d serving pods loaded the model", p.ready, p.desired))
	case p.stalled:
		c.set(loaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonProgressDeadlineExceeded, p.message)
	default:
		c.set(loaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading, p.message)
	}
}

// sourceProblem is why the model's source does not resolve, the zero problem when it does.
func sourceProblem(err error) problem {
	if e, ok := asError[*errSourceNotFound](err); ok {
		return problem{freightcastv1alpha1.ReasonSourceNotFound, e.Error()}
	}
	if e, ok := asError[*errSourceInvalid](err); ok {
		return problem{freightcastv1alpha1.ReasonSourceInvalid, e.Error()}
	}
	return problem{}
}

// modelProblems are what may degrade a model, most important first.
func modelProblems(obs modelObservation, failure problem) []problem {
	out := []problem{sourceProblem(obs.sourceErr)}
	if obs.applyErr != nil {
		out = append(out, problem{freightcastv1alpha1.ReasonApplyFailed, obs.applyErr.Error()})
	}
	out = append(out, failure)
	if obs.predictor.stalled {
		out = append(out, problem{freightcastv1alpha1.ReasonProgressDeadlineExceeded, obs.predictor.message})
	}
	return out
}
