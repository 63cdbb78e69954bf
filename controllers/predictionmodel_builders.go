package controllers

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// predictorName names the serving Deployment, Service and PodDisruptionBudget of a model.
func predictorName(model *freightcastv1alpha1.PredictionModel) string {
	return model.Name + "-predictor"
}

// predictorSelector selects a model's serving pods; it never changes for a given model.
func predictorSelector(model *freightcastv1alpha1.PredictionModel) map[string]string {
	return map[string]string{
		labelName:      appName,
		labelComponent: componentPredictor,
		labelModel:     model.Name,
	}
}

func predictorLabels(model *freightcastv1alpha1.PredictionModel) map[string]string {
	l := predictorSelector(model)
	l[labelInstance] = model.Name
	l[labelManagedBy] = managedBy
	l[labelPartOf] = appName
	return l
}

// predictorEndpoint is the in-cluster OIP URL of a model; for a gRPC runtime, grpc://host:port.
func predictorEndpoint(model *freightcastv1alpha1.PredictionModel) string {
	if r := model.Spec.Runtime; r != nil && r.Protocol == freightcastv1alpha1.RuntimeProtocolGRPC {
		return fmt.Sprintf("grpc://%s.%s.svc:%d", predictorName(model), model.Namespace, httpPort)
	}
	return fmt.Sprintf("%s://%s.%s.svc:%d/v2/models/%s", urlScheme(model.Spec.TLS), predictorName(model), model.Namespace, httpPort, model.Name)
}

func modelOwnerReference(model *freightcastv1alpha1.PredictionModel) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(freightcastv1alpha1.GroupVersion.String()).
		WithKind("PredictionModel").
		WithName(model.Name).
		WithUID(model.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// desiredPredictorDeployment builds the serving Deployment of revision rev of the model: the
// spec's, or the last good one after a failed rollout. rev.Digest ("" when unknown) goes into the
// pod template so that new content rolls the pods.
func desiredPredictorDeployment(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision, opts Options) *appsv1ac.DeploymentApplyConfiguration {
	model = defaultedModel(model)
	digest := rev.Digest
	var pod *corev1ac.PodSpecApplyConfiguration
	if model.Spec.Runtime != nil {
		pod = runtimePodSpec(model, rev, opts)
	} else {
		pod = ownRuntimePodSpec(model, rev, opts)
	}
	template := corev1ac.PodTemplateSpec().
		WithLabels(predictorLabels(model)).
		WithSpec(pod)
	if digest != "" {
		template.WithAnnotations(map[string]string{annotationModelDigest: digest})
	}
	if model.Spec.Runtime != nil {
		// Another runtime's args name no source: the revision, here, tells whether the
		// pods move to another one (movesPods).
		template.WithAnnotations(map[string]string{annotationModelRevision: revisionString(rev)})
	}

	return appsv1ac.Deployment(predictorName(model), model.Namespace).
		WithLabels(predictorLabels(model)).
		WithOwnerReferences(modelOwnerReference(model)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(*model.Spec.Replicas).
			// Past this deadline the Deployment reports ProgressDeadlineExceeded, and the
			// operator rolls back to the last good revision.
			WithProgressDeadlineSeconds(model.Spec.ProgressDeadlineSeconds).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(predictorSelector(model))).
			// Surge one pod at a time during a model rollout: an old pod is only retired once
			// a new one has loaded the model.
			WithStrategy(surgeRollout(intstr.FromInt32(1))).
			WithTemplate(template))
}

