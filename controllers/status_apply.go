package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/csaupgrade"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// applyStatus writes status to obj's status subresource with server-side apply as fieldOwner, as
// cert-manager's ApplyStatus does: the request carries the object's identity and the status
// fields fieldOwner owns, nothing else. Each writer of one status (the pipeline reconciler, the
// autoscaler) so owns its own fields: neither overwrites the other's, and neither loses a write to
// the other's, so there is no conflict to retry. A field the writer no longer sends is removed.
// The answer is decoded into obj.
func applyStatus(ctx context.Context, c client.Client, fieldOwner string, obj client.Object, gvk schema.GroupVersionKind, status any) error {
	body, err := json.Marshal(map[string]any{
		"apiVersion": gvk.GroupVersion().String(),
		"kind":       gvk.Kind,
		"metadata":   applyMetadata(obj),
		"status":     status,
	})
	if err != nil {
		return fmt.Errorf("encoding the status of %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(obj), err)
	}
	if err := c.Status().Patch(ctx, obj, client.RawPatch(types.ApplyPatchType, body), client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying the status of %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// applyMetadata identifies obj in an apply request: by name, and by UID when it has one. The UID
// does not guard a status write: the API server builds a custom resource's status update on the
// stored object's metadata, so a status computed for an object that was deleted and created again
// under the same name would land on the new one. sameObject is that guard.
func applyMetadata(obj client.Object) map[string]any {
	m := map[string]any{"namespace": obj.GetNamespace(), "name": obj.GetName()}
	if uid := obj.GetUID(); uid != "" {
		m["uid"] = string(uid)
	}
	return m
}

// adoptStatusUpdates moves the status fields that earlier operator versions wrote with whole-object
// Updates (and merge patches) into fieldOwner's apply entry of obj's managedFields, once. Left with
// those Update entries, a field that an apply writer stops sending would stay, still owned by
// them: a queue depth the autoscaler can no longer read, a condition no longer reported. obj comes
// from the cache; the patch carries its resourceVersion, so it fails rather than overwrite newer
// managed fields.
func adoptStatusUpdates(ctx context.Context, c client.Client, fieldOwner string, obj client.Object) error {
	updaters := sets.New[string]()
	for _, mf := range obj.GetManagedFields() {
		if mf.Operation == metav1.ManagedFieldsOperationUpdate && mf.Subresource == "status" {
			updaters.Insert(mf.Manager)
		}
	}
	if updaters.Len() == 0 {
		return nil
	}
	patch, err := csaupgrade.UpgradeManagedFieldsPatch(obj, updaters, fieldOwner, csaupgrade.Subresource("status"))
	if err != nil || patch == nil {
		return err
	}
	if err := c.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		return fmt.Errorf("adopting the status fields of %v: %w", sets.List(updaters), err)
	}
	return nil
}

// sameObject reports whether obj, as read from the cache, is still the object the API server
// holds under its name: not deleted, nor deleted and created again. A reconcile that read a cache
// not yet told of a deletion must not write the old object's status onto a new one of the same
// name (its conditions would carry over, and the new object's events would never be told). It
// reads around the cache, metadata only; what is left is the time between this read and the write.
func sameObject(ctx context.Context, apiReader client.Reader, obj client.Object, gvk schema.GroupVersionKind) (bool, error) {
	live := &metav1.PartialObjectMetadata{}
	live.SetGroupVersionKind(gvk)
	switch err := apiReader.Get(ctx, client.ObjectKeyFromObject(obj), live); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("reading %s %s: %w", gvk.Kind, client.ObjectKeyFromObject(obj), err)
	}
	return live.UID == obj.GetUID(), nil
}
