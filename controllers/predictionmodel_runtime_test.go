package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// A model that Freightcast's own runtime does not run (here, bytes that are no ONNX at all) is
// served by the runtime the spec names: its image, port and probes, the file placed where it
// expects it, the tokens mounted, and the operator's own checks of the file skipped.
func TestPredictionModelServedByAnotherRuntime(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	foreign := []byte("a TorchScript archive, say: nothing Freightcast's runtime loads")
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ranker-files"}, BinaryData: map[string][]byte{"model.pt": foreign}}
	model := newModel(ns, "ranker", "ranker-files")
	model.Spec.Source.ConfigMap.Key = "model.pt"
	model.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "ranker-tokens"}}
	model.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "registry.example.com/mlserver:1.6", Port: 9000,
		Args: []string{"serve", "--model=$(FREIGHTCAST_MODEL_PATH)"}, Env: []corev1.EnvVar{{Name: "WORKERS", Value: "2"}}}
	mustCreate(t, cm, model)

	deploy := mustEventuallyGetDeployment(t, ns, "ranker-predictor")
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "registry.example.com/mlserver:1.6" {
		t.Errorf("image = %q", c.Image)
	}
	if diff := cmp.Diff([]string{"serve", "--model=$(FREIGHTCAST_MODEL_PATH)"}, c.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "http", ContainerPort: 9000, Protocol: corev1.ProtocolTCP}}, c.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		want := map[string]string{"readiness": "/v2/health/ready", "liveness": "/v2/health/live", "startup": "/v2/health/live"}[name]
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != want || p.HTTPGet.Port != intstr.FromString("http") {
			t.Errorf("%s probe = %+v, want GET %s on port http", name, p, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	for k, v := range map[string]string{"FREIGHTCAST_MODEL_DIR": "/mnt/models", "FREIGHTCAST_MODEL_PATH": "/mnt/models/model.pt",
		"FREIGHTCAST_MODEL_NAME": "ranker", "FREIGHTCAST_TOKENS_FILE": "/etc/freightcast/auth/tokens", "WORKERS": "2"} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["model"] != "/mnt/models" || mounts["auth"] != "/etc/freightcast/auth" {
		t.Errorf("mounts = %v, want the model at /mnt/models and the tokens at /etc/freightcast/auth", mounts)
	}
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "model" })
	if i < 0 || pod.Volumes[i].ConfigMap == nil || pod.Volumes[i].ConfigMap.Name != "ranker-files" ||
		!cmp.Equal(pod.Volumes[i].ConfigMap.Items, []corev1.KeyToPath{{Key: "model.pt", Path: "model.pt"}}) {
		t.Errorf("model volume = %+v", pod.Volumes)
	}
	if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context = %+v, want the restricted one", sc)
	}

	svc := &corev1.Service{}
	testenv.Eventually(t, 10*time.Second, "Service", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ranker-predictor"}, svc)
	})
	if p := svc.Spec.Ports[0]; p.Port != 8080 || p.TargetPort != intstr.FromString("http") {
		t.Errorf("Service port = %+v, want 8080 to the runtime's port http", p)
	}
	policy := &networkingv1.NetworkPolicy{}
	testenv.Eventually(t, 10*time.Second, "NetworkPolicy", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ranker-predictor"}, policy)
	})
	if p := policy.Spec.Ingress[0].Ports[0].Port; p == nil || *p != intstr.FromString("http") {
		t.Errorf("NetworkPolicy admits port %v, want http", p)
	}

	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)
	markDeploymentRolledOut(t, ns, "ranker-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	loaded := apimeta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionModelLoaded)
	if !strings.Contains(loaded.Message, "runtime registry.example.com/mlserver:1.6") || !strings.Contains(loaded.Message, "checks of the model file") {
		t.Errorf("ModelLoaded message %q does not say which runtime serves and that the checks were skipped", loaded.Message)
	}
	if model.Status.ModelDigest != digestOf(foreign) || model.Status.LastGoodRevision == nil || model.Status.FailedRollout != nil {
		t.Errorf("status = %+v, want the file's digest served, a last good revision and no failed rollout", model.Status)
	}
	if model.Status.Endpoint != "http://ranker-predictor."+ns+".svc:8080/v2/models/ranker" {
		t.Errorf("endpoint = %q", model.Status.Endpoint)
	}
}

