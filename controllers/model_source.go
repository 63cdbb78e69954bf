package controllers

import (
	"errors"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// errSourceNotFound is a model source the operator cannot resolve yet (missing ConfigMap or key).
// Waiting fixes it: the ConfigMap watch wakes the model up when it appears.
type errSourceNotFound struct{ msg string }

func (e *errSourceNotFound) Error() string { return e.msg }

// errSourceInvalid is a model source that exists but can never serve as it is.
type errSourceInvalid struct{ msg string }

func (e *errSourceInvalid) Error() string { return e.msg }

// configMapModelDigest returns "sha256:<hex>" of the model file in cm at key.
func configMapModelDigest(cm *corev1.ConfigMap, key string) (string, error) {
	content, err := spec.ConfigMapModel(cm, key)
	switch {
	case errors.Is(err, spec.ErrModelKeyMissing):
		return "", &errSourceNotFound{msg: err.Error()}
	case err != nil:
		return "", &errSourceInvalid{msg: err.Error()}
	}
	return contentDigest(content), nil
}

// modelMount is how a data-plane pod gets the model file: volumes for the pod, mounts for the
// container, and the `freightcast infer`/`ingest` flags that point at it.
type modelMount struct {
	volumes []*corev1ac.VolumeApplyConfiguration
	mounts  []*corev1ac.VolumeMountApplyConfiguration
	args    []string
}

// modelMountFor builds the modelMount of revision rev of a PredictionModel. The model's own flags
// (name, version, features) come with it, so every pod that runs the model runs it the same way.
func modelMountFor(model *freightcastv1alpha1.PredictionModel, rev freightcastv1alpha1.ModelRevision) modelMount {
	var m modelMount
	src := rev.Source
	switch {
	case src.ConfigMap != nil:
		key := spec.ConfigMapKey(src.ConfigMap)
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
	srv := spec.ModelServer(model, rev)
	m.args = append(m.args, "--model-name="+srv.Name, "--model-version="+srv.Version)
	if len(srv.Features) > 0 {
		m.args = append(m.args, "--features="+strings.Join(srv.Features, ","))
	}
	return m
}
