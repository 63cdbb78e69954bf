package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// FreightPipelineFieldOwner is the server-side apply field manager of the FreightPipeline
// controller.
const FreightPipelineFieldOwner = "freightcast-freightpipeline"

// pipelineModelIndex indexes FreightPipelines by the PredictionModel they reference.
const pipelineModelIndex = "spec.modelRef.name"

// pipelineLookupConfigMapIndex indexes FreightPipelines by the ConfigMaps their lookup tables
// are kept in.
const pipelineLookupConfigMapIndex = "spec.lookupTables.configMapRef.name"

// queueRetryInterval is how soon a pipeline whose NATS server did not answer is looked at again.
const queueRetryInterval = 10 * time.Second

// queueCallTimeout bounds one pipeline's provisioning calls, so that an unreachable server
// cannot hold a reconcile worker.
const queueCallTimeout = 5 * time.Second

// JetStreamConnector hands out JetStream contexts by server URL; *queue.Connector is one.
type JetStreamConnector interface {
	JetStream(url string) (jetstream.JetStream, error)
}

// FreightPipelineReconciler provisions a pipeline's queue, applies its ingestion and inference
// children, and reports what they do.
type FreightPipelineReconciler struct {
	Client client.Client
	// APIReader reads what the cache does not hold: pods, namespaces.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Queue     JetStreamConnector
	Options   Options
	// restarter deletes stuck inference pods.
	restarter *podRestarter
	// failures times failing stream deletions, for Options.QueueDeletionTimeout.
	failures failureClock
	// routes: the cluster serves Gateway API HTTPRoutes (looked up at setup).
	routes bool
}

var _ reconcile.Reconciler = (*FreightPipelineReconciler)(nil)

// pipelineScope is one reconcile's state.
type pipelineScope struct {
	pipeline *freightcastv1alpha1.FreightPipeline
	obs      pipelineObservation
	// released: the finalizer is gone, and the pipeline with it; there is no status to write.
	released bool
}

// +kubebuilder:rbac:groups=freightcast.io,resources=freightpipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=freightcast.io,resources=freightpipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=freightcast.io,resources=predictionmodels,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=freightcast.io,resources=freightpipelines,verbs=update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// Reconcile reads the pipeline's model, provisions its queue, applies its children, looks at
// its backlog and its stuck workers, and writes the status once. A pipeline being deleted has
// its streams deleted or kept as its deletionPolicy says (deleteQueue); its children go with
// their owner references.
func (r *FreightPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return reconcileObject(ctx, r.Client, req, &freightcastv1alpha1.FreightPipeline{}, reconciliation[*freightcastv1alpha1.FreightPipeline, *pipelineScope]{
		logKey: "freightPipeline",
		scope:  func(p *freightcastv1alpha1.FreightPipeline) *pipelineScope { return &pipelineScope{pipeline: p} },
		finalize: []phase[*pipelineScope]{
			r.deleteQueue,
		},
		phases: []phase[*pipelineScope]{
			r.ensureQueueFinalizer,
			r.getModel,
			r.checkFeatures,
			r.provisionQueue,
			r.applyChildren,
			r.observeQueueStall,
			r.healPods,
		},
		writeStatus: r.writeStatus,
		forget:      r.forget,
	})
}

// getModel reads the referenced PredictionModel; a missing one is an observation, not an error.
func (r *FreightPipelineReconciler) getModel(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	model := &freightcastv1alpha1.PredictionModel{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.pipeline.Namespace, Name: s.pipeline.Spec.ModelRef.Name}, model)
	switch {
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("reading PredictionModel %s: %w", s.pipeline.Spec.ModelRef.Name, err)
	}
	s.obs.model = model
	return ctrl.Result{}, nil
}

