package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/spec"
)

// PredictionModelFieldOwner is the server-side apply field manager of the PredictionModel
// controller; it owns every field of the children it sends, and nothing else.
const PredictionModelFieldOwner = "freightcast-predictionmodel"

// The operator loads a ConfigMap's model file with the runtime the pods use before rolling it
// out. A ConfigMap holds at most 1 MiB, which the runtime compiles in milliseconds; the bounds
// keep a hostile file from holding a reconcile worker: past modelCheckTimeout the reconcile goes
// on without a verdict (the pods decide), and the compile that overran keeps the checker's one
// slot until it ends, within the runtime's own limits on what a load may allocate.
const (
	modelCheckTimeout  = 5 * time.Second
	modelCheckMaxBytes = 4 << 20
)

// modelConfigMapIndex indexes PredictionModels by the ConfigMap their source names: the model
// file's, or the CA bundle's of a download.
const modelConfigMapIndex = "spec.source.configMap.name"

// PredictionModelReconciler keeps a PredictionModel's serving Deployment, Service and
// PodDisruptionBudget as its spec says, and reports what they do.
type PredictionModelReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Options  Options
	// APIReader reads around the cache: the model before its pods move to another revision, and
	// its source ConfigMap's content.
	APIReader client.Reader
	// Metrics counts the models' rollbacks.
	Metrics *metrics.Models
	// sources reads the models' source ConfigMaps.
	sources sourceReads
	// restarter deletes stuck serving pods.
	restarter *podRestarter
	// routes, grpcRoutes: the cluster serves Gateway API HTTPRoutes, GRPCRoutes (looked up
	// at setup).
	routes, grpcRoutes bool
}

var _ reconcile.Reconciler = (*PredictionModelReconciler)(nil)

// modelScope is one reconcile's state.
type modelScope struct {
	model *freightcastv1alpha1.PredictionModel
	obs   modelObservation
}

// +kubebuilder:rbac:groups=freightcast.io,resources=predictionmodels,verbs=get;list;watch
// +kubebuilder:rbac:groups=freightcast.io,resources=predictionmodels/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile resolves the model's source, applies the children, heals stuck serving pods, and
// writes the status once.
func (r *PredictionModelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Owner references let the garbage collector remove the children of a deleted model.
	return reconcileObject(ctx, r.Client, req, &freightcastv1alpha1.PredictionModel{}, reconciliation[*freightcastv1alpha1.PredictionModel, *modelScope]{
		logKey: "predictionModel",
		scope:  func(m *freightcastv1alpha1.PredictionModel) *modelScope { return &modelScope{model: m} },
		phases: []phase[*modelScope]{
			r.resolveSource,
			r.applyChildren,
			r.healPods,
		},
		writeStatus: r.writeStatus,
		forget:      r.forget,
	})
}

// healPods deletes a stuck serving pod, notes the crash-looping ones for Ready, and looks again
// when a pod will be stuck. A rollout that failed is left alone: deleting its pods would only
// reset the Deployment's progress, and the status with it. While a rollout is under way it
// looks again every rolloutPollInterval, since the Deployment's status does not change when
// a new pod crashes: so a pod that exits because the model cannot load is reported at once.
func (r *PredictionModelReconciler) healPods(ctx context.Context, s *modelScope) (ctrl.Result, error) {
	if !s.obs.predictor.exists {
		return ctrl.Result{}, nil
	}
	heal := !s.obs.predictor.stalled && s.obs.failed == nil
	pods, recheck, err := r.restarter.healPods(ctx, s.model, types.NamespacedName{Namespace: s.model.Namespace, Name: predictorName(s.model)}, predictorSelector(s.model), heal)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.obs.crashLooping = crashLooping(pods)
	if p := s.obs.predictor; !p.complete && !p.stalled && s.obs.failed == nil {
		recheck = lowestNonZero(recheck, r.rolloutPollInterval())
	}
	return ctrl.Result{RequeueAfter: recheck}, nil
}

// rolloutPollInterval is how often the serving pods of a rollout under way are looked at.
func (r *PredictionModelReconciler) rolloutPollInterval() time.Duration {
	return cmp.Or(r.Options.RolloutPollInterval, defaultRolloutPollInterval)
}

