package controllers

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

var testOptions = Options{Image: "registry.example/freightcast:v1", ImagePullPolicy: corev1.PullIfNotPresent, DefaultNATSURL: "nats://nats:4222"}

func TestModelMountFor(t *testing.T) {
	t.Parallel()
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := map[string]struct {
		source      freightcastv1alpha1.ModelSource
		version     string
		features    []string
		inputs      []freightcastv1alpha1.InputSpec
		wantArgs    []string
		wantVolumes []string
	}{
		"configmap with the default key": {
			source:      freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			wantArgs:    []string{"--model-file=/var/lib/freightcast/model/model.onnx", "--model-name=m", "--model-version=1"},
			wantVolumes: []string{"model"},
		},
		"pvc path, version and features": {
			source:   freightcastv1alpha1.ModelSource{PersistentVolumeClaim: &freightcastv1alpha1.PVCModelSource{ClaimName: "models", Path: "freight/./v3.onnx"}},
			version:  "v3",
			features: []string{"a", "b"},
			wantArgs: []string{"--model-file=/var/lib/freightcast/model/freight/v3.onnx", "--model-name=m", "--model-version=v3",
				"--features=a,b"},
			wantVolumes: []string{"model"},
		},
		"declared inputs": {
			source: freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			inputs: []freightcastv1alpha1.InputSpec{{Name: "x:0", DataType: "INT64", Shape: []int64{-1}, Features: []string{"mode"}}},
			wantArgs: []string{"--model-file=/var/lib/freightcast/model/model.onnx", "--model-name=m", "--model-version=1",
				`--inputs=[{"name":"x:0","datatype":"INT64","shape":[-1],"features":["mode"]}]`},
			wantVolumes: []string{"model"},
		},
		"https uri": {
			source: freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx", SHA256: sha},
			wantArgs: []string{"--model-uri=https://models.example.com/m.onnx", "--model-sha256=" + sha,
				"--model-cache-dir=/var/cache/freightcast", "--model-name=m", "--model-version=1"},
			wantVolumes: []string{"model-cache"},
		},
		"https uri trusting a CA bundle": {
			source: freightcastv1alpha1.ModelSource{URI: "https://models.internal/m.onnx", SHA256: sha,
				CABundle: &freightcastv1alpha1.CABundleSource{ConfigMap: freightcastv1alpha1.ConfigMapKeySelector{Name: "store-ca"}}},
			wantArgs: []string{"--model-uri=https://models.internal/m.onnx", "--model-sha256=" + sha,
				"--model-cache-dir=/var/cache/freightcast", "--model-ca-file=/etc/freightcast/model-ca/ca.crt", "--model-name=m", "--model-version=1"},
			wantVolumes: []string{"model-cache", "model-ca"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "m", "")
			m.Spec.Source, m.Spec.Version, m.Spec.Features, m.Spec.Inputs = tc.source, tc.version, tc.features, tc.inputs
			mm := modelMountFor(m, spec.SpecRevision(m, ""))
			if diff := cmp.Diff(tc.wantArgs, mm.args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			var vols []string
			for _, v := range mm.volumes {
				vols = append(vols, *v.Name)
			}
			if diff := cmp.Diff(tc.wantVolumes, vols); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
		})
	}
}

// assertRestricted checks what the "restricted" Pod Security Standard requires of a pod.
func assertRestricted(t *testing.T, spec *corev1ac.PodSpecApplyConfiguration) {
	t.Helper()
	if !*spec.SecurityContext.RunAsNonRoot || *spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", spec.SecurityContext)
	}
	if *spec.AutomountServiceAccountToken {
		t.Error("data-plane pods must not mount a service account token")
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || !*sc.RunAsNonRoot ||
			len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s security context %+v", *c.Name, sc)
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
			t.Errorf("container %s lacks probes or a preStop hook", *c.Name)
		}
		// The operator reads why a data-plane process exited (a model that cannot load) from
		// its termination message.
		if c.TerminationMessagePolicy == nil || *c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
			t.Errorf("container %s terminationMessagePolicy %v, want FallbackToLogsOnError", *c.Name, c.TerminationMessagePolicy)
		}
	}
}

