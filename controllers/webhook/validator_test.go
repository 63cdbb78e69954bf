package webhook

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := "webhook-" + rand.String(6)
	if err := k8s.Create(context.Background(), namespace(ns)); err != nil {
		t.Fatal(err)
	}
	return ns
}

func pipeline(ns, name, model string, features ...freightcastv1alpha1.FeatureTransform) *freightcastv1alpha1.FreightPipeline {
	return &freightcastv1alpha1.FreightPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       freightcastv1alpha1.FreightPipelineSpec{ModelRef: freightcastv1alpha1.ModelReference{Name: model}, Features: features},
	}
}

func model(ns, name string) *freightcastv1alpha1.PredictionModel {
	return &freightcastv1alpha1.PredictionModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: freightcastv1alpha1.PredictionModelSpec{
			Source:   freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: name + "-onnx"}},
			Features: []string{"distance_km", "carrier_on_time_rate", "port_congestion_index"},
		},
	}
}

// waitForWebhook waits until the API server calls the webhook with the CertManager's CA: until
// then failurePolicy Ignore admits everything, so an invalid pipeline (dry run) is the probe.
func waitForWebhook(t *testing.T) {
	t.Helper()
	ns := newNamespace(t)
	probe := pipeline(ns, "probe", "absent", freightcastv1alpha1.FeatureTransform{Name: "x", Expression: "event.shipment.km *"})
	testenv.Eventually(t, 60*time.Second, "the API server calling the webhook", func() error {
		err := k8s.Create(context.Background(), probe.DeepCopy(), client.DryRunAll)
		if apierrors.IsInvalid(err) {
			return nil
		}
		return fmt.Errorf("dry-run create of an invalid pipeline: %v", err)
	})
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: certNamespace, Name: "freightcast-webhook-cert"}, s); err != nil {
		t.Fatal(err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: webhookConfiguration}, vwc); err != nil {
		t.Fatal(err)
	}
	if got := vwc.Webhooks[0].ClientConfig.CABundle; !bytes.Equal(got, s.Data[keyCACert]) {
		t.Fatalf("caBundle is not the CA of the Secret:\n%s\nSecret:\n%s", got, s.Data[keyCACert])
	}
}

func TestWebhookRefusesInvalidTransforms(t *testing.T) {
	waitForWebhook(t)
	ctx := context.Background()
	ns := newNamespace(t)
	if err := k8s.Create(ctx, model(ns, "delay-risk")); err != nil {
		t.Fatal(err)
	}
	valid := []freightcastv1alpha1.FeatureTransform{
		{Name: "distance_km", Expression: "geo.distanceKm(event.shipment.from.lat, event.shipment.from.lon, event.shipment.to.lat, event.shipment.to.lon)"},
		{Name: "port_congestion_index", Expression: "event.shipment.?congestion.orValue(0.0)"},
	}
	cases := map[string]struct {
		features []freightcastv1alpha1.FeatureTransform
		want     []string
	}{
		"a syntax error": {[]freightcastv1alpha1.FeatureTransform{valid[0], {Name: "port_congestion_index", Expression: "event.shipment.km *"}},
			[]string{`spec.features[1].expression: Invalid value: "event.shipment.km *"`, `feature "port_congestion_index": expression "event.shipment.km *"`, "Syntax error"}},
		"a string for a number": {[]freightcastv1alpha1.FeatureTransform{{Name: "port_congestion_index", Expression: "'high'"}},
			[]string{`spec.features[0].expression`, `feature "port_congestion_index"`, "results in string, but the feature must be a number"}},
		"a feature the model lacks": {[]freightcastv1alpha1.FeatureTransform{valid[0], {Name: "speed", Expression: "1.0"}},
			[]string{"spec.features:", `feature "speed": PredictionModel delay-risk has no such feature`}},
		"an unknown function": {[]freightcastv1alpha1.FeatureTransform{{Name: "distance_km", Expression: "geo.distanceMiles(1.0, 2.0, 3.0, 4.0)"}},
			[]string{"spec.features[0].expression", `feature "distance_km"`, "distanceMiles"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				if !apierrors.IsInvalid(err) {
					t.Fatalf("%s: err = %v, want Invalid", op, err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not say %q", op, err, w)
					}
				}
			}
			p := pipeline(ns, "created-"+rand.String(5), "delay-risk", tc.features...)
			check("create", k8s.Create(ctx, p))
			p = pipeline(ns, "updated-"+rand.String(5), "delay-risk", valid...)
			if err := k8s.Create(ctx, p); err != nil {
				t.Fatalf("a valid pipeline refused: %v", err)
			}
			p.Spec.Features = tc.features
			check("update", k8s.Update(ctx, p))
		})
	}
}

// Without its model the pipeline's transforms are checked alone (with a warning): an invalid
// expression is refused, a name the model may lack is not.
func TestWebhookChecksAPipelineWithoutItsModelAlone(t *testing.T) {
	waitForWebhook(t)
	ctx := context.Background()
	ns := newNamespace(t)
	ok := pipeline(ns, "ok", "absent", freightcastv1alpha1.FeatureTransform{Name: "speed", Expression: "double(size(event.id))"})
	if err := k8s.Create(ctx, ok); err != nil {
		t.Fatalf("refused without its model: %v", err)
	}
	bad := pipeline(ns, "bad", "absent", freightcastv1alpha1.FeatureTransform{Name: "speed", Expression: "lookup('nope', event.id, 0.0)"})
	err := k8s.Create(ctx, bad)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.features[0].expression") || !strings.Contains(err.Error(), `feature "speed"`) {
		t.Fatalf("err = %v, want the feature's expression refused", err)
	}
}

// The reporting dimensions are checked with or without features, and alongside them: each
// problem at the field it is about.
func TestWebhookRefusesInvalidReportingDimensions(t *testing.T) {
	waitForWebhook(t)
	ctx := context.Background()
	ns := newNamespace(t)
	withReporting := func(name string, dims ...freightcastv1alpha1.ReportDimension) *freightcastv1alpha1.FreightPipeline {
		p := pipeline(ns, name, "absent")
		p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{Dimensions: dims, Outputs: []freightcastv1alpha1.ReportOutput{{Name: "delay_risk"}}}
		return p
	}
	lane := freightcastv1alpha1.ReportDimension{Name: "lane", Expression: "event.shipment.lane"}
	if err := k8s.Create(ctx, withReporting("ok", lane)); err != nil {
		t.Fatalf("a valid dimension refused: %v", err)
	}
	bad := withReporting("bad", lane, freightcastv1alpha1.ReportDimension{Name: "carrier", Expression: "event.shipment.carrier +"})
	err := k8s.Create(ctx, bad)
	for _, w := range []string{`spec.reporting.dimensions[1].expression: Invalid value: "event.shipment.carrier +"`, `dimension "carrier"`, "Syntax error"} {
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to say %q", err, w)
		}
	}
	both := withReporting("both", freightcastv1alpha1.ReportDimension{Name: "legs", Expression: "[1]"})
	both.Spec.Features = []freightcastv1alpha1.FeatureTransform{{Name: "speed", Expression: "lookup('nope', event.id, 0.0)"}}
	err = k8s.Create(ctx, both)
	for _, w := range []string{"spec.features[0].expression", "spec.reporting.dimensions[0].expression", `dimension "legs"`} {
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to say %q", err, w)
		}
	}
}
