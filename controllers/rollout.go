package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// rollout summarises a Deployment for the status functions.
type rollout struct {
	// exists is false when the Deployment has not been created yet.
	exists bool
	// desired is spec.replicas; replicas, updated and ready are from status.
	desired, replicas, updated, ready int32
	// complete: the controller observed the current spec and every desired pod is updated,
	// ready, and the only one of its kind (no old pods left).
	complete bool
	// stalled: the Deployment controller reports ProgressDeadlineExceeded.
	stalled bool
	// message explains an incomplete or stalled rollout.
	message string
}

// rolloutOf reads d. changed tells that the operator has just written d's spec, so whatever its
// status says describes the previous spec.
func rolloutOf(d *appsv1.Deployment, changed bool) rollout {
	if d == nil || d.CreationTimestamp.IsZero() {
		return rollout{message: "Deployment not created yet"}
	}
	r := rollout{
		exists:   true,
		desired:  1,
		replicas: d.Status.Replicas,
		updated:  d.Status.UpdatedReplicas,
		ready:    d.Status.ReadyReplicas,
	}
	if d.Spec.Replicas != nil {
		r.desired = *d.Spec.Replicas
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			r.stalled = true
			r.message = fmt.Sprintf("Deployment %s: %s", d.Name, c.Message)
		}
	}
	observed := !changed && d.Status.ObservedGeneration >= d.Generation
	r.complete = observed && r.updated == r.desired && r.ready == r.desired && r.replicas == r.desired
	if !r.complete && !r.stalled {
		switch {
		case !observed:
			r.message = fmt.Sprintf("Deployment %s: waiting for the Deployment controller to observe the new spec", d.Name)
		default:
			r.message = fmt.Sprintf("Deployment %s: %d of %d pods updated, %d ready", d.Name, r.updated, r.desired, r.ready)
		}
	}
	return r
}

// rolloutOfStatefulSet reads st as rolloutOf reads a Deployment.
func rolloutOfStatefulSet(st *appsv1.StatefulSet, changed bool) rollout {
	if st == nil || st.CreationTimestamp.IsZero() {
		return rollout{message: "StatefulSet not created yet"}
	}
	r := rollout{exists: true, desired: 1, replicas: st.Status.Replicas, updated: st.Status.UpdatedReplicas, ready: st.Status.ReadyReplicas}
	if st.Spec.Replicas != nil {
		r.desired = *st.Spec.Replicas
	}
	observed := !changed && st.Status.ObservedGeneration >= st.Generation
	r.complete = observed && r.updated == r.desired && r.ready == r.desired && r.replicas == r.desired
	switch {
	case r.complete:
	case !observed:
		r.message = fmt.Sprintf("StatefulSet %s: waiting for the StatefulSet controller to observe the new spec", st.Name)
	default:
		r.message = fmt.Sprintf("StatefulSet %s: %d of %d pods updated, %d ready", st.Name, r.updated, r.desired, r.ready)
	}
	return r
}
