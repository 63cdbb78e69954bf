package controllers

import (
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// The environment the operator gives a spec.runtime container, so that its args can name the
// model file wherever the source put it ($(FREIGHTCAST_MODEL_PATH)).
const (
	envRuntimeModelDir     = "FREIGHTCAST_MODEL_DIR"
	envRuntimeModelPath    = "FREIGHTCAST_MODEL_PATH"
	envRuntimeModelName    = "FREIGHTCAST_MODEL_NAME"
	envRuntimeModelVersion = "FREIGHTCAST_MODEL_VERSION"
	envRuntimeTokensFile   = "FREIGHTCAST_TOKENS_FILE"

	// downloadedModelFile is the name of a downloaded model file in runtime.modelDir.
	downloadedModelFile = "model.onnx"
)

// runtimePortName is the name of a runtime's container and Service port: http for REST, grpc
// for gRPC, so that the Service's appProtocol and a reader of the pod agree.
func runtimePortName(r *freightcastv1alpha1.RuntimeSpec) string {
	if r.Protocol == freightcastv1alpha1.RuntimeProtocolGRPC {
		return grpcPortName
	}
	return httpPortName
}

// runtimeModel is how a spec.runtime pod gets the model file: its volume mounted at modelDir,
// where the file is, and, for a download, the init container that fetches it there.
type runtimeModel struct {
	volumes  []*corev1ac.VolumeApplyConfiguration
	mount    *corev1ac.VolumeMountApplyConfiguration
	file     string
	initCtrs []*corev1ac.ContainerApplyConfiguration
}

// runtimeModelFor places revision rev's model file under dir: a ConfigMap key as a file of the
// key's name, a PersistentVolumeClaim mounted whole (read-only) with the file at its path, a
// download fetched by `freightcast fetch-model` from the operator's image into an emptyDir.
func runtimeModelFor(rev freightcastv1alpha1.ModelRevision, dir string, opts Options) runtimeModel {
	src := rev.Source
	m := runtimeModel{mount: corev1ac.VolumeMount().WithName(modelVolumeName).WithMountPath(dir).WithReadOnly(true)}
	switch {
	case src.ConfigMap != nil:
		key := spec.ConfigMapKey(src.ConfigMap)
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelVolumeName).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(src.ConfigMap.Name).
				WithItems(corev1ac.KeyToPath().WithKey(key).WithPath(key))))
		m.file = path.Join(dir, key)
	case src.PersistentVolumeClaim != nil:
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelVolumeName).
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().
				WithClaimName(src.PersistentVolumeClaim.ClaimName).WithReadOnly(true)))
		m.file = path.Join(dir, path.Clean(src.PersistentVolumeClaim.Path))
	case src.URI != "":
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelVolumeName).WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
		m.file = path.Join(dir, downloadedModelFile)
		args := []string{"fetch-model", "--model-uri=" + src.URI, "--model-sha256=" + src.SHA256, "--out=" + m.file}
		fetch := corev1ac.Container().
			WithName("fetch-model").
			WithImage(opts.Image).
			WithImagePullPolicy(opts.ImagePullPolicy).
			WithSecurityContext(restrictedContainerSecurityContext()).
			WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
			WithVolumeMounts(corev1ac.VolumeMount().WithName(modelVolumeName).WithMountPath(dir))
		if ca := src.CABundle; ca != nil {
			m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelCAVolumeName).
				WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(ca.ConfigMap.Name).
					WithItems(corev1ac.KeyToPath().WithKey(spec.CABundleKey(ca)).WithPath("ca.crt"))))
			fetch.WithVolumeMounts(corev1ac.VolumeMount().WithName(modelCAVolumeName).WithMountPath(modelCADir).WithReadOnly(true))
			args = append(args, "--model-ca-file="+path.Join(modelCADir, "ca.crt"))
		}
		m.initCtrs = append(m.initCtrs, fetch.WithArgs(args...))
	}
	return m
}

