package controllers

import (
	"context"
	"encoding/json"
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
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/spec"
)

// errSourceNotFound is a model source the operator cannot resolve yet (missing ConfigMap or key).
// Waiting fixes it: the ConfigMap watch wakes the model up when it appears.
type errSourceNotFound struct{ msg string }

func (e *errSourceNotFound) Error() string { return e.msg }

// errSourceInvalid is a model source that exists but can never serve as it is.
type errSourceInvalid struct{ msg string }

func (e *errSourceInvalid) Error() string { return e.msg }

// configMapModelDigest returns the model file in cm at key and its "sha256:<hex>".
func configMapModelDigest(cm *corev1.ConfigMap, key string) ([]byte, string, error) {
	content, err := spec.ConfigMapModel(cm, key)
	switch {
	case errors.Is(err, spec.ErrModelKeyMissing):
		return nil, "", &errSourceNotFound{msg: err.Error()}
	case err != nil:
		return nil, "", &errSourceInvalid{msg: err.Error()}
	}
	return content, contentDigest(content), nil
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
		if ca := src.CABundle; ca != nil {
			m.volumes = append(m.volumes, corev1ac.Volume().WithName(modelCAVolumeName).
				WithConfigMap(corev1ac.ConfigMapVolumeSource().WithName(ca.ConfigMap.Name).
					WithItems(corev1ac.KeyToPath().WithKey(spec.CABundleKey(ca)).WithPath("ca.crt"))))
			m.mounts = append(m.mounts, corev1ac.VolumeMount().WithName(modelCAVolumeName).WithMountPath(modelCADir).WithReadOnly(true))
			m.args = append(m.args, "--model-ca-file="+path.Join(modelCADir, "ca.crt"))
		}
	}
	srv := spec.ModelServer(model, rev)
	m.args = append(m.args, "--model-name="+srv.Name, "--model-version="+srv.Version)
	if len(srv.Features) > 0 {
		m.args = append(m.args, "--features="+strings.Join(srv.Features, ","))
	}
	if len(srv.Inputs) > 0 {
		// JSON, not a list with separators: ONNX names may hold any character (tf2onnx's "x:0").
		inputs, _ := json.Marshal(srv.Inputs) // a slice of plain structs always marshals
		m.args = append(m.args, "--inputs="+string(inputs))
	}
	return m
}

// sourceReads remembers, per PredictionModel, what was last read of its source ConfigMap. The
// operator watches those ConfigMaps as metadata only (see NewCache): their content, up to 1 MiB,
// is read through the API reader when the resourceVersion the watch reports is not the one read
// last, checked with the runtime the pods use (checker), and not kept.
type sourceReads struct {
	apiReader client.Reader
	// checker loads a model file as the serving pods will; nil checks nothing.
	checker *modelcheck.Checker

	mu   sync.Mutex
	last map[types.NamespacedName]sourceRead
	// lastCA is, per model, what the last read of its CA bundle's ConfigMap gave.
	lastCA map[types.NamespacedName]caBundleRead
}

// caBundleRead is what a read of one version of a CA bundle's ConfigMap gave.
type caBundleRead struct {
	uid             types.UID
	resourceVersion string
	key             string
	// sourceErr is an *errSourceNotFound or *errSourceInvalid when the key holds no valid bundle.
	sourceErr error
}

// sourceRead is what a read of one version of a source ConfigMap gave.
type sourceRead struct {
	uid             types.UID
	resourceVersion string
	key             string
	// features are the served feature names the file was checked against.
	features string
	digest   string
	// sourceErr is an *errSourceNotFound or *errSourceInvalid when the ConfigMap holds no model.
	sourceErr error
	// unloadable is why the model file cannot serve, nil when it can or when the check gave
	// no verdict (then the pods decide).
	unloadable *modelcheck.Unloadable
	// checked is false when the check gave no verdict: the next reconcile tries again.
	checked bool
	// skipCheck: the file was only hashed, for another runtime (spec.runtime).
	skipCheck bool
}

