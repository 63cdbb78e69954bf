//go:build e2e

// Package e2e tests the whole product on a real single-node Kubernetes (hack/cluster/cluster.sh):
// the operator runs in-cluster from its image, the data plane runs in real pods, the queue is a
// real nats-server pod. Run it with `make cluster-up e2e`.
//
// The host reaches the cluster only over loopback: every Service a test calls gets a NodePort twin
// that kube-proxy answers on 127.0.0.1.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

const (
	systemNamespace = "freightcast-system"
	managerName     = "freightcast-manager"
)

var (
	k8s        client.Client
	repoRoot   string
	kubectlBin string
	timings    = &timingLog{}
	// operatorImage is the freightcast image the cluster imported.
	operatorImage string
	// helmRelease installs or upgrades the operator's release with extra helm flags.
	helmRelease func(extra ...string) error
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	kubeconfig := os.Getenv("KUBECONFIG")
	kubectlBin = os.Getenv("KUBECTL")
	helm, image, natsImage := os.Getenv("HELM"), os.Getenv("FREIGHTCAST_E2E_IMAGE"), os.Getenv("FREIGHTCAST_E2E_NATS_IMAGE")
	probeImage = os.Getenv("FREIGHTCAST_E2E_PROBE_IMAGE")
	operatorImage = image
	if kubeconfig == "" || kubectlBin == "" || helm == "" || image == "" || natsImage == "" || probeImage == "" {
		fmt.Fprintln(os.Stderr, "e2e: KUBECONFIG, KUBECTL, HELM, FREIGHTCAST_E2E_IMAGE, FREIGHTCAST_E2E_NATS_IMAGE and FREIGHTCAST_E2E_PROBE_IMAGE must be set; run `make cluster-up e2e`")
		return 2
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	cfg.QPS, cfg.Burst = 50, 100
	scheme := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = freightcastv1alpha1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	start := time.Now()
	if err := install(helm, image, natsImage); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: installing the operator:", err)
		return 1
	}
	timings.record("install: operator and NATS ready", time.Since(start))
	code := m.Run()
	if path := os.Getenv("FREIGHTCAST_E2E_REPORT"); path != "" {
		if err := timings.write(path); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: writing the report:", err)
		}
	}
	return code
}

// install installs (or upgrades) the operator and NATS with the Helm chart, as the docs tell
// platform engineers to, with the images the cluster imported, and waits for both to be ready. The
// chart's own NetworkPolicies (operator, NATS) are on: the cluster enforces them, so every test
// runs under them as well as under the ones the operator writes.
func install(helm, image, natsImage string) error {
	repo, tag, ok := splitImage(image)
	natsRepo, natsTag, natsOK := splitImage(natsImage)
	if !ok || !natsOK {
		return fmt.Errorf("images must be REPOSITORY:TAG, got %q and %q", image, natsImage)
	}
	// The namespace enforces the restricted Pod Security Standard, so a pod the chart or the
	// operator builds that breaks it fails the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(ns), ns); apierrors.IsNotFound(err) {
		ns.Labels = map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}
		if err := k8s.Create(ctx, ns); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	helmRelease = func(extra ...string) error {
		args := append([]string{"upgrade", "--install", "freightcast", filepath.Join(repoRoot, "charts", "freightcast"),
			"--namespace", systemNamespace, "--wait", "--timeout", "5m",
			"--set", "image.repository=" + repo, "--set", "image.tag=" + tag,
			"--set", "nats.image.repository=" + natsRepo, "--set", "nats.image.tag=" + natsTag,
			// The chart's 3-server NATS, as platform teams who need a server's loss survived run
			// it (pipelines then default to 3 replicas), on the default claims (10Gi, the test
			// cluster's volumes: 9 GiB of store, twelve default pipelines at once).
			"--set", "nats.replicas=3", "--set", "networkPolicy.enabled=true"}, extra...)
		helmCtx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(helmCtx, helm, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("helm upgrade --install: %v: %s", err, out)
		}
		return nil
	}
	if err := helmRelease(); err != nil {
		return err
	}
	if err := waitDeploymentAvailable(ctx, systemNamespace, managerName); err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	if err := waitStatefulSetReady(ctx, systemNamespace, "nats"); err != nil {
		return fmt.Errorf("NATS: %w", err)
	}
	return nil
}

