package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// The suite runs one real kube-apiserver and etcd (envtest) for the whole package. Each test
// starts its own manager and works in its own namespace. envtest has no controller-manager and
// no kubelet: no pod ever runs and Deployments never get a status unless a test helper writes one.

var (
	testEnv    *envtest.Environment
	testConfig *rest.Config
	k8s        client.Client // the test's own client: it is not counted as the operator's writes
	scheme     = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(freightcastv1alpha1.AddToScheme(scheme))
	utilruntime.Must(gatewayv1.Install(scheme))
	level := zapcore.ErrorLevel
	if os.Getenv("FREIGHTCAST_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level), zap.StacktraceLevel(zapcore.PanicLevel)))
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	assets, err := testenv.Assets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{testenv.CRDDirectory()},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	testConfig, err = testEnv.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (assets %s): %v\n", assets, err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	k8s, err = client.New(testConfig, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// writeCounter counts the API writes a manager sends, events aside: the events broadcaster writes
// them on its own goroutine, after the write they tell of, so they settle on no barrier a test can
// wait for; an event only follows a write the counter sees (a status, a scale, a child).
type writeCounter struct {
	mu     sync.Mutex
	writes []write
}

type write struct {
	at   time.Time
	what string
}

func (w *writeCounter) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if strings.HasPrefix(req.URL.Path, "/apis/events.k8s.io/") {
				break
			}
			w.mu.Lock()
			w.writes = append(w.writes, write{at: time.Now(), what: req.Method + " " + req.URL.Path})
			w.mu.Unlock()
		}
		return next.RoundTrip(req)
	})
}

func (w *writeCounter) snapshot() []write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]write(nil), w.writes...)
}

// since is the writes sent at t or later.
func (w *writeCounter) since(t time.Time) []string {
	var out []string
	for _, wr := range w.snapshot() {
		if !wr.at.Before(t) {
			out = append(out, wr.what)
		}
	}
	return out
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// operator is a running manager with both controllers, as `freightcast manager` runs them.
type operator struct {
	writes *writeCounter
	// cache is the manager's.
	cache cache.Cache
}

const testImage = "freightcast.test/freightcast:test"

// startOperator starts the manager for one test, watching only the test's namespace (envtest
// has no namespace controller, so earlier tests' objects stay; they must not be this manager's
// business), and stops it when the test ends. tune adjusts the operator's options.
func startOperator(t testing.TB, defaultNATSURL, namespace string, tune ...func(*Options)) *operator {
	t.Helper()
	return startOperatorWithClock(t, clock.RealClock{}, defaultNATSURL, namespace, tune...)
}

// startOperatorWithClock is startOperator with the operator's clock: a fake one lets a test step
// time past a threshold, or hold it still to show that something does not happen before it.
func startOperatorWithClock(t testing.TB, clk clock.PassiveClock, defaultNATSURL, namespace string, tune ...func(*Options)) *operator {
	t.Helper()
	op := &operator{writes: &writeCounter{}}
	cfg := rest.CopyConfig(testConfig)
	cfg.WrapTransport = op.writes.RoundTrip
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{namespace: {}}},
		NewCache:               NewCache,
		// Every test starts its own manager with the same controller names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	op.cache = mgr.GetCache()
	connector := queue.NewConnector("freightcast-test-operator")
	t.Cleanup(connector.Close)
	opts := Options{Image: testImage, ImagePullPolicy: corev1.PullIfNotPresent, DefaultNATSURL: defaultNATSURL}
	for _, f := range tune {
		f(&opts)
	}
	if err := SetupWithManager(mgr, opts, connector, clk); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return op
}

// newNamespace creates a namespace for one test. envtest runs no namespace controller, so the
// namespace's objects are not removed with it; names are unique per test instead.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + fmt.Sprintf("-%d", time.Now().UnixNano()%100000)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	return name
}

// markDeploymentRolledOut stands in for the Deployment controller and the kubelet, which envtest
// does not run: it writes the status they would write once every pod of the current template
// runs and passes readiness (for our pods: the model loaded).
func markDeploymentRolledOut(t testing.TB, ns, name string) {
	t.Helper()
	setDeploymentStatus(t, ns, name, "rolled out", func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           n,
			UpdatedReplicas:    n,
			ReadyReplicas:      n,
			AvailableReplicas:  n,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
			},
		}
	})
}

// setDeploymentStatus writes the status that status returns for the Deployment as it is now and
// its spec.replicas (1 when unset), retrying on conflicts and cache lag.
func setDeploymentStatus(t testing.TB, ns, name, what string, status func(d *appsv1.Deployment, replicas int32) appsv1.DeploymentStatus) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, "Deployment "+name+" "+what, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = status(d, n)
		return k8s.Status().Update(ctx, d)
	})
}
