package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strconv"

	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
)

const (
	pipelineConfigVolume = "pipeline-config"
	pipelineConfigDir    = "/etc/freightcast/pipeline"
)

func ingestionName(p *freightcastv1alpha1.FreightPipeline) string { return p.Name + "-ingest" }
func inferenceName(p *freightcastv1alpha1.FreightPipeline) string { return p.Name + "-inference" }
func pipelineConfigName(p *freightcastv1alpha1.FreightPipeline) string {
	return p.Name + "-pipeline"
}

// ingestionEndpoint is where clients inside the cluster POST events.
func ingestionEndpoint(p *freightcastv1alpha1.FreightPipeline) string {
	return fmt.Sprintf("%s://%s.%s.svc:%d/v1/events", urlScheme(p.Spec.Ingestion.TLS), ingestionName(p), p.Namespace, httpPort)
}

func pipelineSelector(p *freightcastv1alpha1.FreightPipeline, component string) map[string]string {
	return map[string]string{
		labelName:      appName,
		labelComponent: component,
		labelPipeline:  p.Name,
	}
}

func pipelineLabels(p *freightcastv1alpha1.FreightPipeline, component string) map[string]string {
	l := pipelineSelector(p, component)
	l[labelInstance] = p.Name
	l[labelManagedBy] = managedBy
	l[labelPartOf] = appName
	return l
}

func pipelineOwnerReference(p *freightcastv1alpha1.FreightPipeline) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(freightcastv1alpha1.GroupVersion.String()).
		WithKind("FreightPipeline").
		WithName(p.Name).
		WithUID(p.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// queueSpecFor is the pipeline's JetStream topology and limits.
func queueSpecFor(p *freightcastv1alpha1.FreightPipeline) queue.Spec {
	p = defaultedPipeline(p)
	q := p.Spec.Queue
	return queue.Spec{
		Topology: queue.TopologyFor(p.Namespace, p.Name),
		Limits: queue.Limits{
			MaxMessages:     q.MaxMessages,
			MaxBytes:        q.MaxBytes.Value(),
			MaxAge:          q.MaxAge.Duration,
			DuplicateWindow: q.DuplicateWindow.Duration,
			AckWait:         q.AckWait.Duration,
			MaxDeliver:      int(q.MaxDeliver),
			// Enough unacknowledged events for every worker the pool may run to hold two batches.
			MaxAckPending:       int(p.Spec.Inference.MaxReplicas) * int(p.Spec.Inference.BatchSize) * 2,
			PredictionRetention: p.Spec.Output.PredictionRetention.Duration,
		},
	}
}

// pipelineConfigFor renders what the pipeline's pods read: the data-plane contract.
func pipelineConfigFor(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, natsURL string) pipelineconfig.Config {
	p = defaultedPipeline(p)
	cfg := pipelineconfig.Config{
		Namespace: p.Namespace,
		Name:      p.Name,
		NATSURL:   natsURL,
		Queue:     queueSpecFor(p),
		Model: pipelineconfig.Model{
			Name:     model.Name,
			Version:  servedVersion(model),
			Features: model.Spec.Features,
		},
		Ingestion: pipelineconfig.Ingestion{
			MaxBodyBytes: p.Spec.Ingestion.MaxBodyBytes.Value(),
		},
		Inference: pipelineconfig.Inference{BatchSize: int(p.Spec.Inference.BatchSize)},
	}
	if p.Spec.Ingestion.Auth != nil {
		cfg.Ingestion.TokensFile = path.Join(authDir, authFile)
	}
	if rl := p.Spec.Ingestion.RateLimit; rl != nil {
		burst := rl.Burst
		if burst == 0 {
			burst = rl.EventsPerSecond
		}
		cfg.Ingestion.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: rl.EventsPerSecond, Burst: burst}
	}
	return cfg
}

// servedVersion is the version the model's pods serve (see ServedRevision).
func servedVersion(model *freightcastv1alpha1.PredictionModel) string {
	if v := ServedRevision(model).Version; v != "" {
		return v
	}
	return modelVersion(model)
}

// desiredPipelineConfigMap holds the rendered config; its digest goes into the pod templates.
func desiredPipelineConfigMap(p *freightcastv1alpha1.FreightPipeline, rendered []byte) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(pipelineConfigName(p), p.Namespace).
		WithLabels(pipelineLabels(p, "config")).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithData(map[string]string{pipelineconfig.FileName: string(rendered)})
}

func contentDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pipelinePodSpec is what the ingestion and inference pods share: the config and model mounts.
func pipelinePodSpec(p *freightcastv1alpha1.FreightPipeline, container *corev1ac.ContainerApplyConfiguration, mm modelMount, gracePeriod int64) *corev1ac.PodSpecApplyConfiguration {
	container.WithVolumeMounts(corev1ac.VolumeMount().WithName(pipelineConfigVolume).WithMountPath(pipelineConfigDir).WithReadOnly(true)).
		WithVolumeMounts(mm.mounts...)
	return dataPlanePodSpec(container, gracePeriod).
		WithVolumes(corev1ac.Volume().WithName(pipelineConfigVolume).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(pipelineConfigName(p)))).
		WithVolumes(mm.volumes...)
}