// splitImage splits REPOSITORY:TAG (the repository may hold a registry port).
func splitImage(ref string) (repo, tag string, ok bool) {
	i := strings.LastIndex(ref, ":")
	if i <= 0 || strings.Contains(ref[i:], "/") {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// kubectl runs the cluster's own kubectl; tests use it where users would.
func kubectl(args ...string) (string, error) {
	cmd := exec.Command(kubectlBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func waitDeploymentAvailable(ctx context.Context, ns, name string) error {
	return poll(ctx, 500*time.Millisecond, func() (bool, error) {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == want &&
			d.Status.AvailableReplicas == want && d.Status.Replicas == want, nil
	})
}

func waitStatefulSetReady(ctx context.Context, ns, name string) error {
	return poll(ctx, 500*time.Millisecond, func() (bool, error) {
		s := &appsv1.StatefulSet{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		want := int32(1)
		if s.Spec.Replicas != nil {
			want = *s.Spec.Replicas
		}
		return s.Status.ReadyReplicas == want && s.Status.UpdatedReplicas == want, nil
	})
}

// poll calls check until it reports done, returns an error, or ctx ends; the last error or a
// timeout names what was awaited through ctx's cause.
func poll(ctx context.Context, every time.Duration, check func() (bool, error)) error {
	var lastErr error
	for {
		done, err := check()
		if err == nil && done {
			return nil
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// eventually fails the test when check has not succeeded within timeout, with its last error.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < timeout {
		if last = check(); last == nil {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, last)
	return 0
}

// newNamespace creates a namespace for one test and deletes it when the test ends (the cluster's
// own garbage collection then removes pipelines, models and pods).
func newNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpNamespace(t, ns.Name)
		}
		_ = k8s.Delete(context.Background(), ns)
	})
	return ns.Name
}

// dumpNamespace logs what a failed test leaves behind, so a CI log explains it.
func dumpNamespace(t testing.TB, ns string) {
	for _, args := range [][]string{
		{"get", "fp,pm,deploy,pods,svc", "-o", "wide", "-n", ns},
		{"describe", "fp,pm", "-n", ns},
		{"get", "events", "--sort-by", ".lastTimestamp", "-n", ns},
		{"logs", "-n", systemNamespace, "deployment/" + managerName, "--tail", "60"},
	} {
		out, _ := kubectl(args...)
		t.Logf("kubectl %s:\n%s", strings.Join(args, " "), out)
	}
}

// applyFile applies a YAML file into ns with kubectl, as a user would.
func applyFile(t testing.TB, ns string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if out, err := kubectl("apply", "-n", ns, "-f", p); err != nil {
			t.Fatalf("kubectl apply %s: %v: %s", p, err, out)
		}
	}
}

func condition(conds []metav1.Condition, typ string) *metav1.Condition {
	return meta.FindStatusCondition(conds, typ)
}

// waitPipelineReady waits for Ready=True at the pipeline's current generation.
func waitPipelineReady(t testing.TB, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	return eventually(t, timeout, "pipeline "+name+" Ready", func() error {
		p := &freightcastv1alpha1.FreightPipeline{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return err
		}
		c := condition(p.Status.Conditions, freightcastv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
}

func waitModelReady(t testing.TB, ns, name string, timeout time.Duration) time.Duration {
	t.Helper()
	return eventually(t, timeout, "model "+name+" Ready", func() error {
		m := &freightcastv1alpha1.PredictionModel{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, m); err != nil {
			return err
		}
		c := condition(m.Status.Conditions, freightcastv1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != m.Generation {
			return fmt.Errorf("Ready is %+v", c)
		}
		return nil
	})
}

// exposeOnLoopback gives the Service ns/name a NodePort twin and returns its loopback base URL.
// kube-proxy answers NodePorts on 127.0.0.0/8 only (hack/cluster/cluster.sh).
func exposeOnLoopback(t testing.TB, ns, name, portName string) string {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{}
	eventually(t, time.Minute, "Service "+name, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)
	})
	var target corev1.ServicePort
	for _, p := range svc.Spec.Ports {
		if p.Name == portName || portName == "" {
			target = p
			break
		}
	}
	if target.Port == 0 {
		t.Fatalf("Service %s/%s has no port %q", ns, name, portName)
	}
	twin := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-e2e"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: svc.Spec.Selector,
			Ports: []corev1.ServicePort{{Name: "e2e", Port: target.Port, Protocol: corev1.ProtocolTCP,
				TargetPort: target.TargetPort}},
		},
	}
	if target.TargetPort == (intstr.IntOrString{}) {
		twin.Spec.Ports[0].TargetPort = intstr.FromInt32(target.Port)
	}
	if err := k8s.Create(ctx, twin); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(twin), twin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), twin) })
	return fmt.Sprintf("127.0.0.1:%d", twin.Spec.Ports[0].NodePort)
}

// timingLog collects what the tests measured, for docs/benchmarks.md.
type timingLog struct {
	mu      sync.Mutex
	entries map[string][]time.Duration
}

func (l *timingLog) record(what string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries == nil {
		l.entries = map[string][]time.Duration{}
	}
	l.entries[what] = append(l.entries[what], d)
}

func (l *timingLog) write(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.entries))
	for k := range l.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type row struct {
		What    string    `json:"what"`
		Seconds []float64 `json:"seconds"`
	}
	rows := make([]row, 0, len(keys))
	for _, k := range keys {
		r := row{What: k}
		for _, d := range l.entries[k] {
			r.Seconds = append(r.Seconds, d.Round(10*time.Millisecond).Seconds())
		}
		rows = append(rows, r)
	}
	b, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ctxWithTimeout is a context that ends after d, for one bounded wait; its timer releases it.
func ctxWithTimeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	time.AfterFunc(d, cancel)
	return ctx
}
