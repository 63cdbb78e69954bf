package spec

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/modelsource"
)

// The ways a ConfigMap fails to hold a model file; ConfigMapModel's errors wrap one of them.
var (
	// ErrModelKeyMissing: the ConfigMap has no such key. Waiting may fix it.
	ErrModelKeyMissing = errors.New("model key missing")
	// ErrModelEmpty: the key holds nothing, which no model file is.
	ErrModelEmpty = errors.New("model file empty")
)

type modelFileError struct {
	kind error
	msg  string
}

func (e *modelFileError) Error() string { return e.msg }
func (e *modelFileError) Unwrap() error { return e.kind }

// ConfigMapModel returns the model file that ConfigMap cm holds at key: binaryData first (the
// place for a binary ONNX file), then data. The operator hashes it, local mode loads it.
func ConfigMapModel(cm *corev1.ConfigMap, key string) ([]byte, error) {
	var content []byte
	if b, ok := cm.BinaryData[key]; ok {
		content = b
	} else if s, ok := cm.Data[key]; ok {
		content = []byte(s)
	} else {
		return nil, &modelFileError{ErrModelKeyMissing, fmt.Sprintf("ConfigMap %s has no key %q in binaryData or data", cm.Name, key)}
	}
	if len(content) == 0 {
		return nil, &modelFileError{ErrModelEmpty, fmt.Sprintf("ConfigMap %s key %q is empty", cm.Name, key)}
	}
	return content, nil
}

// ErrCABundleMissing: the CA bundle's ConfigMap key does not exist. Waiting may fix it.
var ErrCABundleMissing = errors.New("CA bundle key missing")

// CABundleKey is the CA bundle's ConfigMap key with the API default applied.
func CABundleKey(ca *freightcastv1alpha1.CABundleSource) string {
	if ca.ConfigMap.Key == "" {
		return "ca.crt"
	}
	return ca.ConfigMap.Key
}

// CABundle returns the PEM CA bundle that ConfigMap cm holds for spec.source.caBundle ca (data
// first, where PEM text belongs, then binaryData), checked to hold valid certificates only. The
// operator checks it before a pod downloads with it, local mode downloads with it.
func CABundle(cm *corev1.ConfigMap, ca *freightcastv1alpha1.CABundleSource) ([]byte, error) {
	key := CABundleKey(ca)
	var bundle []byte
	if s, ok := cm.Data[key]; ok {
		bundle = []byte(s)
	} else if b, ok := cm.BinaryData[key]; ok {
		bundle = b
	} else {
		return nil, &modelFileError{ErrCABundleMissing, fmt.Sprintf("spec.source.caBundle: ConfigMap %s has no key %q", cm.Name, key)}
	}
	if _, err := modelsource.ParseCABundle(bundle); err != nil {
		return nil, fmt.Errorf("spec.source.caBundle: ConfigMap %s key %q: %w", cm.Name, key, err)
	}
	return bundle, nil
}

// ConfigMapKey is the source's key with the API default applied.
func ConfigMapKey(src *freightcastv1alpha1.ConfigMapModelSource) string {
	if src.Key == "" {
		return "model.onnx"
	}
	return src.Key
}

// ModelVersion is the version the model's spec names, with the API default applied.
func ModelVersion(model *freightcastv1alpha1.PredictionModel) string {
	if model.Spec.Version == "" {
		return "1"
	}
	return model.Spec.Version
}

// SpecRevision is the model revision the spec asks for; digest is the resolved file's ("" when
// unknown).
func SpecRevision(model *freightcastv1alpha1.PredictionModel, digest string) freightcastv1alpha1.ModelRevision {
	return freightcastv1alpha1.ModelRevision{Source: *model.Spec.Source.DeepCopy(), Version: ModelVersion(model), Digest: digest}
}

// RolledBackTo returns the revision the serving pods were rolled back to, when the model's
// status says that the rollout of its current generation failed; nil otherwise. The model
// reconciler clears status.failedRollout as soon as it tries a new revision, so the generation
// alone tells whether the record still applies.
func RolledBackTo(model *freightcastv1alpha1.PredictionModel) *freightcastv1alpha1.ModelRevision {
	st := model.Status
	if st.FailedRollout == nil || st.LastGoodRevision == nil || st.FailedRollout.Generation != model.Generation {
		return nil
	}
	return st.LastGoodRevision
}

// ServedRevision is the model revision a model's pods run, or are rolling out: the spec's,
// unless a failed rollout of the spec was rolled back to the last good revision. Pipelines run
// their pods on it, so that they follow what the model actually serves.
func ServedRevision(model *freightcastv1alpha1.PredictionModel) freightcastv1alpha1.ModelRevision {
	if rev := RolledBackTo(model); rev != nil {
		return *rev
	}
	return SpecRevision(model, model.Status.ModelDigest)
}

func servedVersion(model *freightcastv1alpha1.PredictionModel) string {
	if v := ServedRevision(model).Version; v != "" {
		return v
	}
	return ModelVersion(model)
}

// Server is how every process that runs a model serves one revision of it: the OIP servers of a
// PredictionModel, a pipeline's workers and ingestion (for the feature names), and local mode.
type Server struct {
	// Name and Version are what the Open Inference Protocol and the predictions report.
	Name, Version string
	// Features name the model's input columns; empty: the model file's metadata names them.
	Features []string
	// Inputs are the input tensors the spec declares, which every pod that loads the model
	// checks the file against (name, datatype, shape, and whether the features fit).
	Inputs []freightcastv1alpha1.InputSpec
	// MaxBatchSize and MaxBatchDelay bound the server's micro-batches.
	MaxBatchSize  int
	MaxBatchDelay time.Duration
}

// ModelServer is how revision rev of model is served.
func ModelServer(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision) Server {
	m := model.DeepCopy()
	m.Default()
	version := rev.Version
	if version == "" {
		version = ModelVersion(m)
	}
	return Server{
		Name:          m.Name,
		Version:       version,
		Features:      m.Spec.Features,
		Inputs:        m.Spec.Inputs,
		MaxBatchSize:  int(m.Spec.Batching.MaxBatchSize),
		MaxBatchDelay: m.Spec.Batching.MaxQueueDelay.Duration,
	}
}
