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

// predictorEndpoint is the in-cluster OIP URL of a model.
func predictorEndpoint(model *freightcastv1alpha1.PredictionModel) string {
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
	mm := modelMountFor(model, rev)
	digest := rev.Digest
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
	pod := dataPlanePodSpec(container, servingGracePeriodSeconds).
		WithVolumes(mm.volumes...).
		WithVolumes(secrets...)
	template := corev1ac.PodTemplateSpec().
		WithLabels(predictorLabels(model)).
		WithSpec(pod)
	if digest != "" {
		template.WithAnnotations(map[string]string{annotationModelDigest: digest})
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

// defaultedModel is a copy of model with the API's defaults filled in, for models built in Go
// that never went through the API server (tests, local mode).
func defaultedModel(model *freightcastv1alpha1.PredictionModel) *freightcastv1alpha1.PredictionModel {
	model = model.DeepCopy()
	model.Default()
	return model
}

// desiredPredictorService exposes the serving pods' OIP ports inside the cluster: REST on
// "http", gRPC on "grpc" (appProtocol kubernetes.io/h2c in plaintext, grpc's "https" over TLS
// being plain TLS with ALPN h2).
func desiredPredictorService(model *freightcastv1alpha1.PredictionModel) *corev1ac.ServiceApplyConfiguration {
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
