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
	"github.com/freightcast/freightcast/internal/spec"
)

const (
	pipelineConfigVolume = "pipeline-config"
	pipelineConfigDir    = "/etc/freightcast/pipeline"
	natsCredsVolume      = "nats-credentials"
	natsCAVolume         = "nats-ca"
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

// desiredPipelineConfigMap holds the rendered config; its digest goes into the pod templates.
// With spec.reporting it holds the reporting pod's config too.
func desiredPipelineConfigMap(p *freightcastv1alpha1.FreightPipeline, rendered, reporting []byte) *corev1ac.ConfigMapApplyConfiguration {
	data := map[string]string{pipelineconfig.FileName: string(rendered)}
	if reporting != nil {
		data[reportingConfigFile] = string(reporting)
	}
	return corev1ac.ConfigMap(pipelineConfigName(p), p.Namespace).
		WithLabels(pipelineLabels(p, "config")).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithData(data)
}

func contentDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pipelinePodSpec is what the ingestion and inference pods share: the config, NATS credentials
// and model mounts.
func pipelinePodSpec(p *freightcastv1alpha1.FreightPipeline, container *corev1ac.ContainerApplyConfiguration, mm modelMount, gracePeriod int64) *corev1ac.PodSpecApplyConfiguration {
	container.WithVolumeMounts(corev1ac.VolumeMount().WithName(pipelineConfigVolume).WithMountPath(pipelineConfigDir).WithReadOnly(true)).
		WithVolumeMounts(mm.mounts...)
	nats := withNATSCredentials(container, p.Spec.Queue)
	return dataPlanePodSpec(container, gracePeriod).
		WithVolumes(corev1ac.Volume().WithName(pipelineConfigVolume).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(pipelineConfigName(p)))).
		WithVolumes(nats...).
		WithVolumes(mm.volumes...)
}

// withNATSCredentials mounts the keys of spec.queue.credentials' Secret at
// spec.NATSCredentialsDir and the CA of spec.queue.tls at spec.NATSCADir into c, where the
// pipeline config (spec.NATSCredentials) points the NATS client, and returns the volumes for the
// pod. The operator names the Secrets and never reads them. Call it before adding c to its pod
// spec, as withTokens.
func withNATSCredentials(c *corev1ac.ContainerApplyConfiguration, q freightcastv1alpha1.QueueSpec) []*corev1ac.VolumeApplyConfiguration {
	var volumes []*corev1ac.VolumeApplyConfiguration
	if cr := q.Credentials; cr != nil {
		var items []*corev1ac.KeyToPathApplyConfiguration
		for _, key := range spec.NATSCredentialKeys(cr.Type) {
			items = append(items, corev1ac.KeyToPath().WithKey(key).WithPath(key))
		}
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName(natsCredsVolume).WithMountPath(spec.NATSCredentialsDir).WithReadOnly(true))
		volumes = append(volumes, corev1ac.Volume().WithName(natsCredsVolume).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(cr.SecretRef.Name).WithDefaultMode(0o440).WithItems(items...)))
	}
	if t := q.TLS; t != nil {
		c.WithVolumeMounts(corev1ac.VolumeMount().WithName(natsCAVolume).WithMountPath(spec.NATSCADir).WithReadOnly(true))
		volumes = append(volumes, corev1ac.Volume().WithName(natsCAVolume).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(t.CASecretRef.Name).WithDefaultMode(0o440).
			WithItems(corev1ac.KeyToPath().WithKey(spec.NATSCAKey).WithPath(spec.NATSCAKey))))
	}
	return volumes
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
	mm := pipelineModelMount(model, model.Spec.Runtime != nil)
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
	remote := spec.RemoteScoring(p, model)
	mm := pipelineModelMount(model, remote)
	args := append([]string{"infer", "--worker", fmt.Sprintf("--addr=:%d", httpPort),
		"--pipeline-config=" + path.Join(pipelineConfigDir, pipelineconfig.FileName),
		"--max-batch-size=" + strconv.Itoa(int(p.Spec.Inference.BatchSize))}, mm.args...)
	container := dataPlaneContainer("worker", opts, args, "/v2/health/live", "/v2/health/ready", p.Spec.Inference.Resources).
		WithEnv(tracingEnv(opts, serviceInference, p.Namespace, "freightcast.pipeline", p.Name, "freightcast.model", model.Name)...)
	var secrets []*corev1ac.VolumeApplyConfiguration
	if remote && model.Spec.Auth != nil {
		// The pool presents one of the tokens the model accepts: the model's own Secret,
		// in the same namespace, mounted where the pipeline config points the workers.
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(modelAuthVolume).WithMountPath(path.Dir(spec.RemoteModelTokenFile)).WithReadOnly(true))
		secrets = append(secrets, corev1ac.Volume().WithName(modelAuthVolume).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(model.Spec.Auth.SecretRef.Name).WithDefaultMode(0o440).
			WithItems(corev1ac.KeyToPath().WithKey(model.Spec.Auth.SecretRef.Key).WithPath(path.Base(spec.RemoteModelTokenFile)))))
	}
	if remote && model.Spec.TLS != nil && model.Spec.Runtime == nil {
		// The pool trusts the model's server with the certificates of the model's own TLS
		// Secret (spec.RemoteModel says which), never its private key. Optional: a Secret
		// without ca.crt is the common case, and a missing key must not keep the pod from
		// starting; the worker says which file it lacked.
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(modelTrustVolume).WithMountPath(spec.RemoteModelTrustDir).WithReadOnly(true))
		secrets = append(secrets, corev1ac.Volume().WithName(modelTrustVolume).WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(model.Spec.TLS.SecretRef.Name).WithDefaultMode(0o440).WithOptional(true).
			WithItems(corev1ac.KeyToPath().WithKey(spec.RemoteModelCAKey).WithPath(spec.RemoteModelCAKey),
				corev1ac.KeyToPath().WithKey(spec.RemoteModelCertKey).WithPath(spec.RemoteModelCertKey))))
	}
	return pipelineDeployment(p, inferenceName(p), componentInference, podAnnotations(modelDigest, configDigest),
		pipelinePodSpec(p, container, mm, inferenceGracePeriodSeconds).WithVolumes(secrets...))
}

// pipelineModelMount is how a pipeline pod gets its model: the file, or, when it does not run
// the model (noFile: a pool that scores remotely; ingestion of a model another runtime serves,
// whose file may be no ONNX), only the model's name, version and features.
func pipelineModelMount(model *freightcastv1alpha1.PredictionModel, noFile bool) modelMount {
	rev := spec.ServedRevision(model)
	if !noFile {
		return modelMountFor(model, rev)
	}
	var nameOnly freightcastv1alpha1.ModelRevision
	nameOnly.Version = rev.Version
	return modelMountFor(model, nameOnly)
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