func podAnnotations(modelDigest, configDigest string) map[string]string {
	a := map[string]string{annotationConfigDigest: configDigest}
	if modelDigest != "" {
		a[annotationModelDigest] = modelDigest
	}
	return a
}

// desiredIngestionDeployment builds the ingestion Deployment: `freightcast ingest`, reading the
// pipeline config and, for feature names, the model file.
func desiredIngestionDeployment(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, modelDigest, configDigest string, opts Options) *appsv1ac.DeploymentApplyConfiguration {
	p = defaultedPipeline(p)
	mm := modelMountFor(model, ServedRevision(model))
	args := append([]string{"ingest", fmt.Sprintf("--addr=:%d", httpPort), "--pipeline-config=" + path.Join(pipelineConfigDir, pipelineconfig.FileName)}, mm.args...)
	container := dataPlaneContainer("ingest", opts, args, "/livez", "/readyz", p.Spec.Ingestion.Resources).
		WithEnv(tracingEnv(opts, serviceIngest, p.Namespace, "freightcast.pipeline", p.Name)...)
	// The tokens file's path reaches the pods through the pipeline config.
	secrets := append(withTokens(container, p.Spec.Ingestion.Auth), withTLS(container, p.Spec.Ingestion.TLS)...)
	spec := pipelinePodSpec(p, container, mm, servingGracePeriodSeconds).WithVolumes(secrets...)
	d := pipelineDeployment(p, ingestionName(p), componentIngestion, podAnnotations(modelDigest, configDigest), spec)
	d.Spec.WithReplicas(*p.Spec.Ingestion.Replicas)
	return d
}

// desiredInferenceDeployment builds the inference pool. It never carries spec.replicas: the
// operator's autoscaler sets replicas through the scale subresource, so a GitOps tool applying
// the pipeline never fights it.
func desiredInferenceDeployment(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, modelDigest, configDigest string, opts Options) *appsv1ac.DeploymentApplyConfiguration {
	p = defaultedPipeline(p)
	mm := modelMountFor(model, ServedRevision(model))
	args := append([]string{"infer", "--worker", fmt.Sprintf("--addr=:%d", httpPort),
		"--pipeline-config=" + path.Join(pipelineConfigDir, pipelineconfig.FileName),
		"--max-batch-size=" + strconv.Itoa(int(p.Spec.Inference.BatchSize))}, mm.args...)
	container := dataPlaneContainer("worker", opts, args, "/v2/health/live", "/v2/health/ready", p.Spec.Inference.Resources).
		WithEnv(tracingEnv(opts, serviceInference, p.Namespace, "freightcast.pipeline", p.Name, "freightcast.model", model.Name)...)
	return pipelineDeployment(p, inferenceName(p), componentInference, podAnnotations(modelDigest, configDigest),
		pipelinePodSpec(p, container, mm, inferenceGracePeriodSeconds))
}

// pipelineDeployment is what a pipeline's two Deployments share: labels, owner, selector, a
// rollout that never drops below the current capacity, and the pod template.
func pipelineDeployment(p *freightcastv1alpha1.FreightPipeline, name, component string, annotations map[string]string, pod *corev1ac.PodSpecApplyConfiguration) *appsv1ac.DeploymentApplyConfiguration {
	return appsv1ac.Deployment(name, p.Namespace).
		WithLabels(pipelineLabels(p, component)).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(pipelineSelector(p, component))).
			WithStrategy(surgeRollout(intstr.FromString("25%"))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(pipelineLabels(p, component)).
				WithAnnotations(annotations).
				WithSpec(pod)))
}

// desiredPipelineService exposes a component's HTTP port inside the cluster.
func desiredPipelineService(p *freightcastv1alpha1.FreightPipeline, name, component string) *corev1ac.ServiceApplyConfiguration {
	appProtocol := "http"
	if component == componentIngestion {
		appProtocol = urlScheme(p.Spec.Ingestion.TLS)
	}
	return httpService(name, p.Namespace, appProtocol, pipelineLabels(p, component), pipelineSelector(p, component), pipelineOwnerReference(p))
}

func defaultedPipeline(p *freightcastv1alpha1.FreightPipeline) *freightcastv1alpha1.FreightPipeline {
	p = p.DeepCopy()
	p.Default()
	return p
}

// PipelineConfig renders the data-plane configuration of pipeline p scoring with model on the
// NATS server at natsURL: what the operator writes into the pipeline's ConfigMap, and what local
// mode (`freightcast run`) hands its in-process components. Both apply the same defaults.
func PipelineConfig(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, natsURL string) pipelineconfig.Config {
	return pipelineConfigFor(p, model, natsURL)
}
