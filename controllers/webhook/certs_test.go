package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Pure unit tests of the CertManager on a fake client and a fake clock; the envtest suite
// checks the same code against a real API server calling the webhook.

func webhookConfig() *admissionregistrationv1.ValidatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "vwc"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "vfreightpipeline.freightcast.io", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "ops", Name: "fc-webhook"}}}},
	}
}

func newTestCertManager(c client.Client, clk *testingclock.FakeClock) *CertManager {
	m := NewCertManager(Options{Namespace: "ops", Service: "fc-webhook", SecretName: "fc-cert", WebhookConfiguration: "vwc", CertLifetime: 90 * 24 * time.Hour}, clk)
	m.Client = c
	return m
}

func readSecret(t *testing.T, c client.Client) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ops", Name: "fc-cert"}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func caBundleOf(t *testing.T, c client.Client) []byte {
	t.Helper()
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "vwc"}, v); err != nil {
		t.Fatal(err)
	}
	return v.Webhooks[0].ClientConfig.CABundle
}

// served is the certificate the manager serves, verified against the Secret's CA bundle for the
// Service's name at the clock's time.
func served(t *testing.T, m *CertManager, caBundle []byte) *x509.Certificate {
	t.Helper()
	pair, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caBundle)
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "fc-webhook.ops.svc", Roots: roots, CurrentTime: m.Clock.Now()}); err != nil {
		t.Fatalf("the served certificate does not verify against the CA bundle: %v", err)
	}
	return cert
}

func TestCertManagerGeneratesStoresAndWritesTheCABundle(t *testing.T) {
	c := fake.NewClientBuilder().WithObjects(webhookConfig()).Build()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	m := newTestCertManager(c, clk)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{}); err == nil {
		t.Fatal("a certificate is served before any was made")
	}
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := readSecret(t, c)
	if s.Type != corev1.SecretTypeTLS {
		t.Errorf("Secret type %q", s.Type)
	}
	cert := served(t, m, s.Data[keyCACert])
	for _, want := range []string{"fc-webhook.ops.svc", "fc-webhook.ops.svc.cluster.local"} {
		if err := cert.VerifyHostname(want); err != nil {
			t.Errorf("certificate not for %s: %v", want, err)
		}
	}
	if got := cert.NotAfter.Sub(clk.Now()); got != 90*24*time.Hour {
		t.Errorf("valid for %s after now", got)
	}
	if got := caBundleOf(t, c); !bytes.Equal(got, s.Data[keyCACert]) {
		t.Errorf("caBundle %q is not the Secret's CA", got)
	}
}

// A restarted replica, or a second one, serves the pair already in the Secret.
func TestCertManagerReusesTheSecret(t *testing.T) {
	c := fake.NewClientBuilder().WithObjects(webhookConfig()).Build()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	first := newTestCertManager(c, clk)
	if err := first.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := readSecret(t, c)
	clk.Step(30 * 24 * time.Hour) // two thirds of the lifetime left
	second := newTestCertManager(c, clk)
	if err := second.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	after := readSecret(t, c)
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the Secret was rewritten (%s → %s)", before.ResourceVersion, after.ResourceVersion)
	}
	a, _ := first.GetCertificate(nil)
	b, _ := second.GetCertificate(nil)
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Error("the two replicas serve different certificates")
	}
}

// Two replicas starting together: the one that loses the create reads the winner's pair back.
func TestCertManagerLosesTheCreateRace(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	var winner *CertManager
	var c client.Client
	c = fake.NewClientBuilder().WithObjects(webhookConfig()).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if winner == nil {
				winner = newTestCertManager(cl, clk)
				if err := winner.Ensure(ctx); err != nil {
					t.Fatal(err)
				}
			}
			return cl.Create(ctx, obj, opts...)
		},
	}).Build()
	loser := newTestCertManager(c, clk)
	if err := loser.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ := winner.GetCertificate(nil)
	b, _ := loser.GetCertificate(nil)
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Error("the loser serves a certificate of its own")
	}
}