// A gRPC runtime is probed with the kubelet's gRPC probe, its port named grpc everywhere, and a
// download reaches it through the fetch-model init container of the operator's image.
func TestPredictionModelGRPCRuntimeWithDownload(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	model := newModel(ns, "triton", "")
	model.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/ranker.onnx", SHA256: sha}
	model.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "nvcr.io/nvidia/tritonserver:24.08-py3", Protocol: freightcastv1alpha1.RuntimeProtocolGRPC,
		Port: 8001, ModelDir: "/models/ranker/1"}
	mustCreate(t, model)

	deploy := mustEventuallyGetDeployment(t, ns, "triton-predictor")
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	if diff := cmp.Diff([]corev1.ContainerPort{{Name: "grpc", ContainerPort: 8001, Protocol: corev1.ProtocolTCP}}, c.Ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil || p.GRPC == nil || p.GRPC.Port != 8001 || p.HTTPGet != nil {
			t.Errorf("%s probe = %+v, want gRPC on 8001", name, p)
		}
	}
	if len(pod.InitContainers) != 1 {
		t.Fatalf("init containers = %+v, want fetch-model", pod.InitContainers)
	}
	fetch := pod.InitContainers[0]
	if diff := cmp.Diff([]string{"fetch-model", "--model-uri=https://models.example.com/ranker.onnx", "--model-sha256=" + sha,
		"--out=/models/ranker/1/model.onnx"}, fetch.Args); diff != "" || fetch.Image != testImage {
		t.Errorf("fetch-model image %q args (-want +got):\n%s", fetch.Image, diff)
	}
	if fetch.VolumeMounts[0].Name != "model" || fetch.VolumeMounts[0].MountPath != "/models/ranker/1" || fetch.VolumeMounts[0].ReadOnly {
		t.Errorf("fetch-model mounts = %+v, want the model volume writable at /models/ranker/1", fetch.VolumeMounts)
	}
	svc := &corev1.Service{}
	testenv.Eventually(t, 10*time.Second, "Service", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "triton-predictor"}, svc)
	})
	if p := svc.Spec.Ports[0]; p.Name != "grpc" || p.TargetPort != intstr.FromString("grpc") || p.AppProtocol == nil || *p.AppProtocol != "grpc" {
		t.Errorf("Service port = %+v, want grpc", p)
	}
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)
	if model.Status.Endpoint != "grpc://triton-predictor."+ns+".svc:8080" {
		t.Errorf("endpoint = %q", model.Status.Endpoint)
	}

	// A change of the runtime's image rolls the pods, as a new model file does.
	mustUpdate(t, model, func() { model.Spec.Runtime.Image = "nvcr.io/nvidia/tritonserver:24.09-py3" })
	waitDeployment(t, 10*time.Second, ns, "triton-predictor", "new runtime image", func(d *appsv1.Deployment) error {
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "nvcr.io/nvidia/tritonserver:24.09-py3" {
			return fmt.Errorf("image %q", img)
		}
		return nil
	})
}

// A pipeline whose model another runtime serves scores through the model's Service: its pool
// mounts no model file but the model's tokens, its config names the Service, its NetworkPolicy
// lets it reach the serving pods, ingestion takes the feature names from the spec, and when the
// model has no ready pod the pipeline says ModelUnavailable.
func TestFreightPipelineScoresThroughAnotherRuntime(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	model := newModel(ns, "ranker", "ranker-files")
	model.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "ranker-tokens"}}
	model.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "registry.example.com/mlserver:1.6", Port: 9000}
	mustCreate(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ranker-files"}, BinaryData: map[string][]byte{"model.onnx": []byte("not ONNX")}}, model)
	mustEventuallyGetDeployment(t, ns, "ranker-predictor")
	markDeploymentRolledOut(t, ns, "ranker-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	p := newPipeline(ns, "orders", "ranker")
	mustCreate(t, p)

	cm := &corev1.ConfigMap{}
	testenv.Eventually(t, 10*time.Second, "pipeline config", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm)
	})
	cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
	if err != nil {
		t.Fatal(err)
	}
	want := &pipelineconfig.Remote{URL: "http://ranker-predictor." + ns + ".svc:8080", Protocol: "REST", TokenFile: "/etc/freightcast/model-auth/tokens"}
	if diff := cmp.Diff(want, cfg.Model.Remote); diff != "" {
		t.Errorf("pipeline config model.remote (-want +got):\n%s", diff)
	}
	for _, name := range []string{"orders-inference", "orders-ingest"} {
		d := mustEventuallyGetDeployment(t, ns, name)
		pod := d.Spec.Template.Spec
		for _, arg := range pod.Containers[0].Args {
			if strings.HasPrefix(arg, "--model-file") || strings.HasPrefix(arg, "--model-uri") {
				t.Errorf("%s runs the model file (%s); another runtime serves it", name, arg)
			}
		}
		if slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "model" }) {
			t.Errorf("%s mounts the model file", name)
		}
		hasTokens := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "model-auth" && v.Secret != nil && v.Secret.SecretName == "ranker-tokens"
		})
		if hasTokens != (name == "orders-inference") {
			t.Errorf("%s mounts the model's tokens: %v", name, hasTokens)
		}
	}
	policy := &networkingv1.NetworkPolicy{}
	testenv.Eventually(t, 10*time.Second, "the pipeline's NetworkPolicy", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, policy)
	})
	reaches := slices.ContainsFunc(policy.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
		return len(r.To) == 1 && r.To[0].PodSelector != nil && r.To[0].PodSelector.MatchLabels[labelModel] == "ranker" &&
			len(r.Ports) == 1 && r.Ports[0].Port != nil && *r.Ports[0].Port == intstr.FromInt32(9000)
	})
	if !reaches {
		t.Errorf("the pipeline's egress %+v does not reach the model's pods on 9000", policy.Spec.Egress)
	}

	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)

	// The runtime's pods are gone (killed, evicted): the pool waits for them, and says so.
	setDeploymentStatus(t, ns, "ranker-predictor", "no pod ready", func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n}
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonModelUnavailable)
}

