package controllers

import (
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// modelObservation is what one reconcile of a PredictionModel learned.
type modelObservation struct {
	// digest of the resolved model file ("" when unknown or unresolved).
	digest string
	// sourceErr is an *errSourceNotFound or *errSourceInvalid when the source did not resolve.
	sourceErr error
	// predictor is the serving Deployment's rollout.
	predictor rollout
	// applyErr is the first error writing a child.
	applyErr error
	// served is the revision the serving Deployment was given (the spec's, or the last good
	// one while rolled back); nil when the reconcile did not get that far, and the status then
	// keeps its rollback record as it was.
	served *freightcastv1alpha1.ModelRevision
	// failed is the rollout of the spec's revision that was rolled back, nil when none is.
	failed *freightcastv1alpha1.FailedRollout
	// crashLooping describes the serving pods in CrashLoopBackOff.
	crashLooping []string
	// route is what became of spec.route.
	route routeObservation
}

// computeModelStatus derives the whole status from the observation. It is pure: the same
// inputs give the same status, and conditions keep their transition times unless they change.
func computeModelStatus(model *freightcastv1alpha1.PredictionModel, obs modelObservation, now time.Time) freightcastv1alpha1.PredictionModelStatus {
	st := model.Status
	st.ObservedGeneration = model.Generation
	st.Selector = labels.SelectorFromSet(predictorSelector(model)).String()
	st.Endpoint = predictorEndpoint(model)
	st.Replicas = obs.predictor.replicas
	st.ReadyReplicas = obs.predictor.ready
	if obs.served != nil {
		st.FailedRollout = obs.failed
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
	rolledBack := ""
	if f := st.FailedRollout; f != nil && st.LastGoodRevision != nil {
		rolledBack = fmt.Sprintf("the rollout of %s failed: %s; the serving pods were rolled back to %s and stay there until the spec or the model file changes",
			revisionString(f.Revision), f.Message, revisionString(*st.LastGoodRevision))
	}

	c := newConditionSetter(model.Status.Conditions, model.Generation, now)
	p := obs.predictor
	notFound, isNotFound := asError[*errSourceNotFound](obs.sourceErr)
	invalid, isInvalid := asError[*errSourceInvalid](obs.sourceErr)

	// ModelLoaded: pods only pass readiness once they have loaded the model, so a finished
	// rollout with ready pods proves the current model file loads.
	switch {
	case isNotFound:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonSourceNotFound, notFound.Error())
	case isInvalid:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonSourceInvalid, invalid.Error())
	case rolledBack != "":
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonRolloutFailed, rolledBack)
	case p.exists && p.desired == 0:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonScaledToZero, "spec.replicas is 0: no pod serves the model")
	case p.complete && p.ready > 0:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded,
			fmt.Sprintf("%d of %d serving pods loaded the model", p.ready, p.desired))
	case p.stalled:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonProgressDeadlineExceeded, p.message)
	default:
		c.set(freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading, p.message)
	}

	// Degraded: what waiting alone will not fix.
	switch {
	case isNotFound:
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonSourceNotFound, notFound.Error())
	case isInvalid:
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonSourceInvalid, invalid.Error())
	case obs.applyErr != nil:
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonApplyFailed, obs.applyErr.Error())
	case rolledBack != "":
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonRolloutFailed, rolledBack)
	case p.stalled:
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonProgressDeadlineExceeded, p.message)
	default:
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected, "")
	}

	// Progressing: converging on the current spec.
	switch {
	case obs.sourceErr != nil || p.stalled || rolledBack != "":
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, c.get(freightcastv1alpha1.ConditionDegraded).Reason,
			"not progressing: "+c.get(freightcastv1alpha1.ConditionDegraded).Message)
	case !p.complete:
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut, p.message)
	default:
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciled, "the serving pods run the current spec")
	}

	// Ready: serving the current spec with every desired pod.
	loaded := c.get(freightcastv1alpha1.ConditionModelLoaded)
	switch {
	case c.isTrue(freightcastv1alpha1.ConditionDegraded):
		deg := c.get(freightcastv1alpha1.ConditionDegraded)
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, deg.Reason, deg.Message)
	case loaded.Status != metav1.ConditionTrue:
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, loaded.Reason, loaded.Message)
	case len(obs.crashLooping) > 0:
		// The Deployment may count every desired pod ready for a moment between two crashes.
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonCrashLoopBackOff,
			strings.Join(obs.crashLooping, "; "))
	default:
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable,
			fmt.Sprintf("serving at %s", st.Endpoint))
	}
	setRouteCondition(c, obs.route)
	st.Conditions = c.conditions
	return st
}
