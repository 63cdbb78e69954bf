package v1alpha1_test

import (
	"testing"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// torchInputs are the PyTorch tabular net's inputs as a spec declares them: FP32 columns and an
// INT64 transport mode.
func torchInputs() []freightcastv1alpha1.InputSpec {
	return []freightcastv1alpha1.InputSpec{
		{Name: "numeric", DataType: "FP32", Shape: []int64{-1, 3}, Features: []string{"distance_km", "carrier_on_time_rate", "port_congestion_index"}},
		{Name: "transport_mode", DataType: "INT64", Shape: []int64{-1}, Features: []string{"mode"}},
	}
}

// The real API server accepts a model whose features feed several inputs.
func TestModelWithFeaturesPerInputIsAccepted(t *testing.T) {
	ns := newNamespace(t)
	m := newModel(ns, "torch", "torch-onnx")
	m.Spec.Features = nil
	m.Spec.Inputs = torchInputs()
	m.Spec.Inputs[0].DataType = "" // the model file's
	mustCreate(t, m)
	// Inputs without features only declare the tensors, beside spec.features.
	plain := newModel(ns, "declared", "m-onnx")
	plain.Spec.Inputs = []freightcastv1alpha1.InputSpec{{Name: "features", DataType: "FP32", Shape: []int64{-1, 3}}}
	mustCreate(t, plain)
}

// What cannot work is refused by the API server, with a message naming it.
func TestInputFeaturesThatCannotWorkAreRejected(t *testing.T) {
	ns := newNamespace(t)
	cases := map[string]struct {
		mutate        func([]freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec
		keepFeatures  bool
		wantInMessage []string
	}{
		"spec.features beside inputs[].features": {
			mutate:        func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec { return in[:1] },
			keepFeatures:  true,
			wantInMessage: []string{"spec.features and inputs[].features cannot both be set"},
		},
		"a feature feeding two inputs": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].Features = []string{"distance_km"}
				return in
			},
			wantInMessage: []string{"a feature may feed only one input"},
		},
		"an input without features beside one with": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].Features = nil
				return in
			},
			wantInMessage: []string{"every input must"},
		},
		"a datatype features cannot feed": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].DataType = "FP16"
				return in
			},
			wantInMessage: []string{"spec.inputs[1]", "features feed only FP32, FP64, INT64, INT32, BOOL and BYTES inputs"},
		},
		"an unknown datatype": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].DataType = "STRING"
				return in
			},
			wantInMessage: []string{"spec.inputs[1].datatype", "BYTES"},
		},
		"more features than the shape's columns": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[0].Shape = []int64{-1, 2}
				return in
			},
			wantInMessage: []string{"spec.inputs[0]", "features fill one row per event"},
		},
		"two features for a [batch] input": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].Features = []string{"mode", "lane"}
				return in
			},
			wantInMessage: []string{"spec.inputs[1]", "features fill one row per event"},
		},
		"a fixed batch": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[0].Shape = []int64{1, 3}
				return in
			},
			wantInMessage: []string{"spec.inputs[0]", "features fill one row per event"},
		},
		"an image-shaped input": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[0].Shape = []int64{-1, 3, 1}
				return in
			},
			wantInMessage: []string{"spec.inputs[0]", "features fill one row per event"},
		},
		"a feature twice in one input": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[0].Features = []string{"distance_km", "distance_km", "x"}
				return in
			},
			wantInMessage: []string{"spec.inputs[0].features[1]", "Duplicate"},
		},
		"a feature name with a space": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].Features = []string{"transport mode"}
				return in
			},
			wantInMessage: []string{"spec.inputs[1].features[0]"},
		},
		"an input named twice": {
			mutate: func(in []freightcastv1alpha1.InputSpec) []freightcastv1alpha1.InputSpec {
				in[1].Name = "numeric"
				return in
			},
			wantInMessage: []string{"spec.inputs[1]", "Duplicate"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := newModel(ns, "m", "m-onnx")
			if !tc.keepFeatures {
				m.Spec.Features = nil
			}
			m.Spec.Inputs = tc.mutate(torchInputs())
			assertRejected(t, m, tc.wantInMessage)
		})
	}
}