// checkFeatures compiles the pipeline's feature transforms against its model, as its ingestion
// pods will: the fallback of the validating webhook, and the check of what only the model tells
// (the features' names and types). A refusal is an observation, not an error: retrying cannot
// fix the spec.
func (r *FreightPipelineReconciler) checkFeatures(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	p := s.pipeline
	s.obs.reportingSpec = featuresObservation{declared: p.Spec.Reporting != nil, err: spec.CheckReporting(p)}
	s.obs.features = featuresObservation{declared: len(p.Spec.Features) > 0 || len(p.Spec.LookupTables) > 0}
	if !s.obs.features.declared {
		return ctrl.Result{}, nil
	}
	// The tables' ConfigMaps are read around the cache, which holds only the operator's own
	// ConfigMaps; their metadata is watched (SetupWithManager), so an edit comes back here and,
	// through the config's digest, rolls the ingestion pods.
	t, err := spec.ResolvedTransforms(p, func(name string) (map[string]string, bool, error) {
		cm := &corev1.ConfigMap{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, cm)
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return cm.Data, err == nil, err
	})
	switch {
	case errors.Is(err, spec.ErrInvalidLookupTable):
		s.obs.features.err, s.obs.features.reason = err, freightcastv1alpha1.ReasonInvalidLookupTable
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	s.obs.features.transforms = t
	if err := spec.CheckResolvedTransforms(t, s.obs.model); err != nil {
		s.obs.features.err, s.obs.features.reason = err, freightcastv1alpha1.ReasonInvalidFeatureTransform
	}
	return ctrl.Result{}, nil
}

// observeQueueStall reads the backlog stall the autoscaler records in status, and looks again
// when a stall that does not count yet will.
func (r *FreightPipelineReconciler) observeQueueStall(_ context.Context, s *pipelineScope) (ctrl.Result, error) {
	var res ctrl.Result
	s.obs.queueStall, res.RequeueAfter = observeQueueStall(s.pipeline, cmp.Or(r.Options.QueueStallGrace, defaultQueueStallGrace), r.Clock.Now())
	return res, nil
}

// healPods deletes a stuck inference pod, and looks again when one will be.
func (r *FreightPipelineReconciler) healPods(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	if !s.obs.inference.exists {
		return ctrl.Result{}, nil
	}
	p := s.pipeline
	_, recheck, err := r.restarter.healPods(ctx, p, types.NamespacedName{Namespace: p.Namespace, Name: inferenceName(p)}, pipelineSelector(p, componentInference), !s.obs.inference.stalled)
	return ctrl.Result{RequeueAfter: recheck}, err
}

// applyChildren applies the NetworkPolicy, the config, the Services and the two Deployments. The Deployments are
// first created only once the model has loaded (pods that cannot load it would crash-loop); once
// they exist they follow the model and the spec.
func (r *FreightPipelineReconciler) applyChildren(ctx context.Context, s *pipelineScope) (ctrl.Result, error) {
	if s.obs.applyErr = r.applyChildObjects(ctx, s); s.obs.applyErr != nil {
		return ctrl.Result{}, s.obs.applyErr
	}
	return ctrl.Result{}, nil
}

func (r *FreightPipelineReconciler) applyChildObjects(ctx context.Context, s *pipelineScope) error {
	p := s.pipeline
	// The policy goes first, so that no pod of the pipeline runs without it.
	if err := reconcileNetworkPolicy(ctx, r.Client, FreightPipelineFieldOwner, p, networkPolicyEnabled(p.Spec.NetworkPolicy),
		desiredPipelineNetworkPolicy(p, s.obs.model, s.obs.queue.natsURL, r.Options)); err != nil {
		return err
	}
	if _, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner, desiredPipelineService(p, ingestionName(p), componentIngestion), &corev1.Service{}, corev1ac.ExtractService); err != nil {
		return err
	}
	if _, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner, desiredPipelineService(p, inferenceName(p), componentInference), &corev1.Service{}, corev1ac.ExtractService); err != nil {
		return err
	}
	route, err := reconcileHTTPRoute(ctx, r.Client, FreightPipelineFieldOwner, r.routes, p, ingestionName(p), p.Spec.Ingestion.Route,
		func() *gatewayv1ac.HTTPRouteApplyConfiguration { return desiredIngestionRoute(p) })
	s.obs.route = route
	if err != nil {
		return err
	}

	ingest, infer := &appsv1.Deployment{}, &appsv1.Deployment{}
	model := s.obs.model
	loaded := false
	if model != nil {
		loaded, _ = modelLoaded(model)
		// Pods that cannot map events to the model's input are not created.
		loaded = loaded && runtimeFeaturesUndeclared(model).none()
	}
	if !loaded {
		exists, err := r.readDeployments(ctx, s, ingest, infer)
		if err != nil || model == nil || !exists {
			return errors.Join(err, r.keepReporting(ctx, s))
		}
	}

	if s.obs.features.err != nil || s.obs.reportingSpec.err != nil {
		// Pods given transforms that do not compile would not start; the running ones keep
		// the configuration they have.
		_, err := r.readDeployments(ctx, s, ingest, infer)
		return errors.Join(err, r.keepReporting(ctx, s))
	}
	cfg := spec.Pipeline(p, model, s.obs.queue.natsURL, r.Options.DefaultQueueReplicas)
	cfg.Transforms = s.obs.features.transforms
	rendered, err := cfg.Marshal()
	if err != nil {
		return fmt.Errorf("rendering pipeline config: %w", err)
	}
	var reporting []byte
	if p.Spec.Reporting != nil {
		if reporting, err = spec.ReportingConfig(p, cfg).Marshal(); err != nil {
			return fmt.Errorf("rendering the reporting config: %w", err)
		}
	}
	if _, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner, desiredPipelineConfigMap(p, rendered, reporting), &corev1.ConfigMap{}, corev1ac.ExtractConfigMap); err != nil {
		return err
	}
	configDigest := contentDigest(rendered)
	if err := r.applyReporting(ctx, s, contentDigest(reporting)); err != nil {
		return err
	}
	modelDigest := model.Status.ModelDigest

	applied, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner,
		desiredIngestionDeployment(p, model, modelDigest, configDigest, r.Options), ingest, appsv1ac.ExtractDeployment)
	if err != nil {
		return err
	}
	s.obs.ingestion = rolloutOf(ingest, applied)

	applied, err = applyInferencePool(ctx, r.Client, r.APIReader, desiredInferenceDeployment(p, model, modelDigest, configDigest, r.Options),
		infer, *defaultedPipeline(p).Spec.Inference.MinReplicas)
	if err != nil {
		return err
	}
	s.obs.inference = rolloutOf(infer, applied)
	return nil
}

