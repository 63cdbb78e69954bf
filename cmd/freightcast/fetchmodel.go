package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/modelsource"
)

// modelCAFlagUsage describes --model-ca-file, which infer and ingest share.
const modelCAFlagUsage = "PEM CA certificates the --model-uri download trusts instead of the system's (a PredictionModel's spec.source.caBundle)"

// fetchModel reads or downloads the model as s says, trusting the CA certificates of caFile (when
// given) for the download. Bytes that are not the ones the digest pins are a model that cannot
// serve: the store holds other bytes than the spec names, and no restart changes that.
func fetchModel(ctx context.Context, s modelsource.Spec, caFile string) ([]byte, error) {
	if caFile != "" {
		bundle, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--model-ca-file: %w", err)
		}
		s.CABundle = bundle
	}
	data, err := modelsource.Fetch(ctx, s)
	if errors.Is(err, modelsource.ErrDigestMismatch) {
		return nil, &modelcheck.Unloadable{Kind: modelcheck.Invalid, Err: err}
	}
	return data, err
}
