package controllers

import (
	"path"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// The layout every data-plane pod shares: its one port, labels, volumes and timings.
const (
	// Port is the one HTTP port of every data-plane container: API, health and /metrics.
	httpPort     = spec.HTTPPort
	httpPortName = "http"
	// grpcPort is the second port of a model's serving pods: the Open Inference Protocol over
	// gRPC (freightcast infer --grpc-addr), with the same tokens and TLS as the HTTP port.
	grpcPort     = spec.GRPCPort
	grpcPortName = "grpc"

	// Label keys of every child; the selector ones never change once a Deployment exists.
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelModel     = "freightcast.io/model"
	labelPipeline  = "freightcast.io/pipeline"

	appName   = "freightcast"
	managedBy = "freightcast-operator"

	componentPredictor = "predictor"
	componentIngestion = "ingestion"
	componentInference = "inference"

	// Pod template annotations whose change rolls the pods.
	annotationModelDigest  = "freightcast.io/model-digest"
	annotationConfigDigest = "freightcast.io/config-digest"
	// annotationModelRevision names the model revision a spec.runtime pod serves.
	annotationModelRevision = "freightcast.io/model-revision"

	// Where Secrets appear inside data-plane containers: bearer tokens and TLS certificates.
	authVolume = "auth"
	// modelAuthVolume holds, in a pool that scores remotely, the tokens its model accepts.
	modelAuthVolume = "model-auth"
	// modelTrustVolume holds, in a pool that scores remotely over TLS, the certificates it
	// trusts the model's server with.
	modelTrustVolume = "model-tls"
	tlsVolume        = "tls"
	tlsDir           = "/etc/freightcast/tls"

	// Where the model file appears inside data-plane containers.
	modelVolumeName = "model"
	modelMountDir   = "/var/lib/freightcast/model"
	modelCacheName  = "model-cache"
	modelCacheDir   = "/var/cache/freightcast"
	// The CA bundle a model download trusts (spec.source.caBundle).
	modelCAVolumeName = "model-ca"
	modelCADir        = "/etc/freightcast/model-ca"
	tmpVolumeName     = "tmp"

	// How long data-plane pods get to drain after SIGTERM; workers finish and acknowledge the
	// batch they hold, servers finish in-flight requests.
	servingGracePeriodSeconds   = 30
	inferenceGracePeriodSeconds = 60
	// preStop pause so that endpoints drop the pod before it stops accepting connections.
	preStopSleepSeconds = 5
)

// tracingEnv is the environment that turns tracing on in a data-plane container, or nil when the
// operator has no OTLP endpoint. service names the role (service.name); the resource attributes
// tell which namespace, owner and pod a span comes from.
func tracingEnv(opts Options, service, namespace string, owner ...string) []*corev1ac.EnvVarApplyConfiguration {
	if opts.OTLPEndpoint == "" {
		return nil
	}
	attrs := "k8s.namespace.name=" + namespace + ",k8s.pod.name=$(" + envPodName + ")"
	for i := 0; i+1 < len(owner); i += 2 {
		attrs += "," + owner[i] + "=" + owner[i+1]
	}
	return []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName(envPodName).WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))),
		corev1ac.EnvVar().WithName("OTEL_EXPORTER_OTLP_ENDPOINT").WithValue(opts.OTLPEndpoint),
		corev1ac.EnvVar().WithName("OTEL_SERVICE_NAME").WithValue(service),
		// $(POD_NAME) is expanded by the kubelet from the variable defined above.
		corev1ac.EnvVar().WithName("OTEL_RESOURCE_ATTRIBUTES").WithValue(attrs),
		corev1ac.EnvVar().WithName("OTEL_TRACES_SAMPLER").WithValue("parentbased_traceidratio"),
		corev1ac.EnvVar().WithName("OTEL_TRACES_SAMPLER_ARG").WithValue(strconv.FormatFloat(opts.TraceSamplingRatio, 'g', -1, 64)),
	}
}

// envPodName holds the pod's name in traced containers, for OTEL_RESOURCE_ATTRIBUTES.
const envPodName = "FREIGHTCAST_POD_NAME"