func TestDesiredPredictorDeployment(t *testing.T) {
	t.Parallel()
	lastGood := freightcastv1alpha1.ModelRevision{
		Source:  freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm-old"}},
		Version: "0.9",
		Digest:  "sha256:old",
	}
	cases := map[string]struct {
		mutate         func(*freightcastv1alpha1.PredictionModel)
		digest         string
		rev            *freightcastv1alpha1.ModelRevision // nil: the spec's revision with digest
		wantReplicas   int32
		wantDeadline   int32
		wantModelArgs  []string
		wantConfigMap  string
		wantBatchArgs  []string
		wantAnnotation map[string]string
	}{
		"defaults": {
			mutate:         func(*freightcastv1alpha1.PredictionModel) {},
			digest:         "sha256:aa",
			wantReplicas:   1,
			wantDeadline:   300,
			wantModelArgs:  []string{"--model-name=m", "--model-version=1"},
			wantConfigMap:  "cm",
			wantBatchArgs:  []string{"--max-batch-size=64", "--max-batch-delay=2ms"},
			wantAnnotation: map[string]string{annotationModelDigest: "sha256:aa"},
		},
		"batching, replicas and progress deadline, unknown digest": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Replicas = ptr.To[int32](4)
				m.Spec.ProgressDeadlineSeconds = 60
				m.Spec.Batching = freightcastv1alpha1.BatchingSpec{MaxBatchSize: 256, MaxQueueDelay: &metav1.Duration{Duration: 500 * time.Microsecond}}
			},
			wantReplicas:  4,
			wantDeadline:  60,
			wantModelArgs: []string{"--model-name=m", "--model-version=1"},
			wantConfigMap: "cm",
			wantBatchArgs: []string{"--max-batch-size=256", "--max-batch-delay=500µs"},
		},
		"rolled back: the last good revision's file, version and digest, the spec's serving settings": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Version = "1.0"
				m.Spec.Replicas = ptr.To[int32](2)
			},
			rev:            &lastGood,
			wantReplicas:   2,
			wantDeadline:   300,
			wantModelArgs:  []string{"--model-name=m", "--model-version=0.9"},
			wantConfigMap:  "cm-old",
			wantBatchArgs:  []string{"--max-batch-size=64", "--max-batch-delay=2ms"},
			wantAnnotation: map[string]string{annotationModelDigest: "sha256:old"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "m", "cm")
			m.Spec.Features = nil
			tc.mutate(m)
			rev := spec.SpecRevision(m, tc.digest)
			if tc.rev != nil {
				rev = *tc.rev
			}
			d := desiredPredictorDeployment(m, rev, testOptions)
			if *d.Spec.Replicas != tc.wantReplicas || *d.Spec.ProgressDeadlineSeconds != tc.wantDeadline {
				t.Errorf("replicas = %d, progressDeadlineSeconds = %d, want %d, %d", *d.Spec.Replicas, *d.Spec.ProgressDeadlineSeconds, tc.wantReplicas, tc.wantDeadline)
			}
			var modelArgs []string
			for _, a := range d.Spec.Template.Spec.Containers[0].Args {
				if strings.HasPrefix(a, "--model-name=") || strings.HasPrefix(a, "--model-version=") {
					modelArgs = append(modelArgs, a)
				}
			}
			if diff := cmp.Diff(tc.wantModelArgs, modelArgs); diff != "" {
				t.Errorf("model args (-want +got):\n%s", diff)
			}
			var configMaps []string
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.ConfigMap != nil {
					configMaps = append(configMaps, *v.ConfigMap.Name)
				}
			}
			if !slices.Contains(configMaps, tc.wantConfigMap) {
				t.Errorf("ConfigMap volumes %v lack %q", configMaps, tc.wantConfigMap)
			}
			args := d.Spec.Template.Spec.Containers[0].Args
			if diff := cmp.Diff(tc.wantBatchArgs, args[len(args)-2:]); diff != "" {
				t.Errorf("batching args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantAnnotation, d.Spec.Template.Annotations); diff != "" {
				t.Errorf("template annotations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(predictorSelector(m), d.Spec.Selector.MatchLabels); diff != "" {
				t.Errorf("selector (-want +got):\n%s", diff)
			}
			if *d.Spec.Template.Spec.Containers[0].Image != testOptions.Image {
				t.Errorf("image %s", *d.Spec.Template.Spec.Containers[0].Image)
			}
			assertRestricted(t, d.Spec.Template.Spec)
		})
	}
}

