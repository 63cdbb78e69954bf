// Package pipelineconfig is the contract between the operator and a pipeline's data-plane pods:
// the operator renders a Config into the pipeline's ConfigMap, and `freightcast ingest` and the
// inference workers load it. Local mode builds the same Config from the same YAML. It knows nothing
// of Kubernetes, so the data plane can import it.
package pipelineconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/freightcast/freightcast/internal/queue"
)

// FileName is the key of the rendered Config in the pipeline's ConfigMap.
const FileName = "pipeline.json"

// Config is everything a pipeline's pods need to know about it.
type Config struct {
	// Namespace and Name identify the pipeline, for logs and metrics.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// NATSURL is the server holding the pipeline's queue.
	NATSURL string `json:"natsURL"`
	// NATSCredentials are the files, mounted from Secrets the operator names but never reads,
	// that the pods authenticate to NATS and verify its certificate with. Empty: anonymous.
	NATSCredentials queue.Credentials `json:"natsCredentials,omitzero"`
	// Queue names and bounds the pipeline's streams, consumer and bucket.
	Queue queue.Spec `json:"queue"`
	// Model is the model the pipeline scores events with.
	Model Model `json:"model"`
	// Ingestion configures the HTTP ingestion pods.
	Ingestion Ingestion `json:"ingestion"`
	// Inference configures the workers.
	Inference Inference `json:"inference"`
}

// Model identifies the model. Features, when empty, come from the model file's metadata.
type Model struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Features []string `json:"features,omitempty"`
}

// Ingestion configures the ingestion pods.
type Ingestion struct {
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// TokensFile, when set, holds the accepted bearer tokens, one per line.
	TokensFile string `json:"tokensFile,omitempty"`
	// RateLimit, when set, caps events per second per token.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// RateLimit is a token bucket.
type RateLimit struct {
	EventsPerSecond int32 `json:"eventsPerSecond"`
	Burst           int32 `json:"burst"`
}

// Inference configures the workers.
type Inference struct {
	// BatchSize is the most events fetched and scored at once.
	BatchSize int `json:"batchSize"`
}

// Validate reports every field that a pod could not run with.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("natsURL is empty"))
	}
	if err := c.Queue.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.NATSCredentials.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("natsCredentials: %w", err))
	}
	if c.Model.Name == "" {
		errs = append(errs, errors.New("model.name is empty"))
	}
	if c.Ingestion.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("ingestion.maxBodyBytes must be positive, got %d", c.Ingestion.MaxBodyBytes))
	}
	if rl := c.Ingestion.RateLimit; rl != nil && (rl.EventsPerSecond <= 0 || rl.Burst < rl.EventsPerSecond) {
		errs = append(errs, fmt.Errorf("ingestion.rateLimit needs eventsPerSecond > 0 and burst >= eventsPerSecond, got %+v", *rl))
	}
	if c.Inference.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("inference.batchSize must be positive, got %d", c.Inference.BatchSize))
	}
	return errors.Join(errs...)
}

// Marshal renders c as the ConfigMap's content: indented, so that `kubectl get cm -o yaml`
// reads well, and stable, so that an unchanged pipeline renders the same bytes.
func (c Config) Marshal() ([]byte, error) {
	return json.MarshalIndent(c, "", "  ")
}

// Parse decodes and validates a Config, refusing unknown fields so that a skewed operator and
// data plane fail loudly instead of ignoring settings.
func Parse(data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("pipeline config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("pipeline config: %w", err)
	}
	return c, nil
}

// Load reads and parses the Config at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("pipeline config: %w", err)
	}
	return Parse(data)
}