// runtimeContainer is the container of a spec.runtime model: the user's image with the
// protocol's probes (OIP's health endpoints over REST, the gRPC health service over gRPC), the
// restricted security context every data-plane container has, the model under modelDir, the
// tokens file of spec.auth, and the FREIGHTCAST_ variables naming them.
func runtimeContainer(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision, rm runtimeModel) *corev1ac.ContainerApplyConfiguration {
	r := model.Spec.Runtime
	srv := spec.ModelServer(model, rev)
	portName := runtimePortName(r)
	probe := func(httpPath string) *corev1ac.ProbeApplyConfiguration {
		if r.Protocol == freightcastv1alpha1.RuntimeProtocolGRPC {
			// The kubelet's own gRPC probe calls grpc.health.v1.Health/Check; it needs the
			// port's number.
			return corev1ac.Probe().WithGRPC(corev1ac.GRPCAction().WithPort(r.Port)).WithTimeoutSeconds(1)
		}
		return corev1ac.Probe().WithHTTPGet(corev1ac.HTTPGetAction().
			WithPath(httpPath).WithPort(intstr.FromString(portName)).WithScheme(corev1.URISchemeHTTP)).
			WithTimeoutSeconds(1)
	}
	env := []*corev1ac.EnvVarApplyConfiguration{
		corev1ac.EnvVar().WithName(envRuntimeModelDir).WithValue(r.ModelDir),
		corev1ac.EnvVar().WithName(envRuntimeModelPath).WithValue(rm.file),
		corev1ac.EnvVar().WithName(envRuntimeModelName).WithValue(srv.Name),
		corev1ac.EnvVar().WithName(envRuntimeModelVersion).WithValue(srv.Version),
	}
	if model.Spec.Auth != nil {
		env = append(env, corev1ac.EnvVar().WithName(envRuntimeTokensFile).WithValue(spec.TokensFile))
	}
	for i := range r.Env {
		env = append(env, envVar(&r.Env[i]))
	}
	c := corev1ac.Container().
		WithName("server").
		WithImage(r.Image).
		WithPorts(corev1ac.ContainerPort().WithName(portName).WithContainerPort(r.Port).WithProtocol(corev1.ProtocolTCP)).
		WithSecurityContext(restrictedContainerSecurityContext()).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithLivenessProbe(probe("/v2/health/live").WithPeriodSeconds(10).WithFailureThreshold(3)).
		WithReadinessProbe(probe("/v2/health/ready").WithPeriodSeconds(2).WithFailureThreshold(2)).
		// Other runtimes may take minutes to load a large model: ten of them before the
		// kubelet restarts the container.
		WithStartupProbe(probe("/v2/health/live").WithPeriodSeconds(2).WithFailureThreshold(300)).
		WithLifecycle(corev1ac.Lifecycle().WithPreStop(corev1ac.LifecycleHandler().
			WithSleep(corev1ac.SleepAction().WithSeconds(preStopSleepSeconds)))).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(tmpVolumeName).WithMountPath("/tmp"), rm.mount).
		WithEnv(env...)
	if len(r.Command) > 0 {
		c.WithCommand(r.Command...)
	}
	if len(r.Args) > 0 {
		c.WithArgs(r.Args...)
	}
	if rr := resourceRequirements(model.Spec.Resources); rr != nil {
		c.WithResources(rr)
	}
	return c
}

// envVar converts a user's EnvVar into its apply configuration.
func envVar(e *corev1.EnvVar) *corev1ac.EnvVarApplyConfiguration {
	ac := corev1ac.EnvVar().WithName(e.Name)
	if e.ValueFrom == nil {
		return ac.WithValue(e.Value)
	}
	src := corev1ac.EnvVarSource()
	v := e.ValueFrom
	switch {
	case v.FieldRef != nil:
		src.WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion(v.FieldRef.APIVersion).WithFieldPath(v.FieldRef.FieldPath))
	case v.ResourceFieldRef != nil:
		ref := corev1ac.ResourceFieldSelector().WithContainerName(v.ResourceFieldRef.ContainerName).WithResource(v.ResourceFieldRef.Resource)
		if !v.ResourceFieldRef.Divisor.IsZero() {
			ref.WithDivisor(v.ResourceFieldRef.Divisor)
		}
		src.WithResourceFieldRef(ref)
	case v.ConfigMapKeyRef != nil:
		src.WithConfigMapKeyRef(corev1ac.ConfigMapKeySelector().WithName(v.ConfigMapKeyRef.Name).WithKey(v.ConfigMapKeyRef.Key).
			WithOptional(v.ConfigMapKeyRef.Optional != nil && *v.ConfigMapKeyRef.Optional))
	case v.SecretKeyRef != nil:
		src.WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(v.SecretKeyRef.Name).WithKey(v.SecretKeyRef.Key).
			WithOptional(v.SecretKeyRef.Optional != nil && *v.SecretKeyRef.Optional))
	}
	return ac.WithValueFrom(src)
}