// resolveSource computes the model file's digest, or records why the source cannot be used.
// Only an API error is returned; a missing ConfigMap is an observation, not a failure.
func (r *PredictionModelReconciler) resolveSource(ctx context.Context, s *modelScope) (ctrl.Result, error) {
	src := s.model.Spec.Source
	switch {
	case src.ConfigMap != nil:
		// The cache holds the ConfigMap's metadata only; its content is read when it changed.
		cm, err := r.configMapMetadata(ctx, s.model.Namespace, src.ConfigMap.Name)
		if err != nil {
			return ctrl.Result{}, err
		}
		if cm == nil {
			s.obs.sourceErr = &errSourceNotFound{msg: fmt.Sprintf("ConfigMap %s not found in namespace %s", src.ConfigMap.Name, s.model.Namespace)}
			return ctrl.Result{}, nil
		}
		features := spec.ModelServer(s.model, spec.SpecRevision(s.model, "")).Features
		read, err := r.sources.configMapModel(ctx, client.ObjectKeyFromObject(s.model), cm, spec.ConfigMapKey(src.ConfigMap), features, s.model.Spec.Runtime == nil)
		if err != nil {
			return ctrl.Result{}, err
		}
		s.obs.digest, s.obs.sourceErr, s.obs.unloadable = read.digest, read.sourceErr, read.unloadable
	case src.URI != "":
		s.obs.digest = "sha256:" + src.SHA256
		if ca := src.CABundle; ca != nil {
			cm, err := r.configMapMetadata(ctx, s.model.Namespace, ca.ConfigMap.Name)
			if err != nil {
				return ctrl.Result{}, err
			}
			if cm == nil {
				s.obs.sourceErr = caBundleNotFound(s.model.Namespace, ca.ConfigMap.Name)
				return ctrl.Result{}, nil
			}
			s.obs.sourceErr, err = r.sources.caBundle(ctx, client.ObjectKeyFromObject(s.model), cm, ca)
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// configMapMetadata returns the cached metadata of a ConfigMap (the cache holds no content), nil
// when it does not exist.
func (r *PredictionModelReconciler) configMapMetadata(ctx context.Context, namespace, name string) (*metav1.PartialObjectMetadata, error) {
	cm := &metav1.PartialObjectMetadata{}
	cm.SetGroupVersionKind(configMapGVK)
	switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
	}
	return cm, nil
}

// applyChildren applies the NetworkPolicy, Deployment, Service and PodDisruptionBudget. While the source does
// not resolve, an existing Deployment keeps serving the last model and none is created: rolling
// pods onto a missing file would only take capacity away.
func (r *PredictionModelReconciler) applyChildren(ctx context.Context, s *modelScope) (ctrl.Result, error) {
	if s.obs.applyErr = r.applyChildObjects(ctx, s); s.obs.applyErr != nil {
		return ctrl.Result{}, s.obs.applyErr
	}
	return ctrl.Result{}, nil
}

func (r *PredictionModelReconciler) applyChildObjects(ctx context.Context, s *modelScope) error {
	deploy := &appsv1.Deployment{}
	// The policy goes first, so that no serving pod runs without it.
	if err := reconcileNetworkPolicy(ctx, r.Client, PredictionModelFieldOwner, s.model, networkPolicyEnabled(s.model.Spec.NetworkPolicy),
		desiredPredictorNetworkPolicy(s.model, r.Options)); err != nil {
		return err
	}
	if s.obs.sourceErr == nil {
		if err := r.applyPredictor(ctx, s); err != nil {
			return err
		}
	} else {
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.model.Namespace, Name: predictorName(s.model)}, deploy)
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("reading serving Deployment: %w", err)
		}
		// The Deployment is left as it is, and so is the rollback record.
		s.obs.predictor = rolloutOf(deploy, false)
	}
	if _, err := applyChild(ctx, r.Client, PredictionModelFieldOwner, desiredPredictorService(s.model), &corev1.Service{}, corev1ac.ExtractService); err != nil {
		return err
	}
	if _, err := applyChild(ctx, r.Client, PredictionModelFieldOwner, desiredPredictorPDB(s.model), &policyv1.PodDisruptionBudget{}, policyv1ac.ExtractPodDisruptionBudget); err != nil {
		return err
	}
	var err error
	var route, grpcRoute *freightcastv1alpha1.RouteSpec
	grpcSection := ""
	if mr := s.model.Spec.Route; mr != nil {
		route = &mr.RouteSpec
		if mr.GRPC != nil {
			grpcRoute, grpcSection = route, cmp.Or(mr.GRPC.SectionName, route.Gateway.SectionName)
		}
	}
	s.obs.route, err = reconcileHTTPRoute(ctx, r.Client, PredictionModelFieldOwner, r.routes, s.model, predictorName(s.model), route,
		func() *gatewayv1ac.HTTPRouteApplyConfiguration { return desiredPredictorRoute(s.model) })
	if err != nil {
		return err
	}
	s.obs.grpcRoute, err = reconcileRoute(ctx, r.Client, PredictionModelFieldOwner, r.grpcRoutes, s.model, predictorName(s.model), kindGRPCRoute, grpcRoute, grpcSection,
		func() *gatewayv1ac.GRPCRouteApplyConfiguration { return desiredPredictorGRPCRoute(s.model) },
		func() *gatewayv1.GRPCRoute { return &gatewayv1.GRPCRoute{} }, gatewayv1ac.ExtractGRPCRoute)
	return err
}

