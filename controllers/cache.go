package controllers

import (
	"context"
	"maps"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// configMapGVK is the kind of the ConfigMaps the operator watches.
var configMapGVK = corev1.SchemeGroupVersion.WithKind("ConfigMap")

// NewCache makes the manager's cache (ctrl.Options.NewCache) as the controllers need it: typed
// ConfigMaps only when the operator owns them (its pipelines' configs, by label), so that the
// model files users keep in ConfigMaps — up to 1 MiB each — are not held in memory. A
// PredictionModel's source ConfigMap is watched as metadata only, by a second cache without that
// restriction; its content is read through the API reader when its resourceVersion changes.
func NewCache(config *rest.Config, opts cache.Options) (cache.Cache, error) {
	sources, err := cache.New(config, opts)
	if err != nil {
		return nil, err
	}
	owned := opts
	owned.ByObject = maps.Clone(opts.ByObject)
	if owned.ByObject == nil {
		owned.ByObject = map[client.Object]cache.ByObject{}
	}
	owned.ByObject[&corev1.ConfigMap{}] = cache.ByObject{Label: labels.SelectorFromSet(labels.Set{labelManagedBy: managedBy})}
	typed, err := cache.New(config, owned)
	if err != nil {
		return nil, err
	}
	return &operatorCache{Cache: typed, configMapMetadata: sources}, nil
}

// operatorCache serves ConfigMaps as metadata (metav1.PartialObjectMetadata) from the unrestricted
// cache, and everything else from the typed one.
type operatorCache struct {
	cache.Cache
	configMapMetadata cache.Cache
}

// forObject is the cache that serves obj.
func (c *operatorCache) forObject(obj runtime.Object) cache.Cache {
	gvk := obj.GetObjectKind().GroupVersionKind()
	switch obj.(type) {
	case *metav1.PartialObjectMetadata:
		if gvk == configMapGVK {
			return c.configMapMetadata
		}
	case *metav1.PartialObjectMetadataList:
		if gvk == configMapGVK.GroupVersion().WithKind("ConfigMapList") {
			return c.configMapMetadata
		}
	}
	return c.Cache
}

// Get implements client.Reader.
func (c *operatorCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.forObject(obj).Get(ctx, key, obj, opts...)
}

// List implements client.Reader.
func (c *operatorCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.forObject(list).List(ctx, list, opts...)
}

// GetInformer implements cache.Informers.
func (c *operatorCache) GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error) {
	return c.forObject(obj).GetInformer(ctx, obj, opts...)
}

// RemoveInformer implements cache.Informers.
func (c *operatorCache) RemoveInformer(ctx context.Context, obj client.Object) error {
	return c.forObject(obj).RemoveInformer(ctx, obj)
}

// IndexField implements client.FieldIndexer.
func (c *operatorCache) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	return c.forObject(obj).IndexField(ctx, obj, field, extract)
}

// Start runs both caches until ctx ends.
func (c *operatorCache) Start(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.Cache.Start(ctx) })
	g.Go(func() error { return c.configMapMetadata.Start(ctx) })
	return g.Wait()
}

// WaitForCacheSync waits for both caches.
func (c *operatorCache) WaitForCacheSync(ctx context.Context) bool {
	return c.Cache.WaitForCacheSync(ctx) && c.configMapMetadata.WaitForCacheSync(ctx)
}