func TestDesiredPipelineDeployments(t *testing.T) {
	t.Parallel()
	m := newModel("ns", "m", "cm")
	cases := map[string]struct {
		mutate       func(*freightcastv1alpha1.FreightPipeline)
		wantAuthVol  bool
		wantIngestRS int32
	}{
		"defaults": {mutate: func(*freightcastv1alpha1.FreightPipeline) {}, wantIngestRS: 2},
		"auth and 5 ingesters": {mutate: func(p *freightcastv1alpha1.FreightPipeline) {
			p.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "tokens", Key: "list"}}
			p.Spec.Ingestion.Replicas = ptr.To[int32](5)
		}, wantAuthVol: true, wantIngestRS: 5},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline("ns", "orders", "m")
			tc.mutate(p)
			ingest := desiredIngestionDeployment(p, m, "sha256:m", "sha256:c", testOptions)
			infer := desiredInferenceDeployment(p, m, "sha256:m", "sha256:c", testOptions)
			if *ingest.Spec.Replicas != tc.wantIngestRS {
				t.Errorf("ingestion replicas %d", *ingest.Spec.Replicas)
			}
			if infer.Spec.Replicas != nil {
				t.Errorf("inference Deployment carries replicas %d: the autoscaler owns them", *infer.Spec.Replicas)
			}
			assertRestricted(t, ingest.Spec.Template.Spec)
			assertRestricted(t, infer.Spec.Template.Spec)
			hasAuth := false
			for _, v := range ingest.Spec.Template.Spec.Volumes {
				if *v.Name == authVolume {
					hasAuth = true
					if *v.Secret.SecretName != "tokens" || *v.Secret.Items[0].Key != "list" {
						t.Errorf("auth volume %+v", v.Secret)
					}
				}
			}
			if hasAuth != tc.wantAuthVol {
				t.Errorf("auth volume present = %v, want %v", hasAuth, tc.wantAuthVol)
			}
			wantAnn := map[string]string{annotationModelDigest: "sha256:m", annotationConfigDigest: "sha256:c"}
			if diff := cmp.Diff(wantAnn, infer.Spec.Template.Annotations); diff != "" {
				t.Errorf("inference template annotations (-want +got):\n%s", diff)
			}
			if got := infer.Spec.Template.Spec.Containers[0].Args[:2]; got[0] != "infer" || got[1] != "--worker" {
				t.Errorf("inference args %v", infer.Spec.Template.Spec.Containers[0].Args)
			}
		})
	}
}

// TestDataPlanePodsMountTheDownloadsCABundle: every pod that downloads the model (serving,
// ingestion, inference) gets the CA bundle's ConfigMap key as the file --model-ca-file names.
func TestDataPlanePodsMountTheDownloadsCABundle(t *testing.T) {
	t.Parallel()
	m := newModel("ns", "m", "")
	m.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.internal/m.onnx", SHA256: strings.Repeat("ab", 32),
		CABundle: &freightcastv1alpha1.CABundleSource{ConfigMap: freightcastv1alpha1.ConfigMapKeySelector{Name: "store-ca", Key: "bundle.pem"}}}
	p := newPipeline("ns", "orders", "m")
	for component, d := range map[string]*appsv1ac.DeploymentApplyConfiguration{
		"serving":   desiredPredictorDeployment(m, spec.SpecRevision(m, "sha256:m"), testOptions),
		"ingestion": desiredIngestionDeployment(p, m, "sha256:m", "sha256:c", testOptions),
		"inference": desiredInferenceDeployment(p, m, "sha256:m", "sha256:c", testOptions),
	} {
		pod := d.Spec.Template.Spec
		var vol *corev1ac.VolumeApplyConfiguration
		for i := range pod.Volumes {
			if *pod.Volumes[i].Name == modelCAVolumeName {
				vol = &pod.Volumes[i]
			}
		}
		if vol == nil || vol.ConfigMap == nil || *vol.ConfigMap.Name != "store-ca" || len(vol.ConfigMap.Items) != 1 ||
			*vol.ConfigMap.Items[0].Key != "bundle.pem" || *vol.ConfigMap.Items[0].Path != "ca.crt" {
			t.Errorf("%s: CA volume %+v", component, vol)
			continue
		}
		c := pod.Containers[0]
		mounted := slices.ContainsFunc(c.VolumeMounts, func(vm corev1ac.VolumeMountApplyConfiguration) bool {
			return *vm.Name == modelCAVolumeName && *vm.MountPath == modelCADir && *vm.ReadOnly
		})
		if !mounted || !slices.Contains(c.Args, "--model-ca-file=/etc/freightcast/model-ca/ca.crt") {
			t.Errorf("%s: mounts %+v, args %v", component, c.VolumeMounts, c.Args)
		}
	}
}

