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
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	// Transforms compute features from the raw event at ingestion (internal/transform).
	Transforms Transforms `json:"transforms,omitzero"`
	// Output configures the prediction records.
	Output Output `json:"output,omitzero"`
	// Reporting configures the reporting role; nil = no reporting.
	Reporting *Reporting `json:"reporting,omitempty"`
}

// Output configures the prediction records.
type Output struct {
	// RecordInputs keeps the features the model saw in each prediction record.
	RecordInputs bool `json:"recordInputs,omitempty"`
}

// Transforms are a pipeline's feature transforms: CEL expressions over the raw event, and the
// tables they look values up in.
type Transforms struct {
	Features []FeatureTransform `json:"features,omitempty"`
	Tables   []LookupTable      `json:"tables,omitempty"`
}

// FeatureTransform computes the model feature Name with Expression.
type FeatureTransform struct {
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

// LookupTable maps keys to numbers, written as strings (the API has no floating-point fields).
type LookupTable struct {
	Name   string            `json:"name"`
	Values map[string]string `json:"values"`
}

// Model identifies the model and how events feed it: Features, the columns of its one input
// (when empty too, the model file's metadata names them), or Inputs, the features of each of
// its inputs. A queued event carries the values of the inputs' features one input after the
// other, in the order of the model file's inputs (internal/event).
type Model struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Features []string `json:"features,omitempty"`
	Inputs   []Input  `json:"inputs,omitempty"`
	// Remote, when set, is the server the workers send each batch to instead of running the
	// model themselves (a FreightPipeline's spec.inference.scoring Remote).
	Remote *Remote `json:"remote,omitempty"`
}

// Remote is a model served over the Open Inference Protocol by another server.
type Remote struct {
	// URL is the server's root: http(s)://host:port for REST, grpc://host:port (plaintext) or
	// grpcs://host:port (TLS) for gRPC.
	URL string `json:"url"`
	// Protocol is REST or GRPC.
	Protocol string `json:"protocol"`
	// TokenFile, when set, holds the bearer token the workers present (its first line).
	TokenFile string `json:"tokenFile,omitempty"`
	// TrustFiles, for https and grpcs, are PEM files whose certificates the server's must chain
	// to: the first that exists and is not empty, read at every new connection. None means
	// the system's roots.
	TrustFiles []string `json:"trustFiles,omitempty"`
}

// The protocols of Remote.
const (
	ProtocolREST = "REST"
	ProtocolGRPC = "GRPC"
)

// Input is one model input fed by features.
type Input struct {
	// Name is the model input's name.
	Name string `json:"name"`
	// DataType is its Open Inference Protocol datatype, which ingestion checks every feature
	// value against; empty means the model file's. One of InputDataTypes.
	DataType string `json:"datatype,omitempty"`
	// Features are the event features that fill the input's columns, in order.
	Features []string `json:"features"`
}

// InputDataTypes are the datatypes an input fed by features may have: a feature is a JSON
// number, integer, boolean or string.
var InputDataTypes = []string{"FP32", "FP64", "INT64", "INT32", "BOOL", "BYTES"}

// Ingestion configures the ingestion pods.
type Ingestion struct {
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64 `json:"maxBodyBytes"`
	// TokensFile, when set, holds the accepted bearer tokens, one per line.
	TokensFile string `json:"tokensFile,omitempty"`
	// RateLimit, when set, caps events per second per token.
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	// ReportingURL, when set, is the reporting role's HTTP root (http://host:port) that
	// ingestion forwards the report API (/v1/reports...) to; unset, those paths answer 404.
	ReportingURL string `json:"reportingURL,omitempty"`
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
	errs = append(errs, c.Model.validateInputs()...)
	if r := c.Model.Remote; r != nil {
		u, err := url.Parse(r.URL)
		want := map[string][]string{ProtocolREST: {"http", "https"}, ProtocolGRPC: {"grpc", "grpcs"}}[r.Protocol]
		switch {
		case want == nil:
			errs = append(errs, fmt.Errorf("model.remote.protocol %q is not REST or GRPC", r.Protocol))
		case err != nil || u.Host == "" || !slices.Contains(want, u.Scheme):
			errs = append(errs, fmt.Errorf("model.remote.url %q is not a %s URL of a host", r.URL, strings.Join(want, " or ")))
		case len(r.TrustFiles) > 0 && u.Scheme != "https" && u.Scheme != "grpcs":
			errs = append(errs, fmt.Errorf("model.remote.trustFiles are for TLS, and model.remote.url %q is plaintext", r.URL))
		}
		for _, f := range r.TrustFiles {
			if !filepath.IsAbs(f) {
				errs = append(errs, fmt.Errorf("model.remote.trustFiles: %q is not an absolute path", f))
			}
		}
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
	if c.Reporting != nil {
		if err := c.Reporting.Validate(); err != nil {
			errs = append(errs, err)
		}
		if !c.Queue.Reporting {
			errs = append(errs, errors.New("queue.reporting must be true when reporting is set: the reporting consumer and snapshot store are provisioned with the queue"))
		}
	}
	return errors.Join(errs...)
}

// validateInputs reports what in the declared inputs no model can take.
func (m Model) validateInputs() []error {
	if len(m.Inputs) == 0 {
		return nil
	}
	var errs []error
	if len(m.Features) > 0 {
		errs = append(errs, errors.New("model.features and model.inputs are both set; give each input its features"))
	}
	inputs := map[string]bool{}
	feeds := map[string]string{}
	for i, in := range m.Inputs {
		field := fmt.Sprintf("model.inputs[%d]", i)
		switch {
		case in.Name == "":
			errs = append(errs, errors.New(field+".name is empty"))
		case inputs[in.Name]:
			errs = append(errs, fmt.Errorf("%s: input %q is declared twice", field, in.Name))
		}
		inputs[in.Name] = true
		if in.DataType != "" && !slices.Contains(InputDataTypes, in.DataType) {
			errs = append(errs, fmt.Errorf("%s.datatype %q is not one features can feed (%s)", field, in.DataType, strings.Join(InputDataTypes, ", ")))
		}
		if len(in.Features) == 0 {
			errs = append(errs, fmt.Errorf("%s.features is empty", field))
		}
		for _, f := range in.Features {
			if f == "" {
				errs = append(errs, fmt.Errorf("%s.features has an empty name", field))
			} else if other, dup := feeds[f]; dup {
				errs = append(errs, fmt.Errorf("%s: feature %q already feeds input %q", field, f, other))
			}
			feeds[f] = in.Name
		}
	}
	return errs
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
