package webhook

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The Secret's keys: the CA bundle the API server trusts (the current CA, and the previous one
// while a certificate it signed may still be served), the CA's key, and the serving pair.
const (
	keyCACert  = "ca.crt"
	keyCAKey   = "ca.key"
	keyTLSCert = corev1.TLSCertKey
	keyTLSKey  = corev1.TLSPrivateKeyKey
)

// CertFieldOwner is the field manager of the caBundle the operator writes into the
// ValidatingWebhookConfiguration; the rest of that object belongs to whoever installed it.
const CertFieldOwner = "freightcast-webhook-certs"

// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;patch

// CertManager makes and rotates the webhook's serving certificate, without cert-manager: a
// self-signed CA and a certificate for the webhook Service's DNS names, kept in a Secret in the
// operator's namespace so that every replica, and a restarted one, serves the same pair; the CA
// goes into the ValidatingWebhookConfiguration's caBundle. Every replica runs it (the webhook is
// served by all of them, leader or not); whichever finds the Secret absent or near expiry writes
// it, the others lose the create or update race and read the winner's back.
type CertManager struct {
	// Client reads and writes the Secret and the webhook configuration. Uncached: the manager's
	// cache must not hold every Secret of the cluster.
	Client client.Client
	Clock  clock.Clock
	// Namespace and SecretName locate the Secret.
	Namespace, SecretName string
	// DNSNames are the names (and IP addresses) the API server reaches the webhook by, for
	// the Service svc.ns: svc.ns.svc and svc.ns.svc.cluster.local.
	DNSNames []string
	// WebhookConfiguration is the ValidatingWebhookConfiguration whose caBundle is written.
	WebhookConfiguration string
	// Lifetime is how long a certificate (and its CA) is valid; a third of it before the end a
	// new pair is made. CheckInterval is how often that is checked.
	Lifetime, CheckInterval time.Duration

	current atomic.Pointer[tls.Certificate]
}

// Defaults: a year's certificate, checked hourly, rotated four months before it expires.
const (
	DefaultCertLifetime      = 365 * 24 * time.Hour
	DefaultCertCheckInterval = time.Hour
)

// ServiceDNSNames are the names the API server may use for Service svc in namespace ns.
func ServiceDNSNames(svc, ns string) []string {
	return []string{svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"}
}

// GetCertificate serves the current certificate (tls.Config.GetCertificate).
func (m *CertManager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.current.Load()
	if c == nil {
		return nil, errors.New("the webhook's serving certificate is not ready yet")
	}
	return c, nil
}

// NeedLeaderElection is false: every replica serves the webhook, so every replica needs the
// certificate.
func (m *CertManager) NeedLeaderElection() bool { return false }

// configurationPoll is how often the manager looks for a webhook configuration that is not
// installed: once installed, its caBundle is empty, so the API server's calls fail (and, the
// failure policy being Ignore, admit everything) until the manager writes it.
const configurationPoll = time.Minute

// errNoConfiguration: the ValidatingWebhookConfiguration does not exist.
var errNoConfiguration = errors.New("not installed")

// Start keeps the certificate current until ctx ends: once now, then every CheckInterval.
// A failed check is logged and retried on the next tick (sooner while no certificate is served).
// A webhook configuration that is not installed (an operator started with --webhook but
// without the manifest) is no error to repeat every check: it is said once, looked for every
// configurationPoll, and said again when it appears.
func (m *CertManager) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certs")
	missing := false
	for {
		wait := m.CheckInterval
		err := m.Ensure(ctx)
		switch {
		case errors.Is(err, errNoConfiguration):
			if !missing {
				log.Info(fmt.Sprintf("ValidatingWebhookConfiguration %s is not installed: the API server does not call this webhook, so invalid feature "+
					"transforms are refused by the FreightPipeline's FeaturesValid condition only, not at kubectl apply. Install it with the operator "+
					"(the chart's webhook.enabled, kustomize's config/webhook) or run with --webhook=false; once it exists its caBundle is written "+
					"within %s", m.WebhookConfiguration, configurationPoll))
			}
			missing, wait = true, min(wait, configurationPoll)
		case err != nil:
			log.Error(err, "keeping the webhook's serving certificate current")
		case missing:
			log.Info(fmt.Sprintf("ValidatingWebhookConfiguration %s is installed: its caBundle is written", m.WebhookConfiguration))
			missing = false
		}
		if err != nil && m.current.Load() == nil {
			wait = min(wait, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.Clock.After(wait):
		}
	}
}

// Ensure makes the Secret hold a pair valid for more than a third of its lifetime (reading it
// back, or writing a new one), serves it, and writes its CA bundle into the webhook
// configuration.
func (m *CertManager) Ensure(ctx context.Context) error {
	b, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(b.cert, b.key)
	if err != nil {
		return fmt.Errorf("Secret %s/%s: %w", m.Namespace, m.SecretName, err)
	}
	m.current.Store(&pair)
	return m.writeCABundle(ctx, b.caBundle)
}

// bundle is what the Secret holds.
type bundle struct {
	caBundle, caKey, cert, key []byte
}

func (m *CertManager) ensureSecret(ctx context.Context) (bundle, error) {
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.SecretName}
	for range 3 {
		s := &corev1.Secret{}
		err := m.Client.Get(ctx, key, s)
		switch {
		case apierrors.IsNotFound(err):
			b, err := m.issue(nil)
			if err != nil {
				return bundle{}, err
			}
			s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.SecretName,
				Labels: map[string]string{"app.kubernetes.io/name": "freightcast", "app.kubernetes.io/component": "webhook"}},
				Type: corev1.SecretTypeTLS}
			b.into(s)
			switch err := m.Client.Create(ctx, s); {
			case apierrors.IsAlreadyExists(err):
				continue // another replica was first: use its pair
			case err != nil:
				return bundle{}, fmt.Errorf("creating Secret %s: %w", key, err)
			}
			return b, nil
		case err != nil:
			return bundle{}, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		b := bundleOf(s)
		if m.fresh(b) {
			return b, nil
		}
		nb, err := m.issue(&b)
		if err != nil {
			return bundle{}, err
		}
		nb.into(s)
		switch err := m.Client.Update(ctx, s); {
		case apierrors.IsConflict(err):
			continue // another replica rotated it first
		case err != nil:
			return bundle{}, fmt.Errorf("rotating Secret %s: %w", key, err)
		}
		return nb, nil
	}
	return bundle{}, fmt.Errorf("Secret %s keeps changing under the webhook's certificate manager", key)
}

