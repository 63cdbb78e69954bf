package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	apiruntime "k8s.io/apimachinery/pkg/runtime"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// The suite runs one kube-apiserver and etcd with the ValidatingWebhookConfiguration of
// config/webhook installed (envtest points it at a local port instead of the Service), and one
// manager serving the webhook there with the certificate its CertManager makes: the API server
// reaches the validator over TLS, trusting only the CA the CertManager wrote into caBundle.

var (
	testConfig *rest.Config
	k8s        client.Client
	scheme     = apiruntime.NewScheme()
	// certNamespace holds the manager's certificate Secret.
	certNamespace = "freightcast-system"
)

const webhookConfiguration = "freightcast-validating-webhook"

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(freightcastv1alpha1.AddToScheme(scheme))
	os.Exit(runSuite(m))
}

func configWebhookDir() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..", "config", "webhook", "manifests.yaml")
}

func runSuite(m *testing.M) int {
	assets, err := testenv.Assets()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{testenv.CRDDirectory()},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{configWebhookDir()}, LocalServingHost: "127.0.0.1"},
	}
	testConfig, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (assets %s): %v\n", assets, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	if k8s, err = client.New(testConfig, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := startManager(ctx, env.WebhookInstallOptions); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// startManager runs a manager as `freightcast manager` does with the webhook on, serving on
// envtest's host and port.
func startManager(ctx context.Context, w envtest.WebhookInstallOptions) error {
	if err := k8s.Create(ctx, namespace(certNamespace)); err != nil {
		return err
	}
	o := Options{Host: w.LocalServingHost, Port: w.LocalServingPort, Namespace: certNamespace, Service: "freightcast-webhook",
		SecretName: "freightcast-webhook-cert", WebhookConfiguration: webhookConfiguration, ExtraNames: []string{w.LocalServingHost}}
	certs := NewCertManager(o, clock.RealClock{})
	mgr, err := ctrl.NewManager(testConfig, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: NewServer(o, certs)})
	if err != nil {
		return err
	}
	if err := Setup(mgr, certs); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return nil
}