// applyPredictor applies the serving Deployment of the spec's revision, or of the last good
// revision while a failed rollout of the spec is rolled back. A rollout of the spec's revision
// that the Deployment controller reports past its progress deadline is rolled back here, once:
// status.failedRollout then keeps the pods on the last good revision until the spec or the
// model file changes, so that the operator does not flap between the two.
func (r *PredictionModelReconciler) applyPredictor(ctx context.Context, s *modelScope) error {
	want := spec.SpecRevision(s.model, s.obs.digest)
	if u := s.obs.unloadable; u != nil {
		return r.refuse(ctx, s, want, u)
	}
	rev, failed := plannedRevision(s.model, want)
	moves, err := r.movesPods(ctx, s.model, rev)
	if err != nil {
		return err
	}
	if moves {
		if err := r.readModelFresh(ctx, s); err != nil {
			return err
		}
		rev, failed = plannedRevision(s.model, want)
	}
	s.obs.failed = failed
	lastGood := s.model.Status.LastGoodRevision
	deploy := &appsv1.Deployment{}
	applied, err := r.applyPredictorRevision(ctx, s, rev, deploy)
	if err != nil {
		return err
	}
	s.obs.predictor, s.obs.served = rolloutOf(deploy, applied), &rev
	if s.obs.failed != nil || s.obs.predictor.complete || applied {
		// A template just written has no pods yet to tell of it.
		return nil
	}
	var failure *freightcastv1alpha1.FailedRollout
	if why, err := r.modelLoadFailure(ctx, s.model, deploy); err != nil {
		return err
	} else if why != "" {
		// A pod of this revision exited because the model cannot load: waiting for the
		// progress deadline, or restarting it, changes nothing.
		failure = &freightcastv1alpha1.FailedRollout{Reason: freightcastv1alpha1.ReasonModelLoadFailed, Message: why}
	} else if rolloutFailed(deploy, applied) {
		message := s.obs.predictor.message
		if why := r.failingPods(ctx, s.model); why != "" {
			message += "; " + why
		}
		failure = &freightcastv1alpha1.FailedRollout{Reason: freightcastv1alpha1.ReasonRolloutFailed, Message: message}
	}
	if failure == nil {
		return nil
	}
	if failure.Reason == freightcastv1alpha1.ReasonRolloutFailed && (lastGood == nil || equality.Semantic.DeepEqual(*lastGood, want)) {
		// Nothing to roll back to when the last good revision is the spec's own: the failure
		// comes from elsewhere (image, resources, the cluster), and the conditions report it.
		return nil
	}
	failure.Generation, failure.Revision, failure.Message = s.model.Generation, want, truncateString(failure.Message, 4096)
	s.obs.failed = failure
	if lastGood == nil || equality.Semantic.DeepEqual(*lastGood, want) {
		// Nothing else to serve: the Deployment stays, its pods exit at once and the kubelet
		// backs off; the record keeps the status on the reason.
		return nil
	}
	deploy = &appsv1.Deployment{}
	applied, err = r.applyPredictorRevision(ctx, s, *lastGood, deploy)
	if err != nil {
		return err
	}
	s.obs.predictor, s.obs.served = rolloutOf(deploy, applied), lastGood
	return nil
}