// A pipeline asked to score remotely through a model our own runtime serves calls it over gRPC
// (the runtime serves both protocols; gRPC carries the batch raw): its config names the
// Service's grpc port, and its NetworkPolicy lets it reach the pods' gRPC port. When the model
// serves TLS, the pool calls grpcs and trusts the certificates of the model's TLS Secret, which
// only the pool mounts, without its private key.
func TestFreightPipelineScoresThroughOurRuntimeOverGRPC(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plaintext", true: "TLS"}[withTLS], func(t *testing.T) {
			scoresThroughOurRuntimeOverGRPC(t, withTLS)
		})
	}
}

func scoresThroughOurRuntimeOverGRPC(t *testing.T, withTLS bool) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	model := newModel(ns, "risk", "risk-files")
	want := &pipelineconfig.Remote{URL: "grpc://risk-predictor." + ns + ".svc:8081", Protocol: "GRPC"}
	if withTLS {
		model.Spec.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "risk-tls"}}
		want.URL = "grpcs://risk-predictor." + ns + ".svc:8081"
		want.TrustFiles = []string{"/etc/freightcast/model-tls/ca.crt", "/etc/freightcast/model-tls/tls.crt"}
	}
	mustCreate(t, newModelConfigMap(ns, "risk-files", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, "risk-predictor")
	markDeploymentRolledOut(t, ns, "risk-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	p := newPipeline(ns, "orders", "risk")
	p.Spec.Inference.Scoring = freightcastv1alpha1.ScoringRemote
	mustCreate(t, p)

	cm := &corev1.ConfigMap{}
	testenv.Eventually(t, 10*time.Second, "pipeline config", func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm)
	})
	cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, cfg.Model.Remote); diff != "" {
		t.Errorf("pipeline config model.remote (-want +got):\n%s", diff)
	}
	for _, name := range []string{"orders-inference", "orders-ingest"} {
		pod := mustEventuallyGetDeployment(t, ns, name).Spec.Template.Spec
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "model-tls" })
		if (i >= 0) != (withTLS && name == "orders-inference") {
			t.Errorf("%s mounts the model's TLS Secret: %v", name, i >= 0)
		}
		if i < 0 {
			continue
		}
		s := pod.Volumes[i].Secret
		wantItems := []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}, {Key: "tls.crt", Path: "tls.crt"}}
		if s == nil || s.SecretName != "risk-tls" || s.Optional == nil || !*s.Optional || !cmp.Equal(s.Items, wantItems) {
			t.Errorf("%s's model-tls volume = %+v, want the optional Secret risk-tls's %v only", name, s, wantItems)
		}
		if !slices.ContainsFunc(pod.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == "model-tls" && m.MountPath == "/etc/freightcast/model-tls" && m.ReadOnly
		}) {
			t.Errorf("%s mounts = %+v, want model-tls read-only where the config points", name, pod.Containers[0].VolumeMounts)
		}
	}
	policy := &networkingv1.NetworkPolicy{}
	testenv.Eventually(t, 10*time.Second, "the pipeline's NetworkPolicy reaching the model's gRPC port", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, policy); err != nil {
			return err
		}
		if !slices.ContainsFunc(policy.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
			return len(r.To) == 1 && r.To[0].PodSelector != nil && r.To[0].PodSelector.MatchLabels[labelModel] == "risk" &&
				len(r.Ports) == 1 && r.Ports[0].Port != nil && *r.Ports[0].Port == intstr.FromInt32(8081)
		}) {
			return fmt.Errorf("egress %+v does not reach the model's pods on 8081", policy.Spec.Egress)
		}
		return nil
	})
}
