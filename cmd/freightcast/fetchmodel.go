package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

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

// runFetchModel is `freightcast fetch-model`: the init container that places a downloaded model
// file where another OIP runtime (a PredictionModel's spec.runtime) expects it. The file is
// written whole or not at all, and only once its digest matched.
func runFetchModel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fetch-model", flag.ContinueOnError)
	var uri, sha, caFile, out string
	fs.StringVar(&uri, "model-uri", "", "https:// URI of the model (needs --model-sha256)")
	fs.StringVar(&sha, "model-sha256", "", "hex SHA-256 the model must have")
	fs.StringVar(&caFile, "model-ca-file", "", modelCAFlagUsage)
	fs.StringVar(&out, "out", "", "the file to write the model to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	case out == "":
		return errors.New("--out is required")
	case uri == "":
		return errors.New("--model-uri is required")
	}
	data, err := fetchModel(ctx, modelsource.Spec{URI: uri, SHA256: sha}, caFile)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	// Readable by a runtime that runs as another user than this container.
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