// refuse keeps the spec's revision want, whose model file the operator loaded and found unable
// to serve, off the pods: they stay on the last good revision (applied, so that it is restored
// if edited), or as they are when there is none, and none is created. The record says why.
func (r *PredictionModelReconciler) refuse(ctx context.Context, s *modelScope, want freightcastv1alpha1.ModelRevision, u *modelcheck.Unloadable) error {
	reason := freightcastv1alpha1.ReasonInvalidModel
	if u.Kind == modelcheck.Unsupported {
		reason = freightcastv1alpha1.ReasonUnsupportedModel
	}
	s.obs.failed = &freightcastv1alpha1.FailedRollout{Generation: s.model.Generation, Revision: want, Reason: reason, Message: truncateString(u.Error(), 4096)}
	if lastGood := s.model.Status.LastGoodRevision; lastGood != nil && !equality.Semantic.DeepEqual(*lastGood, want) {
		deploy := &appsv1.Deployment{}
		applied, err := r.applyPredictorRevision(ctx, s, *lastGood, deploy)
		if err != nil {
			return err
		}
		s.obs.predictor, s.obs.served = rolloutOf(deploy, applied), lastGood
		return nil
	}
	deploy := &appsv1.Deployment{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.model.Namespace, Name: predictorName(s.model)}, deploy)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading serving Deployment: %w", err)
	}
	s.obs.predictor = rolloutOf(deploy, false)
	return nil
}

// modelLoadFailure describes the first container of a pod of deploy's current template that
// exited because the model cannot load (modelcheck.ExitUnloadable), with its termination
// message; "" when none did.
func (r *PredictionModelReconciler) modelLoadFailure(ctx context.Context, model *freightcastv1alpha1.PredictionModel, deploy *appsv1.Deployment) (string, error) {
	if model.Spec.Runtime != nil {
		// Exit code 78 is Freightcast's word for a model that cannot load; another runtime's
		// exit codes say nothing of the kind, and the progress deadline judges its rollout.
		return "", nil
	}
	var pods corev1.PodList
	if err := r.restarter.APIReader.List(ctx, &pods, client.InNamespace(model.Namespace), client.MatchingLabels(predictorSelector(model))); err != nil {
		return "", fmt.Errorf("listing serving pods: %w", err)
	}
	return unloadableExit(pods.Items, &deploy.Spec.Template), nil
}

// plannedRevision is the revision the serving pods should run: the spec's (want), or the last
// good one while the spec's rollout failed and was rolled back, with that rollback's record. The
// rollback stays in force until the model file changes too (a new digest).
func plannedRevision(model *freightcastv1alpha1.PredictionModel, want freightcastv1alpha1.ModelRevision) (freightcastv1alpha1.ModelRevision, *freightcastv1alpha1.FailedRollout) {
	f := model.Status.FailedRollout
	if f == nil || f.Generation != model.Generation || !equality.Semantic.DeepEqual(f.Revision, want) {
		return want, nil
	}
	if good := spec.RolledBackTo(model); good != nil {
		return *good, f
	}
	// A failure with nothing to roll back to: the pods stay on want, and the record on the
	// status, whatever becomes of the failing pods.
	return want, f
}