func TestPipelinePoolsFollowTheServedRevision(t *testing.T) {
	t.Parallel()
	lastGood := &freightcastv1alpha1.ModelRevision{
		Source:  freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm-old"}},
		Version: "0.9",
		Digest:  "sha256:old",
	}
	cases := map[string]struct {
		status        freightcastv1alpha1.PredictionModelStatus
		wantConfigMap string
		wantVersion   string
	}{
		"no rollback: the spec": {
			status:        freightcastv1alpha1.PredictionModelStatus{LastGoodRevision: lastGood},
			wantConfigMap: "cm",
			wantVersion:   "1",
		},
		"rolled back on the current generation: the last good revision": {
			status: freightcastv1alpha1.PredictionModelStatus{LastGoodRevision: lastGood,
				FailedRollout: &freightcastv1alpha1.FailedRollout{Generation: 3}},
			wantConfigMap: "cm-old",
			wantVersion:   "0.9",
		},
		"a rollback of an older generation no longer applies": {
			status: freightcastv1alpha1.PredictionModelStatus{LastGoodRevision: lastGood,
				FailedRollout: &freightcastv1alpha1.FailedRollout{Generation: 2}},
			wantConfigMap: "cm",
			wantVersion:   "1",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "m", "cm")
			m.Generation = 3
			m.Status = tc.status
			p := newPipeline("ns", "orders", "m")
			for component, d := range map[string]*appsv1ac.DeploymentApplyConfiguration{
				"ingestion": desiredIngestionDeployment(p, m, "sha256:m", "sha256:c", testOptions),
				"inference": desiredInferenceDeployment(p, m, "sha256:m", "sha256:c", testOptions),
			} {
				var got []string
				for _, v := range d.Spec.Template.Spec.Volumes {
					if *v.Name == modelVolumeName {
						got = append(got, *v.ConfigMap.Name)
					}
				}
				if diff := cmp.Diff([]string{tc.wantConfigMap}, got); diff != "" {
					t.Errorf("%s model ConfigMap (-want +got):\n%s", component, diff)
				}
				if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--model-version="+tc.wantVersion) {
					t.Errorf("%s args %v lack --model-version=%s", component, args, tc.wantVersion)
				}
			}
			if got := spec.Pipeline(p, m, "nats://n", 1).Model.Version; got != tc.wantVersion {
				t.Errorf("pipeline config model version %q, want %q", got, tc.wantVersion)
			}
		})
	}
}

// TestGoMemoryLimitFollowsTheMemoryLimit: a data-plane container with a memory limit tells the
// Go runtime nine tenths of it, so that the collector, not the kernel's OOM killer, holds the
// heap under it; one without a limit leaves the runtime unbounded.
func TestGoMemoryLimitFollowsTheMemoryLimit(t *testing.T) {
	t.Parallel()
	goMemLimit := func(c *corev1ac.ContainerApplyConfiguration) (string, bool) {
		for _, e := range c.Env {
			if *e.Name == "GOMEMLIMIT" {
				return *e.Value, true
			}
		}
		return "", false
	}
	limited := corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}
	got, ok := goMemLimit(dataPlaneContainer("c", testOptions, nil, "/live", "/ready", limited))
	if want := "241591905"; !ok || got != want { // 268435456 / 10 * 9
		t.Errorf("GOMEMLIMIT = %q (set %v) for a 256Mi limit, want %s", got, ok, want)
	}
	requestsOnly := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
	if got, ok := goMemLimit(dataPlaneContainer("c", testOptions, nil, "/live", "/ready", requestsOnly)); ok {
		t.Errorf("GOMEMLIMIT = %q without a memory limit; want it unset", got)
	}
}