// keepReporting leaves a running reporting pod as it is while the pipeline's pods are not
// being applied, or removes it once spec.reporting is gone (that needs no new config).
func (r *FreightPipelineReconciler) keepReporting(ctx context.Context, s *pipelineScope) error {
	if s.pipeline.Spec.Reporting == nil {
		return r.deleteReporting(ctx, s.pipeline)
	}
	return r.readReporting(ctx, s)
}

// readDeployments reads the existing Deployments for status when they are not being applied.
func (r *FreightPipelineReconciler) readDeployments(ctx context.Context, s *pipelineScope, ingest, infer *appsv1.Deployment) (bool, error) {
	exists := false
	for _, d := range []struct {
		name string
		obj  *appsv1.Deployment
		out  *rollout
	}{{ingestionName(s.pipeline), ingest, &s.obs.ingestion}, {inferenceName(s.pipeline), infer, &s.obs.inference}} {
		err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.pipeline.Namespace, Name: d.name}, d.obj)
		if client.IgnoreNotFound(err) != nil {
			return false, fmt.Errorf("reading Deployment %s: %w", d.name, err)
		}
		*d.out = rolloutOf(d.obj, false)
		exists = exists || err == nil
	}
	return exists, nil
}

// writeStatus computes the status and, when the part this reconciler owns differs from what
// the object has, applies it with FreightPipelineFieldOwner, then records events for the
// condition changes it wrote. status.autoscaling is the autoscaler's and is never sent, so the two
// writers neither overwrite each other nor conflict. The counts go out even when zero (they carry
// no omitempty), so that printer columns show 0 rather than nothing.
func (r *FreightPipelineReconciler) writeStatus(ctx context.Context, s *pipelineScope) error {
	if s.released {
		return nil
	}
	p := s.pipeline
	status := pipelineStatus(p, s.obs, r.Clock.Now())
	if !p.DeletionTimestamp.IsZero() {
		status = deletingPipelineStatus(p, s.obs, r.Clock.Now())
	}
	if equality.Semantic.DeepEqual(status, p.Status) {
		return nil
	}
	gvk := freightcastv1alpha1.GroupVersion.WithKind("FreightPipeline")
	if same, err := sameObject(ctx, r.APIReader, p, gvk); err != nil || !same {
		// Another object of this name now: its own events reconcile it.
		return err
	}
	if err := adoptStatusUpdates(ctx, r.Client, FreightPipelineFieldOwner, p); err != nil {
		return err
	}
	before := p.Status.Conditions
	owned := status.DeepCopy()
	owned.Autoscaling = nil
	if err := applyStatus(ctx, r.Client, FreightPipelineFieldOwner, p, gvk, owned); err != nil {
		// A pipeline whose finalizer another replica removed meanwhile is gone: nothing to report.
		return client.IgnoreNotFound(err)
	}
	recordConditionChanges(r.Recorder, p, before, status.Conditions)
	return nil
}