// movesPods reports whether serving rev changes the revision the existing serving Deployment
// runs: its model source, version and digest.
func (r *PredictionModelReconciler) movesPods(ctx context.Context, model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision) (bool, error) {
	live := &appsv1.Deployment{}
	switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: model.Namespace, Name: predictorName(model)}, live); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading serving Deployment: %w", err)
	}
	if live.Spec.Template.Annotations[annotationModelDigest] != rev.Digest || len(live.Spec.Template.Spec.Containers) == 0 {
		return true, nil
	}
	if model.Spec.Runtime != nil {
		return live.Spec.Template.Annotations[annotationModelRevision] != revisionString(rev), nil
	}
	args := live.Spec.Template.Spec.Containers[0].Args
	for _, arg := range modelMountFor(model, rev).args {
		if !slices.Contains(args, arg) {
			return true, nil
		}
	}
	return false, nil
}

// readModelFresh replaces the scope's model with the API server's. The revision the pods run is
// decided on the model's rollback record, which this reconciler wrote itself a moment before and
// which the cache may not hold yet: a reconcile working from a model without it would roll the
// failed revision out once more, and the next one back. So before the pods move to another
// revision the decision is taken on the model as stored; the status is then written on it too.
func (r *PredictionModelReconciler) readModelFresh(ctx context.Context, s *modelScope) error {
	fresh := &freightcastv1alpha1.PredictionModel{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(s.model), fresh); err != nil {
		return fmt.Errorf("reading PredictionModel %s: %w", s.model.Name, err)
	}
	if fresh.Generation != s.model.Generation {
		// The source digest was resolved for the cached spec; the watch brings the new one.
		return fmt.Errorf("PredictionModel %s changed during the reconcile (generation %d, now %d)", s.model.Name, s.model.Generation, fresh.Generation)
	}
	s.model = fresh
	return nil
}

// failingPods describes why the serving pods that are not ready fail (their containers' waiting
// reasons and last exits), "" when that cannot be read: the rollback does not wait on it.
func (r *PredictionModelReconciler) failingPods(ctx context.Context, model *freightcastv1alpha1.PredictionModel) string {
	var pods corev1.PodList
	if err := r.restarter.APIReader.List(ctx, &pods, client.InNamespace(model.Namespace), client.MatchingLabels(predictorSelector(model))); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing serving pods")
		return ""
	}
	return podProblems(pods.Items)
}

func (r *PredictionModelReconciler) applyPredictorRevision(ctx context.Context, s *modelScope, rev freightcastv1alpha1.ModelRevision, deploy *appsv1.Deployment) (bool, error) {
	applied, err := applyChild(ctx, r.Client, PredictionModelFieldOwner, desiredPredictorDeployment(s.model, rev, r.Options), deploy, appsv1ac.ExtractDeployment)
	if err != nil {
		return false, err
	}
	if applied {
		r.Recorder.Eventf(s.model, deploy, corev1.EventTypeNormal, "Applied", "ApplyDeployment",
			"Applied serving Deployment %s (model %s)", predictorName(s.model), revisionString(rev))
	}
	return applied, nil
}

// rolloutFailed reports whether d, as read before any write (applied false: its template is
// the one just wanted), is a rollout that the Deployment controller gave up on: it observed the
// current template and reports ProgressDeadlineExceeded for it.
func rolloutFailed(d *appsv1.Deployment, applied bool) bool {
	r := rolloutOf(d, applied)
	return r.stalled && !applied && d.Status.ObservedGeneration >= d.Generation
}

// revisionString names a revision for humans: its digest, or its source when no digest is known.
func revisionString(rev freightcastv1alpha1.ModelRevision) string {
	src := rev.Source
	var where string
	switch {
	case src.ConfigMap != nil:
		where = "ConfigMap " + src.ConfigMap.Name
		if k := spec.ConfigMapKey(src.ConfigMap); k != "model.onnx" {
			where += " key " + k
		}
	case src.PersistentVolumeClaim != nil:
		where = fmt.Sprintf("pvc %s:%s", src.PersistentVolumeClaim.ClaimName, src.PersistentVolumeClaim.Path)
	case src.URI != "":
		where = src.URI
	default:
		where = "unknown source"
	}
	if rev.Version != "" {
		where += " version " + rev.Version
	}
	if rev.Digest != "" {
		where += " (" + rev.Digest + ")"
	}
	return where
}

