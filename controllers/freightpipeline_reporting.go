package controllers

import (
	"context"
	"fmt"
	"path"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// The reporting role (spec.reporting): one pod, `freightcast report`, that keeps aggregates of
// the pipeline's predictions in memory and answers the report API behind the ingestion pods.

const (
	componentReporting = "reporting"
	// reportingMetricsPort serves the reporting pod's /metrics on a port of its own: its HTTP
	// port (the report API) admits only the ingestion pods, the metrics port the scrapers.
	reportingMetricsPort     = 9090
	reportingMetricsPortName = "metrics"
	serviceReporting         = "freightcast-reporting"
	// reportingConfigFile is the reporting pod's config in the pipeline's ConfigMap: the
	// pipeline's, connecting to NATS as the reporting user.
	reportingConfigFile = "reporting.json"
)

func reportingName(p *freightcastv1alpha1.FreightPipeline) string {
	return spec.ReportingServiceName(p.Name)
}

// desiredReportingStatefulSet runs `freightcast report`: one pod, because the aggregates are one
// writer's (two pods would both apply the stream and overwrite each other's snapshots). A
// StatefulSet and not a Deployment: a Deployment's ReplicaSet starts the replacement of a deleted
// or evicted pod at once, while the old one still consumes and has its last snapshot to write
// (strategy Recreate covers rollouts only); a StatefulSet starts it once the old pod is gone. It
// mounts the pipeline's tokens (it checks them itself: the ingestion pods pass Authorization
// through) and its own NATS user when it has one.
func desiredReportingStatefulSet(p *freightcastv1alpha1.FreightPipeline, configDigest string, opts Options) *appsv1ac.StatefulSetApplyConfiguration {
	p = defaultedPipeline(p)
	args := []string{"report", fmt.Sprintf("--addr=:%d", httpPort), fmt.Sprintf("--metrics-addr=:%d", reportingMetricsPort),
		"--config=" + path.Join(pipelineConfigDir, reportingConfigFile)}
	container := dataPlaneContainer("report", opts, args, "/livez", "/readyz", p.Spec.Reporting.Resources).
		WithPorts(corev1ac.ContainerPort().WithName(reportingMetricsPortName).WithContainerPort(reportingMetricsPort).WithProtocol(corev1.ProtocolTCP)).
		WithEnv(tracingEnv(opts, serviceReporting, p.Namespace, "freightcast.pipeline", p.Name)...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(pipelineConfigVolume).WithMountPath(pipelineConfigDir).WithReadOnly(true))
	queue := p.Spec.Queue
	if cr := p.Spec.Reporting.Credentials; cr != nil {
		queue.Credentials = cr
	}
	volumes := append(withNATSCredentials(container, queue), withTokens(container, p.Spec.Ingestion.Auth)...)
	pod := dataPlanePodSpec(container, servingGracePeriodSeconds).
		WithVolumes(corev1ac.Volume().WithName(pipelineConfigVolume).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(pipelineConfigName(p)))).
		WithVolumes(volumes...)
	return appsv1ac.StatefulSet(reportingName(p), p.Namespace).
		WithLabels(pipelineLabels(p, componentReporting)).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithSpec(appsv1ac.StatefulSetSpec().
			WithReplicas(1).
			WithServiceName(reportingName(p)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(pipelineSelector(p, componentReporting))).
			// Parallel: with OrderedReady a pod that never got ready (a bad config) would hold
			// back the rollout that fixes it. One pod either way: the at-most-one guarantee is
			// the pod's name, reporting-0.
			WithPodManagementPolicy(appsv1.ParallelPodManagement).
			WithUpdateStrategy(appsv1ac.StatefulSetUpdateStrategy().WithType(appsv1.RollingUpdateStatefulSetStrategyType)).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(pipelineLabels(p, componentReporting)).
				WithAnnotations(podAnnotations("", configDigest)).
				WithSpec(pod)))
}

