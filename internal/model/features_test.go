package model

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// How a pipeline's declared features and inputs map onto the inputs of a real model: the
// PyTorch net, with an FP32 input of 8 columns and an INT64 input of one value per row.
func TestResolveInputs(t *testing.T) {
	t.Parallel()
	fx := loadFixture(t, "torch_tabular_opset17")
	m, err := Load(fx.model)
	if err != nil {
		t.Fatal(err)
	}
	numeric := []string{"distance_km", "carrier_on_time_rate", "port_congestion_index", "weather_severity", "month_sin", "month_cos", "customs_complexity", "dwell_time_hours"}
	mode := FeatureInput{Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}}
	cases := map[string]struct {
		features []string
		inputs   []FeatureInput
		want     []FeatureInput
		wantErr  string
	}{
		"both inputs, in the model's order whatever the declared one": {
			inputs: []FeatureInput{mode, {Name: "numeric", Features: numeric}},
			want:   []FeatureInput{{Name: "numeric", DataType: "FP32", Features: numeric}, mode},
		},
		"features alone for a model of two inputs": {features: numeric, wantErr: "the model has 2 inputs"},
		"features and inputs":                      {features: numeric, inputs: []FeatureInput{mode}, wantErr: "features and inputs are both declared"},
		"an input left out":                        {inputs: []FeatureInput{mode}, wantErr: `the model's input "numeric" (FP32 [-1 8]) is fed by no declared input`},
		"an unknown input": {inputs: []FeatureInput{mode, {Name: "numeric", Features: numeric}, {Name: "extra", Features: []string{"x"}}},
			wantErr: `the model has no input "extra"; its inputs are numeric, transport_mode`},
		"wrong datatype": {inputs: []FeatureInput{{Name: "numeric", Features: numeric}, {Name: "transport_mode", DataType: "BYTES", Features: []string{"mode"}}},
			wantErr: `input "transport_mode" is declared BYTES, the model file says INT64`},
		"too few columns": {inputs: []FeatureInput{mode, {Name: "numeric", Features: numeric[:7]}},
			wantErr: `the model's input "numeric" takes 8 values per event, but 7 features are declared for it`},
		"two features for a [batch] input": {inputs: []FeatureInput{{Name: "numeric", Features: numeric}, {Name: "transport_mode", Features: []string{"mode", "lane"}}},
			wantErr: `the model's input "transport_mode" has shape [-1], one value per event, but 2 features are declared for it`},
		"a feature feeding two inputs": {inputs: []FeatureInput{{Name: "numeric", Features: numeric}, {Name: "transport_mode", Features: []string{"distance_km"}}},
			wantErr: `feature "distance_km" feeds both input "numeric" and input "transport_mode"`},
		"an input twice": {inputs: []FeatureInput{mode, mode}, wantErr: `input "transport_mode" is declared twice`},
		"no features":    {inputs: []FeatureInput{{Name: "numeric"}, mode}, wantErr: `input "numeric" declares no features`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveInputs(tc.features, tc.inputs, m.Metadata())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