// ownRuntimePodSpec is the serving pod of Freightcast's own runtime: `freightcast infer`.
func ownRuntimePodSpec(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision, opts Options) *corev1ac.PodSpecApplyConfiguration {
	mm := modelMountFor(model, rev)
	args := append([]string{"infer", fmt.Sprintf("--addr=:%d", httpPort), fmt.Sprintf("--grpc-addr=:%d", grpcPort)}, mm.args...)
	srv := spec.ModelServer(model, rev)
	args = append(args, "--max-batch-size="+strconv.Itoa(srv.MaxBatchSize), "--max-batch-delay="+srv.MaxBatchDelay.String())

	container := dataPlaneContainer("server", opts, args, "/v2/health/live", "/v2/health/ready", model.Spec.Resources).
		WithPorts(corev1ac.ContainerPort().WithName(grpcPortName).WithContainerPort(grpcPort).WithProtocol(corev1.ProtocolTCP)).
		WithVolumeMounts(mm.mounts...).
		WithEnv(tracingEnv(opts, servicePredictor, model.Namespace, "freightcast.model", model.Name)...)

	if model.Spec.Auth != nil {
		container.WithArgs("--tokens-file=" + spec.TokensFile)
	}
	secrets := append(withTokens(container, model.Spec.Auth), withTLS(container, model.Spec.TLS)...)
	return dataPlanePodSpec(container, servingGracePeriodSeconds).
		WithVolumes(mm.volumes...).
		WithVolumes(secrets...)
}

// runtimePodSpec is the serving pod of a model another OIP runtime serves (spec.runtime).
func runtimePodSpec(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision, opts Options) *corev1ac.PodSpecApplyConfiguration {
	rm := runtimeModelFor(rev, model.Spec.Runtime.ModelDir, opts)
	container := runtimeContainer(model, rev, rm)
	secrets := withTokens(container, model.Spec.Auth)
	return dataPlanePodSpec(container, servingGracePeriodSeconds).
		WithInitContainers(rm.initCtrs...).
		WithVolumes(rm.volumes...).
		WithVolumes(secrets...)
}

// defaultedModel is a copy of model with the API's defaults filled in, for models built in Go
// that never went through the API server (tests, local mode).
func defaultedModel(model *freightcastv1alpha1.PredictionModel) *freightcastv1alpha1.PredictionModel {
	model = model.DeepCopy()
	model.Default()
	return model
}

// desiredPredictorService exposes the serving pods' OIP ports inside the cluster. Our own
// runtime serves REST on "http" and gRPC on "grpc" (appProtocol kubernetes.io/h2c in
// plaintext; over TLS gRPC is plain TLS with ALPN h2, so "https"). Another runtime's one port
// is 8080 whichever port it listens on, named grpc (appProtocol grpc) for a gRPC runtime.
func desiredPredictorService(model *freightcastv1alpha1.PredictionModel) *corev1ac.ServiceApplyConfiguration {
	if r := model.Spec.Runtime; r != nil {
		if r.Protocol != freightcastv1alpha1.RuntimeProtocolGRPC {
			return httpService(predictorName(model), model.Namespace, urlScheme(model.Spec.TLS), predictorLabels(model), predictorSelector(model), modelOwnerReference(model))
		}
		svc := httpService(predictorName(model), model.Namespace, grpcPortName, predictorLabels(model), predictorSelector(model), modelOwnerReference(model))
		svc.Spec.Ports[0].WithName(grpcPortName).WithTargetPort(intstr.FromString(grpcPortName))
		return svc
	}
	svc := httpService(predictorName(model), model.Namespace, urlScheme(model.Spec.TLS), predictorLabels(model), predictorSelector(model), modelOwnerReference(model))
	grpcProtocol := "kubernetes.io/h2c"
	if model.Spec.TLS != nil {
		grpcProtocol = "https"
	}
	svc.Spec.WithPorts(corev1ac.ServicePort().
		WithName(grpcPortName).
		WithPort(grpcPort).
		WithTargetPort(intstr.FromString(grpcPortName)).
		WithProtocol(corev1.ProtocolTCP).
		WithAppProtocol(grpcProtocol))
	return svc
}

// desiredPredictorPDB lets voluntary disruptions (node drains) take one serving pod at a time.
func desiredPredictorPDB(model *freightcastv1alpha1.PredictionModel) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(predictorName(model), model.Namespace).
		WithLabels(predictorLabels(model)).
		WithOwnerReferences(modelOwnerReference(model)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(predictorSelector(model))))
}
