//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"

	"github.com/freightcast/freightcast/internal/testing/clientflow"
)

// TestClientsFollowTheirOwnPredictions is issue 16's "done when" on real pods, with the
// documented API only (clientflow, the same flow as local mode's test): two clients with tokens
// of their own send raw shipments that the sample pipeline's CEL transforms turn into features,
// follow their predictions on the push feed and resume it after a disconnect through the
// Service's two ingestion pods, see a shipment the model could not score dead-lettered with its
// reason, get a 400 naming the event and the feature for a shipment a transform cannot read,
// and neither sees the other's data by id, status, batchGet or feed.
func TestClientsFollowTheirOwnPredictions(t *testing.T) {
	ns := newNamespace(t, "clients")
	tokens := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ingest-tokens"},
		Data: map[string][]byte{"tokens": []byte("client=acme token=acme-e2e-token\nclient=globex token=globex-e2e-token\n")}}
	if err := k8s.Create(context.Background(), tokens); err != nil {
		t.Fatal(err)
	}
	deployModel(t, ns)
	applyYAML(t, ns, strings.Replace(pipelineYAML("clients", 1, 1, "30s"), "  ingestion:\n",
		"  ingestion:\n    auth: {secretRef: {name: ingest-tokens}}\n", 1)+sampleTransforms(t))
	waitPipelineReady(t, ns, "clients", 3*time.Minute)
	clientflow.Run(t, clientflow.API{Base: "http://" + exposeOnLoopback(t, ns, "clients-ingest", "http"),
		Acme: "acme-e2e-token", Globex: "globex-e2e-token",
		EventsFile: filepath.Join(repoRoot, "models", "freight-delay-risk.events.json"), Wait: time.Minute})
}

// TestAnInvalidTransformIsRefusedWhenApplied: the chart's validating webhook refuses a pipeline
// whose transform does not compile at `kubectl apply`, naming the feature, the expression and the
// error, and nothing is created.
func TestAnInvalidTransformIsRefusedWhenApplied(t *testing.T) {
	ns := newNamespace(t, "webhook")
	deployModel(t, ns)
	valid := pipelineYAML("refused", 1, 1, "30s") + sampleTransforms(t)
	const distance = "    expression: geo.distanceKm(event.shipment.origin.lat, event.shipment.origin.lon, event.shipment.destination.lat, event.shipment.destination.lon)\n"
	if !strings.Contains(valid, distance) {
		t.Fatal("the sample's distance_km transform changed; update this test")
	}
	invalid := strings.Replace(valid, distance, "    expression: \"event.shipment.km *\"\n", 1)
	file := filepath.Join(t.TempDir(), "refused.yaml")
	if err := os.WriteFile(file, []byte(invalid), 0o600); err != nil {
		t.Fatal(err)
	}
	// failurePolicy Ignore admits while the webhook does not answer (the operator's certificate
	// not written yet, right after the install): wait for its first refusal, without storing.
	eventually(t, time.Minute, "the webhook refusing a dry run", func() error {
		if out, err := kubectl("apply", "--dry-run=server", "-n", ns, "-f", file); err == nil || !strings.Contains(out, `feature "distance_km"`) {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	out, err := kubectl("apply", "-n", ns, "-f", file)
	const why = `spec.features[0].expression: Invalid value: "event.shipment.km *": feature "distance_km": expression "event.shipment.km *": ERROR: <input>:1:20: Syntax error:`
	if want := `The FreightPipeline "refused" is invalid: ` + why; err == nil || !strings.Contains(out, want) {
		t.Errorf("kubectl apply of an invalid transform: %v: %s\nwant it to contain %q", err, out, want)
	}
	// The operator's code wrote that (no rule of the CRD compiles CEL against the model): the
	// API server says whose answer it is.
	p := &freightcastv1alpha1.FreightPipeline{}
	if err := yaml.UnmarshalStrict([]byte(invalid), p); err != nil {
		t.Fatal(err)
	}
	p.Namespace = ns
	err = k8s.Create(context.Background(), p)
	if want := `admission webhook "vfreightpipeline.freightcast.io" denied the request: `; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), why) {
		t.Errorf("creating it with a client: %v, want %q and %q", err, want, why)
	}
	if out, err := kubectl("get", "freightpipeline", "refused", "-n", ns); err == nil {
		t.Errorf("the refused pipeline exists: %s", out)
	}
	applyYAML(t, ns, valid)
}

// sampleTransforms is the sample pipeline's spec.features and spec.lookupTables, to append to a
// pipeline's spec.
func sampleTransforms(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "freightcast_v1alpha1_freightpipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, features, ok := strings.Cut(string(data), "\n  features:\n")
	if !ok || !strings.Contains(features, "\n  lookupTables:\n") {
		t.Fatal("the sample pipeline has no spec.features followed by spec.lookupTables")
	}
	return "  features:\n" + features
}
