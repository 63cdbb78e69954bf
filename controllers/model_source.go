package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// errSourceNotFound is a model source the operator cannot resolve yet (missing ConfigMap or key).
// Waiting fixes it: the ConfigMap watch wakes the model up when it appears.
type errSourceNotFound struct{ msg string }

func (e *errSourceNotFound) Error() string { return e.msg }

// errSourceInvalid is a model source that exists but can never serve as it is.
type errSourceInvalid struct{ msg string }

func (e *errSourceInvalid) Error() string { return e.msg }

// configMapModelDigest returns "sha256:<hex>" of the model file in cm at key, looking in
// binaryData first (the place for a binary ONNX file), then data.
func configMapModelDigest(cm *corev1.ConfigMap, key string) (string, error) {
	var content []byte
	if b, ok := cm.BinaryData[key]; ok {
		content = b
	} else if s, ok := cm.Data[key]; ok {
		content = []byte(s)
	} else {
		return "", &errSourceNotFound{msg: fmt.Sprintf("ConfigMap %s has no key %q in binaryData or data", cm.Name, key)}
	}
	if len(content) == 0 {
		return "", &errSourceInvalid{msg: fmt.Sprintf("ConfigMap %s key %q is empty", cm.Name, key)}
	}
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// configMapKey is the source's key with the API default applied, for objects built in Go that
// never went through the API server's defaulting.
func configMapKey(src *freightcastv1alpha1.ConfigMapModelSource) string {
	if src.Key == "" {
		return "model.onnx"
	}
	return src.Key
}

// modelMount is how a data-plane pod gets the model file: volumes for the pod, mounts for the
// container, and the `freightcast infer`/`ingest` flags that point at it.
type modelMount struct {
	volumes []*corev1ac.VolumeApplyConfiguration
	mounts  []*corev1ac.VolumeMountApplyConfiguration
	args    []string
}

// specRevision is the model revision the spec asks for; digest is the resolved file's ("" when
// unknown).
func specRevision(model *freightcastv1alpha1.PredictionModel, digest string) freightcastv1alpha1.ModelRevision {
	return freightcastv1alpha1.ModelRevision{Source: *model.Spec.Source.DeepCopy(), Version: modelVersion(model), Digest: digest}
}

// rolledBackTo returns the revision the serving pods were rolled back to, when the model's
// status says that the rollout of its current generation failed; nil otherwise. The model
// reconciler clears status.failedRollout as soon as it tries a new revision, so the generation
// alone tells whether the record still applies.
func rolledBackTo(model *freightcastv1alpha1.PredictionModel) *freightcastv1alpha1.ModelRevision {
	st := model.Status
	if st.FailedRollout == nil || st.LastGoodRevision == nil || st.FailedRollout.Generation != model.Generation {
		return nil
	}
	return st.LastGoodRevision
}

// ServedRevision is the model revision a model's pods run, or are rolling out: the spec's,
// unless a failed rollout of the spec was rolled back to the last good revision. Pipelines run
// their inference pools on it, so that they follow what the model actually serves.
func ServedRevision(model *freightcastv1alpha1.PredictionModel) freightcastv1alpha1.ModelRevision {
	if rev := rolledBackTo(model); rev != nil {
		return *rev
	}
	return specRevision(model, model.Status.ModelDigest)
}

// modelMountFor builds the modelMount of revision rev of a PredictionModel. The model's own flags
// (name, version, features) come with it, so every pod that runs the model runs it the same way.
func modelMountFor(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision) modelMount {
	spec := model.Spec
	var m modelMount
	src := rev.Source
	switch {
	case src.ConfigMap != nil:
		key := configMapKey(src.ConfigMap)
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelVolumeName).
			WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(src.ConfigMap.Name).
				WithItems(corev1ac.KeyToPath().WithKey(key).WithPath("model.onnx"))))
		m.mounts = append(m.mounts, corev1ac.VolumeMount().WithName(modelVolumeName).WithMountPath(modelMountDir).WithReadOnly(true))
		m.args = append(m.args, "--model-file="+path.Join(modelMountDir, "model.onnx"))
	case src.PersistentVolumeClaim != nil:
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelVolumeName).
			WithPersistentVolumeClaim(corev1ac.PersistentVolumeClaimVolumeSource().
				WithClaimName(src.PersistentVolumeClaim.ClaimName).WithReadOnly(true)))
		m.mounts = append(m.mounts, corev1ac.VolumeMount().WithName(modelVolumeName).WithMountPath(modelMountDir).WithReadOnly(true))
		m.args = append(m.args, "--model-file="+path.Join(modelMountDir, path.Clean(src.PersistentVolumeClaim.Path)))
	case src.URI != "":
		m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelCacheName).
			WithEmptyDir(corev1ac.EmptyDirVolumeSource()))
		m.mounts = append(m.mounts, corev1ac.VolumeMount().WithName(modelCacheName).WithMountPath(modelCacheDir))
		m.args = append(m.args, "--model-uri="+src.URI, "--model-sha256="+src.SHA256, "--model-cache-dir="+modelCacheDir)
	}
	version := rev.Version
	if version == "" {
		version = modelVersion(model)
	}
	m.args = append(m.args, "--model-name="+model.Name, "--model-version="+version)
	if len(spec.Features) > 0 {
		m.args = append(m.args, "--features="+strings.Join(spec.Features, ","))
	}
	return m
}

func modelVersion(model *freightcastv1alpha1.PredictionModel) string {
	if model.Spec.Version == "" {
		return "1"
	}
	return model.Spec.Version
}
