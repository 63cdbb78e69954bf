package controllers

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

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

// sourceReads remembers, per PredictionModel, what was last read of its source ConfigMap. The
// operator watches those ConfigMaps as metadata only (see NewCache): their content, up to 1 MiB,
// is read through the API reader when the resourceVersion the watch reports is not the one read
// last, and is not kept.
type sourceReads struct {
	apiReader client.Reader

	mu   sync.Mutex
	last map[types.NamespacedName]sourceRead
}

// sourceRead is what a read of one version of a source ConfigMap gave.
type sourceRead struct {
	uid             types.UID
	resourceVersion string
	key             string
	digest          string
	// sourceErr is an *errSourceNotFound or *errSourceInvalid when the ConfigMap holds no model.
	sourceErr error
}

// configMapDigest resolves model's source ConfigMap, whose metadata the cache holds as cm: the
// digest of the model file at key, or why there is none (sourceErr). err is an API error.
func (r *sourceReads) configMapDigest(ctx context.Context, model types.NamespacedName, cm *metav1.PartialObjectMetadata, key string) (digest string, sourceErr, err error) {
	r.mu.Lock()
	last, ok := r.last[model]
	r.mu.Unlock()
	if ok && last.uid == cm.UID && last.resourceVersion == cm.ResourceVersion && last.key == key {
		return last.digest, last.sourceErr, nil
	}
	full := &corev1.ConfigMap{}
	switch err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(cm), full); {
	case apierrors.IsNotFound(err):
		return "", &errSourceNotFound{msg: fmt.Sprintf("ConfigMap %s not found in namespace %s", cm.Name, cm.Namespace)}, nil
	case err != nil:
		return "", nil, fmt.Errorf("reading model ConfigMap %s: %w", cm.Name, err)
	}
	read := sourceRead{uid: full.UID, resourceVersion: full.ResourceVersion, key: key}
	read.digest, read.sourceErr = configMapModelDigest(full, key)
	r.mu.Lock()
	if r.last == nil {
		r.last = map[types.NamespacedName]sourceRead{}
	}
	r.last[model] = read
	r.mu.Unlock()
	return read.digest, read.sourceErr, nil
}

// forget drops what was read for a model that is gone.
func (r *sourceReads) forget(model types.NamespacedName) {
	r.mu.Lock()
	delete(r.last, model)
	r.mu.Unlock()
}
