//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

// TestTokensAndTLSOnRealPods turns on bearer tokens and TLS for a running model and for a
// pipeline's ingestion: the pods must mount the Secrets, pass their probes over HTTPS, and refuse
// clients without a token, exactly as docs/security.md promises.
func TestTokensAndTLSOnRealPods(t *testing.T) {
	ns := newNamespace(t, "security")
	ctx := context.Background()
	ca := testcerts.NewCA(t)
	secret := func(name string, typ corev1.SecretType, data map[string][]byte) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: data}
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	tlsSecret := func(name, service string) {
		cert, key := ca.Issue(t, service, service, service+"."+ns+".svc")
		secret(name, corev1.SecretTypeTLS, map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key})
	}
	secret("model-tokens", corev1.SecretTypeOpaque, map[string][]byte{"tokens": []byte("# OIP clients\nmodel-token-1\n")})
	secret("ingest-tokens", corev1.SecretTypeOpaque, map[string][]byte{"tokens": []byte("ingest-token-1\n")})
	tlsSecret("model-tls", "freight-delay-risk-predictor")
	tlsSecret("ingest-tls", "secure-ingest")

	// Tokens and TLS switched on for a model that already serves: it rolls, as a user would do it.
	deployModel(t, ns)
	m := &freightcastv1alpha1.PredictionModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "freight-delay-risk"}}
	patch := []byte(`{"spec":{"auth":{"secretRef":{"name":"model-tokens"}},"tls":{"secretRef":{"name":"model-tls"}}}}`)
	if err := k8s.Patch(ctx, m, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	timings.record("security: model Ready again after turning on tokens and TLS", waitModelReady(t, ns, "freight-delay-risk", 3*time.Minute))
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(m), m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Status.Endpoint, "https://") {
		t.Errorf("status.endpoint %q is not https", m.Status.Endpoint)
	}

	applyYAML(t, ns, strings.Replace(pipelineYAML("secure", 1, 2, "30s"), "  ingestion:\n",
		"  ingestion:\n    auth: {secretRef: {name: ingest-tokens}}\n    tls: {secretRef: {name: ingest-tls}}\n", 1))
	waitPipelineReady(t, ns, "secure", 3*time.Minute)

	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	call := func(method, url, token string, body []byte) (int, string, error) {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpsClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	expect := func(what string, want int, method, url, token string, body []byte) {
		t.Helper()
		eventually(t, 30*time.Second, what, func() error {
			code, msg, err := call(method, url, token, body)
			if err != nil {
				return err
			}
			if code != want {
				return fmt.Errorf("status %d, want %d: %s", code, want, msg)
			}
			return nil
		})
	}

	model := "https://" + exposeOnLoopback(t, ns, "freight-delay-risk-predictor", "http")
	request, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	infer := model + "/v2/models/freight-delay-risk/infer"
	expect("model health is open for probes", http.StatusOK, http.MethodGet, model+"/v2/health/ready", "", nil)
	expect("model infer without a token", http.StatusUnauthorized, http.MethodPost, infer, "", request)
	expect("model infer with a wrong token", http.StatusUnauthorized, http.MethodPost, infer, "ingest-token-1", request)
	expect("model infer with its token", http.StatusOK, http.MethodPost, infer, "model-token-1", request)

	ingest := "https://" + exposeOnLoopback(t, ns, "secure-ingest", "http")
	events := []byte(`{"id":"secure-1","features":{"distance_km":800,"mode_ocean":0,"mode_air":0,"mode_rail":0,"mode_road":1,"carrier_on_time_rate":0.9,"port_congestion_index":0.2,"weather_severity":0.1,"month_sin":0.5,"month_cos":0.8,"customs_complexity":0.1,"dwell_time_hours":10}}`)
	expect("events without a token", http.StatusUnauthorized, http.MethodPost, ingest+"/v1/events", "", events)
	expect("events with the token", http.StatusAccepted, http.MethodPost, ingest+"/v1/events", "ingest-token-1", events)
	expect("prediction read with the token", http.StatusOK, http.MethodGet, ingest+"/v1/predictions/secure-1", "ingest-token-1", nil)

	// Plain HTTP to a TLS port is refused, not served in clear.
	plain := strings.Replace(ingest, "https://", "http://", 1)
	if code, _, err := call(http.MethodGet, plain+"/v1/predictions/secure-1", "ingest-token-1", nil); err == nil && code == http.StatusOK {
		t.Errorf("a prediction was served over plain HTTP")
	}
}
