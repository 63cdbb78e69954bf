package model

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ResolveFeatures decides a model's feature names, in input-column order, from the names declared
// outside the model file (a PredictionModel's spec.features, a --features flag) and the model's own
// metadata. Declared names win only when they agree with the model: a model that declares its
// names must be given the same ones in the same order; one that does not must at least take as
// many values per row as names are declared. Every component that maps features by name (the
// ingestion API, the workers, local mode) resolves them this one way.
func ResolveFeatures(declared []string, meta *Metadata) ([]string, error) {
	if len(meta.Inputs) != 1 {
		return nil, fmt.Errorf("the model has %d inputs; features map into a single input tensor", len(meta.Inputs))
	}
	width := meta.Inputs[0].RowSize()
	have := meta.Features
	switch {
	case len(declared) == 0 && len(have) == 0:
		return nil, errors.New("the model file declares no feature names (metadata " + FeaturesKey + ") and none are given: set spec.features")
	case len(declared) == 0:
		return have, nil
	case len(have) == 0:
		if len(declared) != width {
			return nil, fmt.Errorf("%d feature names are declared, but the model takes %d values per row", len(declared), width)
		}
		return declared, nil
	case len(declared) != len(have):
		return nil, fmt.Errorf("%d feature names are declared, the model declares %d: %s", len(declared), len(have), strings.Join(have, ","))
	}
	for i := range declared {
		if declared[i] != have[i] {
			return nil, fmt.Errorf("declared feature %d is %q, the model declares %q there (model order: %s)", i, declared[i], have[i], strings.Join(have, ","))
		}
	}
	return declared, nil
}

// FeatureInput is one model input fed from an event's features: the input's name, its Open
// Inference Protocol datatype, and the features that fill its columns, in order.
type FeatureInput struct {
	Name     string   `json:"name"`
	DataType string   `json:"datatype,omitempty"`
	Features []string `json:"features"`
}

// FeatureDataTypes are the input datatypes an event's features can feed: a feature is a JSON
// number, integer, boolean or string.
var FeatureDataTypes = []string{"FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES"}

// ResolveInputs decides how a model's inputs take an event's features, from what a pipeline
// declares: either features alone (the names of one input's columns, ResolveFeatures) or inputs,
// each naming a model input, optionally its datatype, and its features. It returns one entry per
// model input, in the model's input order (the order of the features in a queued event), with
// the datatype the model file gives. Every model input must be fed; an input's datatype, when
// declared, must be the model's; its shape must be [batch] (one feature) or [batch, k] (k
// features, or any number when k is symbolic); a feature name may feed one input only.
func ResolveInputs(features []string, inputs []FeatureInput, meta *Metadata) ([]FeatureInput, error) {
	if len(inputs) == 0 {
		names, err := ResolveFeatures(features, meta)
		if err != nil {
			return nil, err
		}
		in := meta.Inputs[0]
		if err := checkFeatureInput(in, len(names)); err != nil {
			return nil, err
		}
		return []FeatureInput{{Name: in.Name, DataType: in.DataType, Features: names}}, nil
	}
	if len(features) > 0 {
		return nil, errors.New("features and inputs are both declared; declare the features of each input in inputs")
	}
	byName := make(map[string]FeatureInput, len(inputs))
	owner := map[string]string{}
	for _, in := range inputs {
		if _, dup := byName[in.Name]; dup {
			return nil, fmt.Errorf("input %q is declared twice", in.Name)
		}
		if len(in.Features) == 0 {
			return nil, fmt.Errorf("input %q declares no features", in.Name)
		}
		for _, f := range in.Features {
			if f == "" {
				return nil, fmt.Errorf("input %q has a feature with an empty name", in.Name)
			}
			if other, dup := owner[f]; dup {
				return nil, fmt.Errorf("feature %q feeds both input %q and input %q", f, other, in.Name)
			}
			owner[f] = in.Name
		}
		byName[in.Name] = in
	}
	out := make([]FeatureInput, 0, len(meta.Inputs))
	for _, mi := range meta.Inputs {
		in, ok := byName[mi.Name]
		if !ok {
			return nil, fmt.Errorf("the model's input %q (%s %v) is fed by no declared input", mi.Name, mi.DataType, mi.Shape)
		}
		delete(byName, mi.Name)
		if in.DataType != "" && in.DataType != mi.DataType {
			return nil, fmt.Errorf("input %q is declared %s, the model file says %s", mi.Name, in.DataType, mi.DataType)
		}
		if err := checkFeatureInput(mi, len(in.Features)); err != nil {
			return nil, err
		}
		out = append(out, FeatureInput{Name: mi.Name, DataType: mi.DataType, Features: in.Features})
	}
	for name := range byName {
		names := make([]string, len(meta.Inputs))
		for i, mi := range meta.Inputs {
			names[i] = mi.Name
		}
		return nil, fmt.Errorf("the model has no input %q; its inputs are %s", name, strings.Join(names, ", "))
	}
	return out, nil
}

// checkFeatureInput says why n features cannot fill a row of model input in, nil when they can.
func checkFeatureInput(in TensorInfo, n int) error {
	if !slices.Contains(FeatureDataTypes, in.DataType) || in.Keys != nil {
		return fmt.Errorf("the model's input %q is %s, which features cannot feed (they feed %s)", in.Name, in.Type, strings.Join(FeatureDataTypes, ", "))
	}
	switch {
	case len(in.Shape) == 0 || len(in.Shape) > 2:
		return fmt.Errorf("the model's input %q has shape %v; features fill [batch] or [batch, features]", in.Name, in.Shape)
	case in.Shape[0] >= 0:
		return fmt.Errorf("the model's input %q has a fixed batch of %d; features need a dynamic batch axis", in.Name, in.Shape[0])
	case len(in.Shape) == 1 && n != 1:
		return fmt.Errorf("the model's input %q has shape %v, one value per event, but %d features are declared for it", in.Name, in.Shape, n)
	case len(in.Shape) == 2 && in.Shape[1] >= 0 && int64(n) != in.Shape[1]:
		return fmt.Errorf("the model's input %q takes %d values per event, but %d features are declared for it", in.Name, in.Shape[1], n)
	}
	return nil
}
