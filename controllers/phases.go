package controllers

import (
	"context"
	"errors"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// phase is one step of a reconcile, working on the reconcile's scope S. Its result asks for the
// reconcile to run again after a while (a pod reaching a threshold, a server to retry); failures
// of the world it records in the scope for the status, and only what retrying may fix is an error.
type phase[S any] func(ctx context.Context, s S) (ctrl.Result, error)

// reconciliation is what one kind's Reconcile is made of, for reconcileObject.
type reconciliation[O client.Object, S any] struct {
	// logKey names the object in the reconcile's log lines.
	logKey string
	// scope starts a reconcile's state for the object read.
	scope func(O) S
	// phases run in order; the first error stops them, since the phases after build on what
	// the failed one should have done.
	phases []phase[S]
	// finalize, when set, runs instead of phases for an object being deleted: it gives back
	// what the owner references do not (a pipeline's streams on NATS) and removes the
	// finalizer. The status is written after it as after phases.
	finalize []phase[S]
	// writeStatus writes the status from the scope, once, whatever the phases did.
	writeStatus func(context.Context, S) error
	// forget drops what the controller keeps in memory of an object that is gone.
	forget func(types.NamespacedName)
}

// reconcileObject is the Reconcile both kinds share, a table of contents: read the object
// (gone: forget it), leave one being deleted to the garbage collector (owner references take the
// children) unless it has a finalize step, run the phases (or the finalize step), merge their
// results with lowestNonZeroResult, and write the status once in a deferred step.
func reconcileObject[O client.Object, S any](ctx context.Context, c client.Client, req ctrl.Request, obj O, r reconciliation[O, S]) (res ctrl.Result, reterr error) {
	if err := c.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	phases := r.phases
	if !obj.GetDeletionTimestamp().IsZero() {
		if r.finalize == nil {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		phases = r.finalize
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues(r.logKey, klog.KObj(obj)))
	s := r.scope(obj)
	defer func() {
		if err := r.writeStatus(ctx, s); err != nil {
			reterr = errors.Join(reterr, err)
		}
		if reterr != nil {
			// An error brings its own backoff; a RequeueAfter beside it would be ignored.
			res = ctrl.Result{}
		}
	}()
	for _, ph := range phases {
		phaseRes, err := ph(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		res = lowestNonZeroResult(res, phaseRes)
	}
	return res, nil
}

// lowestNonZeroResult merges two phases' results: the sooner of the requeues they ask for.
func lowestNonZeroResult(a, b ctrl.Result) ctrl.Result {
	return ctrl.Result{RequeueAfter: lowestNonZero(a.RequeueAfter, b.RequeueAfter)}
}

// lowestNonZero is the sooner of two requeue delays, of those that are set.
func lowestNonZero(a, b time.Duration) time.Duration {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}