// Less than a third of the lifetime left: a new CA and certificate; the bundle keeps the old CA
// so that a replica still serving the old certificate stays trusted until its next check.
func TestCertManagerRotatesNearExpiry(t *testing.T) {
	c := fake.NewClientBuilder().WithObjects(webhookConfig()).Build()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	m := newTestCertManager(c, clk)
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := served(t, m, readSecret(t, c).Data[keyCACert])
	stale := newTestCertManager(c, clk) // a replica that has not checked since
	if err := stale.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}

	clk.Step(61 * 24 * time.Hour) // 29 of 90 days left
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := readSecret(t, c)
	renewed := served(t, m, s.Data[keyCACert])
	if bytes.Equal(renewed.Raw, old.Raw) {
		t.Fatal("not rotated with 29 of 90 days left")
	}
	if got := renewed.NotAfter.Sub(clk.Now()); got != 90*24*time.Hour {
		t.Errorf("the new certificate is valid for %s after now", got)
	}
	if n := strings.Count(string(s.Data[keyCACert]), "BEGIN CERTIFICATE"); n != 2 {
		t.Errorf("the CA bundle holds %d certificates, want the new CA and the old", n)
	}
	served(t, stale, s.Data[keyCACert]) // the old certificate still verifies
	if got := caBundleOf(t, c); !bytes.Equal(got, s.Data[keyCACert]) {
		t.Error("caBundle not updated after the rotation")
	}
}

// The timer: Start checks at once and again every CheckInterval, rotating once it is due.
func TestCertManagerChecksOnATimer(t *testing.T) {
	c := fake.NewClientBuilder().WithObjects(webhookConfig()).Build()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	m := newTestCertManager(c, clk)
	m.CheckInterval = 24 * time.Hour
	startCertManager(t, context.Background(), m)
	waitServed := func(not []byte) []byte {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if pair, err := m.GetCertificate(nil); err == nil && !bytes.Equal(pair.Certificate[0], not) {
				return pair.Certificate[0]
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("no new certificate served")
		return nil
	}
	first := waitServed(nil)
	for day := 1; day <= 61; day++ {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(24 * time.Hour)
	}
	waitServed(first)
}

// An operator started with --webhook but without the webhook configuration says so once, not
// as an error every check; it looks for the configuration every minute and, once it is
// installed, writes its caBundle and says that once too.
func TestCertManagerSaysOnceThatTheConfigurationIsMissing(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	clk := testingclock.NewFakeClock(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	m := newTestCertManager(c, clk)
	out := &logLines{}
	logs := out.lines
	startCertManager(t, ctrl.LoggerInto(context.Background(), zap.New(zap.WriteTo(out))), m)
	tick := func(d time.Duration) {
		for !clk.HasWaiters() {
			time.Sleep(time.Millisecond)
		}
		clk.Step(d)
	}
	for range 5 {
		tick(m.CheckInterval)
	}
	for !clk.HasWaiters() {
		time.Sleep(time.Millisecond)
	}
	if _, err := m.GetCertificate(nil); err != nil {
		t.Errorf("no certificate served while the configuration is missing: %v", err)
	}
	got := logs()
	if len(got) != 1 || !strings.Contains(got[0], `"msg":"ValidatingWebhookConfiguration vwc is not installed: the API server does not call this webhook`) ||
		!strings.Contains(got[0], "--webhook=false") || strings.Contains(got[0], `"error"`) {
		t.Fatalf("after six checks without the configuration, the log holds %q; want one message saying so", got)
	}

	if err := c.Create(context.Background(), webhookConfig()); err != nil {
		t.Fatal(err)
	}
	tick(time.Minute) // not the hour of CheckInterval
	deadline := time.Now().Add(30 * time.Second)
	for len(caBundleOf(t, c)) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if bundle := caBundleOf(t, c); !bytes.Equal(bundle, readSecret(t, c).Data["ca.crt"]) {
		t.Fatalf("the configuration's caBundle a minute after it appeared: %q", bundle)
	}
	for len(logs()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs(); len(got) != 2 || !strings.Contains(got[1], "ValidatingWebhookConfiguration vwc is installed: its caBundle is written") {
		t.Errorf("once installed, the log holds %q", got)
	}
}

// logLines keeps what a logger writes, a line each.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.DeleteFunc(strings.Split(l.buf.String(), "\n"), func(s string) bool { return s == "" })
}

// startCertManager runs m.Start until the test ends.
func startCertManager(t *testing.T, ctx context.Context, m *CertManager) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- m.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
