// Command envtest-shell runs the operator against a real kube-apiserver and etcd (envtest) and an
// in-process NATS, and prints a KUBECONFIG, so that a developer can try kubectl against the
// operator without a cluster:
//
//	go run ./hack/envtest-shell &
//	KUBECONFIG=/tmp/freightcast-envtest.kubeconfig kubectl apply -f config/samples/
//
// There is no kubelet: pods never run, so Deployments stay unavailable.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/controllers"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "/tmp/freightcast-envtest.kubeconfig", "where to write the kubeconfig")
	flag.Parse()
	if err := run(*kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "envtest-shell:", err)
		os.Exit(1)
	}
}

func run(kubeconfigPath string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrl.SetLogger(zap.New())
	assets, err := testenv.Assets()
	if err != nil {
		return err
	}
	env := &envtest.Environment{CRDDirectoryPaths: []string{testenv.CRDDirectory()}, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return err
	}
	defer env.Stop()
	user, err := env.AddUser(envtest.User{Name: "developer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfigPath, kc, 0o600); err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "freightcast-envtest-nats-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("NATS did not start")
	}

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = freightcastv1alpha1.AddToScheme(scheme)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	connector := queue.NewConnector("envtest-shell")
	defer connector.Close()
	if err := controllers.SetupWithManager(mgr, controllers.Options{Image: "freightcast:dev", ImagePullPolicy: corev1.PullIfNotPresent,
		DefaultNATSURL: ns.ClientURL()}, connector, clock.RealClock{}); err != nil {
		return err
	}
	fmt.Printf("API server %s, NATS %s\nexport KUBECONFIG=%s\n", cfg.Host, ns.ClientURL(), kubeconfigPath)
	return mgr.Start(ctx)
}