// configMapModel resolves model's source ConfigMap, whose metadata the cache holds as cm: the
// digest of the model file at key and whether it serves with features, or why there is no
// model (read.sourceErr). err is an API error.
// With check false (another runtime serves the file: spec.runtime) the file is only hashed.
func (r *sourceReads) configMapModel(ctx context.Context, model types.NamespacedName, cm *metav1.PartialObjectMetadata, key string, features []string, check bool) (sourceRead, error) {
	wantFeatures := strings.Join(features, ",")
	r.mu.Lock()
	last, ok := r.last[model]
	r.mu.Unlock()
	if ok && last.uid == cm.UID && last.resourceVersion == cm.ResourceVersion && last.key == key && last.features == wantFeatures && last.checked && last.skipCheck == !check {
		return last, nil
	}
	full := &corev1.ConfigMap{}
	switch err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(cm), full); {
	case apierrors.IsNotFound(err):
		return sourceRead{sourceErr: &errSourceNotFound{msg: fmt.Sprintf("ConfigMap %s not found in namespace %s", cm.Name, cm.Namespace)}}, nil
	case err != nil:
		return sourceRead{}, fmt.Errorf("reading model ConfigMap %s: %w", cm.Name, err)
	}
	read := sourceRead{uid: full.UID, resourceVersion: full.ResourceVersion, key: key, features: wantFeatures, checked: true, skipCheck: !check}
	var content []byte
	content, read.digest, read.sourceErr = configMapModelDigest(full, key)
	if read.sourceErr == nil && r.checker != nil && check {
		switch err := r.checker.Check(ctx, content, features); {
		case errors.Is(err, modelcheck.ErrNotChecked):
			read.checked = false
			ctrl.LoggerFrom(ctx).Info("the model file was not checked before the rollout; its pods will tell", "configMap", klog.KObj(full), "why", err.Error())
		default:
			read.unloadable = modelcheck.AsUnloadable(err)
		}
	}
	r.mu.Lock()
	if r.last == nil {
		r.last = map[types.NamespacedName]sourceRead{}
	}
	r.last[model] = read
	r.mu.Unlock()
	return read, nil
}

// caBundle checks the CA bundle of model's spec.source.caBundle ca, whose ConfigMap's metadata
// the cache holds as cm: nil when it holds valid certificates, else an *errSourceNotFound or
// *errSourceInvalid naming the field. err is an API error. The pods would otherwise fail every
// download at the TLS handshake, a failure that looks transient and is retried for ever.
func (r *sourceReads) caBundle(ctx context.Context, model types.NamespacedName, cm *metav1.PartialObjectMetadata, ca *freightcastv1alpha1.CABundleSource) (error, error) {
	key := spec.CABundleKey(ca)
	r.mu.Lock()
	last, ok := r.lastCA[model]
	r.mu.Unlock()
	if ok && last.uid == cm.UID && last.resourceVersion == cm.ResourceVersion && last.key == key {
		return last.sourceErr, nil
	}
	full := &corev1.ConfigMap{}
	switch err := r.apiReader.Get(ctx, client.ObjectKeyFromObject(cm), full); {
	case apierrors.IsNotFound(err):
		return caBundleNotFound(cm.Namespace, cm.Name), nil
	case err != nil:
		return nil, fmt.Errorf("reading CA bundle ConfigMap %s: %w", cm.Name, err)
	}
	read := caBundleRead{uid: full.UID, resourceVersion: full.ResourceVersion, key: key}
	switch _, err := spec.CABundle(full, ca); {
	case errors.Is(err, spec.ErrCABundleMissing):
		read.sourceErr = &errSourceNotFound{msg: err.Error()}
	case err != nil:
		read.sourceErr = &errSourceInvalid{msg: err.Error()}
	}
	r.mu.Lock()
	if r.lastCA == nil {
		r.lastCA = map[types.NamespacedName]caBundleRead{}
	}
	r.lastCA[model] = read
	r.mu.Unlock()
	return read.sourceErr, nil
}

func caBundleNotFound(namespace, name string) error {
	return &errSourceNotFound{msg: fmt.Sprintf("spec.source.caBundle: ConfigMap %s not found in namespace %s", name, namespace)}
}

// forget drops what was read for a model that is gone.
func (r *sourceReads) forget(model types.NamespacedName) {
	r.mu.Lock()
	delete(r.last, model)
	delete(r.lastCA, model)
	r.mu.Unlock()
}