// Service names (service.name) of the data-plane roles in traces.
const (
	serviceIngest    = "freightcast-ingest"
	serviceInference = "freightcast-inference"
	servicePredictor = "freightcast-predictor"
)

// restrictedPodSecurityContext meets the "restricted" Pod Security Standard.
func restrictedPodSecurityContext() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(65532).
		WithRunAsGroup(65532).
		WithFSGroup(65532).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

func restrictedContainerSecurityContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithAllowPrivilegeEscalation(false).
		WithReadOnlyRootFilesystem(true).
		WithRunAsNonRoot(true).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// dataPlaneContainer is the part every data-plane container shares: image, port, security,
// probes on the given paths, and a preStop pause.
func dataPlaneContainer(name string, opts Options, args []string, livePath, readyPath string, resources corev1.ResourceRequirements) *corev1ac.ContainerApplyConfiguration {
	c := corev1ac.Container().
		WithName(name).
		WithImage(opts.Image).
		WithImagePullPolicy(opts.ImagePullPolicy).
		WithArgs(args...).
		WithPorts(corev1ac.ContainerPort().WithName(httpPortName).WithContainerPort(httpPort).WithProtocol(corev1.ProtocolTCP)).
		WithSecurityContext(restrictedContainerSecurityContext()).
		// The process writes its fatal error (a model that cannot load: exit code 78) to the
		// termination log; the operator reads it from the pod's last state.
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithLivenessProbe(httpProbe(livePath).WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithReadinessProbe(httpProbe(readyPath).WithPeriodSeconds(2).WithFailureThreshold(2)).
		WithStartupProbe(httpProbe(livePath).WithPeriodSeconds(1).WithFailureThreshold(120)).
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
			WithSleep(corev1ac.SleepAction().WithSeconds(preStopSleepSeconds)))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(tmpVolumeName).WithMountPath("/tmp"))
	if rr := resourceRequirements(resources); rr != nil {
		c.WithResources(rr)
	}
	if env := goMemoryLimitEnv(resources); env != nil {
		c.WithEnv(env)
	}
	return c
}

// goMemoryLimitEnv sets GOMEMLIMIT to nine tenths of the container's memory limit, when it has
// one. The Go collector then works harder as the heap nears the limit instead of the kernel
// killing the pod, and the body budget of the HTTP servers (internal/httpbody) is sized from it.
// The tenth left is for what the cgroup counts and the Go limit does not: the binary's text and
// the page cache of the files the pod reads (its model).
func goMemoryLimitEnv(resources corev1.ResourceRequirements) *corev1ac.EnvVarApplyConfiguration {
	limit, ok := resources.Limits[corev1.ResourceMemory]
	if !ok || limit.Value() <= 0 {
		return nil
	}
	return corev1ac.EnvVar().WithName("GOMEMLIMIT").WithValue(strconv.FormatInt(limit.Value()/10*9, 10))
}

// urlScheme is the URL scheme of a data-plane server: https with a TLS Secret, http without.
func urlScheme(tls *freightcastv1alpha1.TLSSpec) string {
	if tls != nil {
		return "https"
	}
	return "http"
}

// withTokens mounts the Secret key holding the accepted bearer tokens at spec.TokensFile into
// c and returns the volume for the pod. A container is copied into its pod spec: call this
// before adding it.
func withTokens(c *corev1ac.ContainerApplyConfiguration, auth *freightcastv1alpha1.BearerTokenAuth) []*corev1ac.VolumeApplyConfiguration {
	if auth == nil {
		return nil
	}
	c.WithVolumeMounts(corev1ac.VolumeMount().WithName(authVolume).WithMountPath(path.Dir(spec.TokensFile)).WithReadOnly(true))
	return []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(authVolume).WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(auth.SecretRef.Name).
		WithDefaultMode(0o440).
		WithItems(corev1ac.KeyToPath().WithKey(auth.SecretRef.Key).WithPath(path.Base(spec.TokensFile))))}
}