// pipelineNATSURL is the NATS server of pipeline p's queue: its own, or the operator's default
// ("" when neither is set).
func pipelineNATSURL(p *freightcastv1alpha1.FreightPipeline, opts Options) string {
	if p.Spec.Queue.URL != "" {
		return p.Spec.Queue.URL
	}
	return opts.DefaultNATSURL
}

// forget drops what the operator keeps in memory about a pipeline that is gone.
func (r *FreightPipelineReconciler) forget(key types.NamespacedName) {
	r.restarter.forget(key)
	r.failures.clear(key)
}

// SetupWithManager registers the controller, its watches and the model index.
func (r *FreightPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &freightcastv1alpha1.FreightPipeline{}, pipelineModelIndex,
		func(o client.Object) []string {
			return []string{o.(*freightcastv1alpha1.FreightPipeline).Spec.ModelRef.Name}
		}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &freightcastv1alpha1.FreightPipeline{}, pipelineLookupConfigMapIndex,
		func(o client.Object) []string {
			var names []string
			for _, l := range o.(*freightcastv1alpha1.FreightPipeline).Spec.LookupTables {
				if l.ConfigMapRef != nil {
					names = append(names, l.ConfigMapRef.Name)
				}
			}
			return names
		}); err != nil {
		return err
	}
	var err error
	if r.routes, err = httpRoutesServed(mgr.GetRESTMapper()); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).
		// Status writes bump no generation: without the predicate each one would come back as
		// a reconcile of its own. The autoscaler's reports that change the pipeline's conditions
		// (a stall begun or ended, the queue readable or not) do come back.
		For(&freightcastv1alpha1.FreightPipeline{}, builder.WithPredicates(predicate.Or[client.Object](
			predicate.GenerationChangedPredicate{}, autoscalerReportChanged, deletionStarted))).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Watches(&freightcastv1alpha1.PredictionModel{}, handler.EnqueueRequestsFromMapFunc(
			// A model that appeared, loaded or changed wakes the pipelines that reference it.
			requestsByIndex(r.Client, &freightcastv1alpha1.FreightPipelineList{}, pipelineModelIndex))).
		// A lookup table's ConfigMap that appeared, changed or went away wakes the pipelines
		// that read it; only its metadata is cached (see NewCache).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(
			requestsByIndex(r.Client, &freightcastv1alpha1.FreightPipelineList{}, pipelineLookupConfigMapIndex)))
	if r.routes {
		b = b.Owns(&gatewayv1.HTTPRoute{})
	}
	return b.Named("freightpipeline").Complete(r)
}

// deletionStarted passes the update that marks a pipeline for deletion, whether or not the API
// server counted it as a new generation.
var deletionStarted = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// autoscalerReportChanged passes the updates of a pipeline's status.autoscaling that its
// conditions depend on: a stall begun or ended (Degraded), the queue depth readable or not (the
// reconciler provisions the stream and consumer again, and reports QueueReady).
var autoscalerReportChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(*freightcastv1alpha1.FreightPipeline)
		after, ok2 := e.ObjectNew.(*freightcastv1alpha1.FreightPipeline)
		if !ok1 || !ok2 {
			return false
		}
		var a, b freightcastv1alpha1.AutoscalingStatus
		if before.Status.Autoscaling != nil {
			a = *before.Status.Autoscaling
		}
		if after.Status.Autoscaling != nil {
			b = *after.Status.Autoscaling
		}
		return (a.QueueDepth == nil) != (b.QueueDepth == nil) || !equality.Semantic.DeepEqual(a.StalledSince, b.StalledSince)
	},
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
