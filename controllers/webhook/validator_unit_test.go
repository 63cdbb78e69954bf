package webhook

import (
	"context"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// Pure unit tests of the validator on a fake client; validator_test.go has the API server call it.

// A pipeline whose model is absent is checked alone, with a warning that says so; a valid one
// against its model has none.
func TestValidatorWarnsWithoutTheModel(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(model("ns", "delay-risk")).Build()
	v := &PipelineValidator{Models: c}
	f := freightcastv1alpha1.FeatureTransform{Name: "distance_km", Expression: "1.0"}
	warnings, err := v.ValidateCreate(context.Background(), pipeline("ns", "p", "absent", f))
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "PredictionModel absent not found in namespace ns") {
		t.Errorf("without the model: warnings %q, err %v", warnings, err)
	}
	warnings, err = v.ValidateUpdate(context.Background(), nil, pipeline("ns", "p", "delay-risk", f))
	if err != nil || len(warnings) != 0 {
		t.Errorf("with the model: warnings %q, err %v", warnings, err)
	}
	if warnings, err := v.ValidateDelete(context.Background(), pipeline("ns", "p", "absent", freightcastv1alpha1.FeatureTransform{Name: "x", Expression: "*"})); err != nil || warnings != nil {
		t.Errorf("delete: warnings %q, err %v", warnings, err)
	}
}

func TestFieldErrorsPlaceEachProblem(t *testing.T) {
	p := pipeline("ns", "p", "delay-risk",
		freightcastv1alpha1.FeatureTransform{Name: "distance_km", Expression: "1.0"},
		freightcastv1alpha1.FeatureTransform{Name: "carrier_on_time_rate", Expression: "'x'"},
		freightcastv1alpha1.FeatureTransform{Name: "speed", Expression: "1.0"})
	p.Spec.LookupTables = []freightcastv1alpha1.LookupTable{{Name: "rates", Values: map[string]string{"a": "many"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(model("ns", "delay-risk")).Build()
	_, err := (&PipelineValidator{Models: c}).ValidateCreate(context.Background(), p)
	var got []string
	for _, line := range strings.Split(strings.TrimPrefix(err.Error(), `FreightPipeline.freightcast.io "p" is invalid: [`), ", spec.") {
		got = append(got, strings.TrimPrefix(strings.SplitN(line, ":", 2)[0], "spec."))
	}
	slices.Sort(got)
	if want := []string{"features", "features[1].expression", "lookupTables"}; !slices.Equal(got, want) {
		t.Errorf("fields %q, want %q, in %v", got, want, err)
	}
}
