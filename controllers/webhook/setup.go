package webhook

import (
	"cmp"
	"crypto/tls"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Options say where the webhook is served and where its certificate lives.
type Options struct {
	// Port is the webhook server's (9443 by convention); Host its address, empty for all.
	Host string
	Port int
	// Namespace is the operator's: the Secret and the Service are there.
	Namespace string
	// Service is the webhook Service's name; SecretName the certificate's Secret;
	// WebhookConfiguration the ValidatingWebhookConfiguration whose caBundle is written.
	Service, SecretName, WebhookConfiguration string
	// ExtraNames are further DNS names or IP addresses for the certificate (tests serve on
	// 127.0.0.1).
	ExtraNames []string
	// CertLifetime and CertCheckInterval; zero means DefaultCertLifetime and
	// DefaultCertCheckInterval.
	CertLifetime, CertCheckInterval time.Duration
}

// NewServer is the manager's webhook server (ctrl.Options.WebhookServer), serving whatever
// certificate certs holds at each handshake, so a rotation needs no restart.
func NewServer(o Options, certs *CertManager) ctrlwebhook.Server {
	return ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.Host, Port: o.Port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.GetCertificate = certs.GetCertificate }}})
}

// NewCertManager is the certificate manager for o; Setup gives it its client.
func NewCertManager(o Options, clk clock.Clock) *CertManager {
	return &CertManager{
		Clock:                clk,
		Namespace:            o.Namespace,
		SecretName:           o.SecretName,
		DNSNames:             append(ServiceDNSNames(o.Service, o.Namespace), o.ExtraNames...),
		WebhookConfiguration: o.WebhookConfiguration,
		Lifetime:             cmp.Or(o.CertLifetime, DefaultCertLifetime),
		CheckInterval:        cmp.Or(o.CertCheckInterval, DefaultCertCheckInterval),
	}
}

// Setup registers the FreightPipeline validator on mgr's webhook server (built by NewServer
// with certs) and runs certs on every replica.
func Setup(mgr ctrl.Manager, certs *CertManager) error {
	// An uncached client: a cached one would watch every Secret of the cluster.
	c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), HTTPClient: mgr.GetHTTPClient()})
	if err != nil {
		return fmt.Errorf("webhook certificates: %w", err)
	}
	certs.Client = c
	if err := mgr.Add(certs); err != nil {
		return err
	}
	return (&PipelineValidator{Models: mgr.GetAPIReader()}).SetupWithManager(mgr)
}