func bundleOf(s *corev1.Secret) bundle {
	return bundle{caBundle: s.Data[keyCACert], caKey: s.Data[keyCAKey], cert: s.Data[keyTLSCert], key: s.Data[keyTLSKey]}
}

func (b bundle) into(s *corev1.Secret) {
	s.Data = map[string][]byte{keyCACert: b.caBundle, keyCAKey: b.caKey, keyTLSCert: b.cert, keyTLSKey: b.key}
}

// fresh reports whether b's serving certificate is for m's names, signed by a CA of its bundle
// and valid for more than a third of its lifetime; anything unreadable is not fresh.
func (m *CertManager) fresh(b bundle) bool {
	if _, err := tls.X509KeyPair(b.cert, b.key); err != nil {
		return false
	}
	cert, err := parseCert(b.cert)
	if err != nil {
		return false
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.caBundle) {
		return false
	}
	now := m.Clock.Now()
	for _, name := range m.DNSNames {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			return false
		}
	}
	lifetime := cert.NotAfter.Sub(cert.NotBefore)
	return cert.NotAfter.Sub(now) > lifetime/3
}

// issue makes a new CA and a serving certificate it signs. The bundle keeps previous's CA while
// it is still valid, so that a replica serving the previous certificate until its next check is
// still trusted.
func (m *CertManager) issue(previous *bundle) (bundle, error) {
	now := m.Clock.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(m.Lifetime) // an hour of clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return bundle{}, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "freightcast-webhook-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		return bundle{}, fmt.Errorf("signing the webhook CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return bundle{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return bundle{}, err
	}
	template := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: m.DNSNames[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range m.DNSNames {
		if ip := net.ParseIP(n); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, key.Public(), caKey)
	if err != nil {
		return bundle{}, fmt.Errorf("signing the webhook's serving certificate: %w", err)
	}
	caKeyDER, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return bundle{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return bundle{}, err
	}
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if previous != nil {
		if old, err := parseCert(previous.caBundle); err == nil && old.IsCA && now.Before(old.NotAfter) {
			caBundle = append(caBundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Raw})...)
		}
	}
	return bundle{
		caBundle: caBundle,
		caKey:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: caKeyDER}),
		cert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// parseCert parses the first certificate of PEM data.
func parseCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// writeCABundle applies caBundle to every webhook of the configuration, as CertFieldOwner. The
// configuration is installed with the operator (kustomize, Helm); until it exists there is
// nothing to write (errNoConfiguration), and the next check tries again.
func (m *CertManager) writeCABundle(ctx context.Context, caBundle []byte) error {
	live := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := m.Client.Get(ctx, client.ObjectKey{Name: m.WebhookConfiguration}, live); apierrors.IsNotFound(err) {
		return fmt.Errorf("ValidatingWebhookConfiguration %s: %w", m.WebhookConfiguration, errNoConfiguration)
	} else if err != nil {
		return fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", m.WebhookConfiguration, err)
	}
	apply := admissionac.ValidatingWebhookConfiguration(m.WebhookConfiguration)
	changed := false
	for _, w := range live.Webhooks {
		changed = changed || !bytes.Equal(w.ClientConfig.CABundle, caBundle)
		apply.WithWebhooks(admissionac.ValidatingWebhook().WithName(w.Name).
			WithClientConfig(admissionac.WebhookClientConfig().WithCABundle(caBundle...)))
	}
	if !changed {
		return nil
	}
	if err := m.Client.Apply(ctx, apply, client.FieldOwner(CertFieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("writing the CA into ValidatingWebhookConfiguration %s: %w", m.WebhookConfiguration, err)
	}
	return nil
}