// desiredReportingNetworkPolicy admits to the reporting pod's HTTP port only the pipeline's
// ingestion pods, which forward the report API to it, to its metrics port the peers
// spec.networkPolicy.from admits to the pipeline's other pods (the metrics scraper among them;
// anywhere when empty), and lets it reach DNS, NATS and the OTLP endpoint. The pipeline's own
// policy does not select it.
func desiredReportingNetworkPolicy(p *freightcastv1alpha1.FreightPipeline, natsURL string, opts Options) *networkingv1ac.NetworkPolicyApplyConfiguration {
	egress := []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration{dnsEgress()}
	if ports := sortedUnique(append(natsPorts(natsURL), otlpPorts(opts.OTLPEndpoint)...)); len(ports) > 0 {
		egress = append(egress, tcpEgress(ports))
	}
	metrics := networkingv1ac.NetworkPolicyIngressRule().WithPorts(networkingv1ac.NetworkPolicyPort().
		WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString(reportingMetricsPortName)))
	for i := range p.Spec.NetworkPolicy.From {
		metrics.WithFrom(networkPolicyPeer(&p.Spec.NetworkPolicy.From[i]))
	}
	return networkingv1ac.NetworkPolicy(reportingName(p), p.Namespace).
		WithLabels(pipelineLabels(p, componentReporting)).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(pipelineSelector(p, componentReporting))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().
				WithFrom(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().
					WithMatchLabels(pipelineSelector(p, componentIngestion)))).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString(httpPortName)))).
			WithIngress(metrics).
			WithEgress(egress...))
}

// ingestToReportingName names the policy that lets the ingestion pods reach the reporting pod.
func ingestToReportingName(p *freightcastv1alpha1.FreightPipeline) string {
	return p.Name + "-ingest-to-reporting"
}

// desiredIngestToReportingNetworkPolicy lets the pipeline's ingestion pods, and not its
// inference pods, reach the reporting pod's HTTP port: a policy of its own (egress only),
// because the pipeline's policy selects both and egress rules cannot tell them apart.
func desiredIngestToReportingNetworkPolicy(p *freightcastv1alpha1.FreightPipeline) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return networkingv1ac.NetworkPolicy(ingestToReportingName(p), p.Namespace).
		WithLabels(pipelineLabels(p, "network-policy")).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(pipelineSelector(p, componentIngestion))).
			WithPolicyTypes(networkingv1.PolicyTypeEgress).
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().
				WithTo(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(pipelineSelector(p, componentReporting)))).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(httpPort)))))
}

// applyReporting applies the reporting pod's NetworkPolicy, Service and StatefulSet for the
// rendered config digest, or, without spec.reporting, deletes the ones the pipeline controls.
func (r *FreightPipelineReconciler) applyReporting(ctx context.Context, s *pipelineScope, configDigest string) error {
	p := s.pipeline
	if p.Spec.Reporting == nil {
		return r.deleteReporting(ctx, p)
	}
	for _, np := range []*networkingv1ac.NetworkPolicyApplyConfiguration{desiredReportingNetworkPolicy(p, s.obs.queue.natsURL, r.Options),
		desiredIngestToReportingNetworkPolicy(p)} {
		if err := reconcileNetworkPolicy(ctx, r.Client, FreightPipelineFieldOwner, p, networkPolicyEnabled(p.Spec.NetworkPolicy), np); err != nil {
			return err
		}
	}
	if _, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner, desiredPipelineService(p, reportingName(p), componentReporting), &corev1.Service{}, corev1ac.ExtractService); err != nil {
		return err
	}
	// The Deployment of earlier versions goes first, with its pod: the StatefulSet's pod must
	// not consume while that one still does.
	if gone, err := r.deleteReportingDeployment(ctx, p); err != nil || !gone {
		return err
	}
	st := &appsv1.StatefulSet{}
	applied, err := applyChild(ctx, r.Client, FreightPipelineFieldOwner, desiredReportingStatefulSet(p, configDigest, r.Options), st, appsv1ac.ExtractStatefulSet)
	if err != nil {
		return err
	}
	s.obs.reporting = rolloutOfStatefulSet(st, applied)
	return nil
}

