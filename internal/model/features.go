package model

import (
	"errors"
	"fmt"
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