// writeStatus computes the status, records events for condition changes, and patches the
// status subresource only when it differs from what the API server has.
func (r *PredictionModelReconciler) writeStatus(ctx context.Context, s *modelScope) error {
	status := modelStatus(s.model, s.obs, r.Clock.Now())
	r.Metrics.Seen(s.model.Namespace, s.model.Name)
	if equality.Semantic.DeepEqual(status, s.model.Status) {
		return nil
	}
	before, failedBefore := s.model.Status.Conditions, s.model.Status.FailedRollout
	// The whole status is ours: an update (not a merge patch) also stores zero counts, which
	// printer columns show, and its resourceVersion is the optimistic lock.
	s.model.Status = status
	if err := r.Client.Status().Update(ctx, s.model); err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	// Only a status that was written tells news: a reconcile working from a stale cache loses
	// the optimistic lock (resourceVersion) and must not repeat the events of the one that won.
	recordConditionChanges(r.Recorder, s.model, before, status.Conditions)
	if f := status.FailedRollout; f != nil && !equality.Semantic.DeepEqual(f, failedBefore) && rolledBack(f, status.LastGoodRevision) {
		r.Metrics.RolledBack(s.model.Namespace, s.model.Name)
		r.Recorder.Eventf(s.model, nil, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonRolledBack, "RollBack",
			"%s", truncateNote(fmt.Sprintf("Rolled the serving pods back to %s: the rollout of %s failed (%s): %s",
				revisionString(*status.LastGoodRevision), revisionString(f.Revision), cmp.Or(f.Reason, freightcastv1alpha1.ReasonRolloutFailed), f.Message)))
	}
	return nil
}

// rolledBack tells whether the pods were moved back to lastGood because of failure f: not when
// there is nothing to go back to, nor when the operator refused f's model before any pod moved.
func rolledBack(f *freightcastv1alpha1.FailedRollout, lastGood *freightcastv1alpha1.ModelRevision) bool {
	switch {
	case lastGood == nil || equality.Semantic.DeepEqual(*lastGood, f.Revision):
		return false
	case f.Reason == freightcastv1alpha1.ReasonUnsupportedModel || f.Reason == freightcastv1alpha1.ReasonInvalidModel:
		return false
	}
	return true
}

// forget drops what the operator keeps in memory about a model that is gone.
func (r *PredictionModelReconciler) forget(key types.NamespacedName) {
	r.sources.forget(key)
	r.Metrics.Forget(key.Namespace, key.Name)
	r.restarter.forget(key)
}

// SetupWithManager registers the controller, its watches and the ConfigMap index.
func (r *PredictionModelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.sources.apiReader = r.APIReader
	r.sources.checker = modelcheck.NewChecker(modelCheckTimeout, modelCheckMaxBytes)
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &freightcastv1alpha1.PredictionModel{}, modelConfigMapIndex,
		func(o client.Object) []string {
			src := o.(*freightcastv1alpha1.PredictionModel).Spec.Source
			switch {
			case src.ConfigMap != nil:
				return []string{src.ConfigMap.Name}
			case src.CABundle != nil:
				return []string{src.CABundle.ConfigMap.Name}
			}
			return nil
		}); err != nil {
		return err
	}
	var err error
	if r.routes, err = httpRoutesServed(mgr.GetRESTMapper()); err != nil {
		return err
	}
	if r.grpcRoutes, err = routeKindServed(mgr.GetRESTMapper(), kindGRPCRoute); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&freightcastv1alpha1.PredictionModel{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		// A ConfigMap that appeared or whose content changed wakes the models it is the source
		// of (the model file's, or a download's CA bundle): their pods must roll, or may now. Its metadata tells (a new resourceVersion); its content,
		// maybe a model of up to 1 MiB, is not cached.
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(
			requestsByIndex(r.Client, &freightcastv1alpha1.PredictionModelList{}, modelConfigMapIndex)))
	if r.routes {
		b = b.Owns(&gatewayv1.HTTPRoute{})
	}
	if r.grpcRoutes {
		b = b.Owns(&gatewayv1.GRPCRoute{})
	}
	return b.Named("predictionmodel").Complete(r)
}