// deleteReportingDeployment deletes the reporting Deployment that versions before the
// StatefulSet made, in the foreground, so that it stays until its pod is gone; gone tells that
// there is none (any more). Its deletion requeues the pipeline.
func (r *FreightPipelineReconciler) deleteReportingDeployment(ctx context.Context, p *freightcastv1alpha1.FreightPipeline) (gone bool, _ error) {
	d := &appsv1.Deployment{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: reportingName(p)}, d)
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading Deployment %s: %w", reportingName(p), err)
	case !metav1.IsControlledBy(d, p):
		return true, nil
	case d.DeletionTimestamp != nil:
		return false, nil
	}
	uid := d.UID
	if err := r.Client.Delete(ctx, d, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationForeground)); client.IgnoreNotFound(err) != nil {
		return false, fmt.Errorf("deleting Deployment %s: %w", reportingName(p), err)
	}
	return false, nil
}

// readReporting reads the reporting StatefulSet for status when it is not being applied.
func (r *FreightPipelineReconciler) readReporting(ctx context.Context, s *pipelineScope) error {
	if s.pipeline.Spec.Reporting == nil {
		return nil
	}
	st := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: s.pipeline.Namespace, Name: reportingName(s.pipeline)}, st)
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("reading StatefulSet %s: %w", reportingName(s.pipeline), err)
	}
	s.obs.reporting = rolloutOfStatefulSet(st, false)
	return nil
}

// deleteReporting removes what spec.reporting made, once it is gone from the spec. The
// snapshots stay on NATS with the queue (deleted with it, by its deletionPolicy).
func (r *FreightPipelineReconciler) deleteReporting(ctx context.Context, p *freightcastv1alpha1.FreightPipeline) error {
	key := client.ObjectKey{Namespace: p.Namespace, Name: reportingName(p)}
	for _, obj := range []client.Object{&appsv1.StatefulSet{}, &appsv1.Deployment{}, &corev1.Service{}, &networkingv1.NetworkPolicy{}} {
		if err := deleteIfControlled(ctx, r.Client, p, key, obj); err != nil {
			return err
		}
	}
	return deleteIfControlled(ctx, r.Client, p, client.ObjectKey{Namespace: p.Namespace, Name: ingestToReportingName(p)}, &networkingv1.NetworkPolicy{})
}

// setReportingConditions sets ReportingValid and ReportingReady with spec.reporting, and
// removes them without.
func setReportingConditions(c *conditionSetter, p *freightcastv1alpha1.FreightPipeline, valid featuresObservation, r rollout) {
	if p.Spec.Reporting == nil {
		meta.RemoveStatusCondition(&c.conditions, freightcastv1alpha1.ConditionReportingValid)
		meta.RemoveStatusCondition(&c.conditions, freightcastv1alpha1.ConditionReportingReady)
		return
	}
	setCompiled(c, freightcastv1alpha1.ConditionReportingValid, valid, freightcastv1alpha1.ReasonInvalidReporting,
		freightcastv1alpha1.ReasonReportingCompiled, fmt.Sprintf("%d reporting dimensions compiled", len(p.Spec.Reporting.Dimensions)))
	switch {
	case !r.exists:
		c.set(freightcastv1alpha1.ConditionReportingReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciling,
			"the reporting StatefulSet is created with the pipeline's pods, once its model has loaded")
	case r.ready > 0 && r.complete:
		c.set(freightcastv1alpha1.ConditionReportingReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable,
			"serving reports at "+reportsEndpoint(p))
	case r.ready > 0:
		c.set(freightcastv1alpha1.ConditionReportingReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut, r.message)
	default:
		c.set(freightcastv1alpha1.ConditionReportingReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable,
			"no reporting pod is ready; /v1/reports answers 503 meanwhile and the reports catch up from the stream: "+r.message)
	}
}

// reportsEndpoint is where clients inside the cluster read reports: the ingestion Service.
func reportsEndpoint(p *freightcastv1alpha1.FreightPipeline) string {
	return fmt.Sprintf("%s://%s.%s.svc:%d/v1/reports/", urlScheme(p.Spec.Ingestion.TLS), ingestionName(p), p.Namespace, httpPort)
}