// withTLS mounts the kubernetes.io/tls Secret at tlsDir, has the server serve HTTPS with it, and
// switches the probes to HTTPS (the kubelet does not verify the certificate); it returns the
// volume for the pod. Call it before adding c to its pod spec, as withTokens.
func withTLS(c *corev1ac.ContainerApplyConfiguration, tls *freightcastv1alpha1.TLSSpec) []*corev1ac.VolumeApplyConfiguration {
	if tls == nil {
		return nil
	}
	c.WithArgs("--tls-cert-file="+path.Join(tlsDir, corev1.TLSCertKey), "--tls-key-file="+path.Join(tlsDir, corev1.TLSPrivateKeyKey)).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(tlsVolume).WithMountPath(tlsDir).WithReadOnly(true))
	for _, p := range []*corev1ac.ProbeApplyConfiguration{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		p.HTTPGet.WithScheme(corev1.URISchemeHTTPS)
	}
	return []*corev1ac.VolumeApplyConfiguration{corev1ac.Volume().WithName(tlsVolume).WithSecret(corev1ac.SecretVolumeSource().
		WithSecretName(tls.SecretRef.Name).
		WithDefaultMode(0o440).
		WithItems(
			corev1ac.KeyToPath().WithKey(corev1.TLSCertKey).WithPath(corev1.TLSCertKey),
			corev1ac.KeyToPath().WithKey(corev1.TLSPrivateKeyKey).WithPath(corev1.TLSPrivateKeyKey)))}
}

func httpProbe(path string) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().
		WithPath(path).WithPort(intstr.FromString(httpPortName)).WithScheme(corev1.URISchemeHTTP)).
		WithTimeoutSeconds(1)
}

// resourceRequirements converts a typed ResourceRequirements into its apply configuration,
// returning nil when empty so that nothing is sent.
func resourceRequirements(r corev1.ResourceRequirements) *corev1ac.ResourceRequirementsApplyConfiguration {
	if len(r.Limits) == 0 && len(r.Requests) == 0 {
		return nil
	}
	rr := corev1ac.ResourceRequirements()
	if len(r.Limits) > 0 {
		rr.WithLimits(r.Limits.DeepCopy())
	}
	if len(r.Requests) > 0 {
		rr.WithRequests(r.Requests.DeepCopy())
	}
	return rr
}

// dataPlanePodSpec is what every data-plane pod shares, so that a hardening lands in all of
// them at once: no API credentials, no Service environment, the restricted security context, a
// bounded /tmp, and the one container.
func dataPlanePodSpec(container *corev1ac.ContainerApplyConfiguration, gracePeriod int64) *corev1ac.PodSpecApplyConfiguration {
	return corev1ac.PodSpec().
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithSecurityContext(restrictedPodSecurityContext()).
		WithTerminationGracePeriodSeconds(gracePeriod).
		WithContainers(container).
		WithVolumes(corev1ac.Volume().WithName(tmpVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource().
			WithSizeLimit(resource.MustParse("64Mi"))))
}

// surgeRollout replaces pods without ever dropping below the current capacity: new pods come up
// (at most maxSurge beyond the replicas) before an old one is retired.
func surgeRollout(maxSurge intstr.IntOrString) *appsv1ac.DeploymentStrategyApplyConfiguration {
	return appsv1ac.DeploymentStrategy().
		WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
			WithMaxSurge(maxSurge).
			WithMaxUnavailable(intstr.FromInt32(0)))
}

// httpService exposes the pods that selector matches on the data plane's one HTTP port, which
// speaks appProtocol ("http" or "https").
func httpService(name, namespace, appProtocol string, labels, selector map[string]string, owner *metav1ac.OwnerReferenceApplyConfiguration) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(name, namespace).
		WithLabels(labels).
		WithOwnerReferences(owner).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selector).
			WithPorts(corev1ac.ServicePort().
				WithName(httpPortName).
				WithPort(httpPort).
				WithTargetPort(intstr.FromString(httpPortName)).
				WithProtocol(corev1.ProtocolTCP).
				WithAppProtocol(appProtocol)))
}
