package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// namedApplyConfiguration is a typed apply configuration of a namespaced object.
type namedApplyConfiguration interface {
	runtime.ApplyConfiguration
	GetName() *string
	GetNamespace() *string
}

// applyChild makes the fields fieldOwner owns on a child equal desired, with server-side apply.
// It first reads the child into live and extracts what fieldOwner owns there (extract is the
// client-go ExtractX function); when that already equals desired it writes nothing, so that a
// reconcile of an unchanged object makes no API write. A field someone else changed by hand is no
// longer ours in managedFields, so the extraction differs and the apply takes it back.
// applied reports whether a write was sent; live holds the object as it was before any write
// (its zero value when it did not exist).
func applyChild[O client.Object, A namedApplyConfiguration](
	ctx context.Context, c client.Client, fieldOwner string, desired A, live O,
	extract func(O, string) (A, error),
) (applied bool, err error) {
	owned, found, err := ownedFields(ctx, c, fieldOwner, childKey(desired), live, extract)
	if err != nil {
		return false, err
	}
	return applyIfChanged(ctx, c, fieldOwner, fmt.Sprintf("%T", live), desired, owned, found)
}

// childKey is where desired is applied.
func childKey(desired namedApplyConfiguration) client.ObjectKey {
	return client.ObjectKey{Namespace: ptr.Deref(desired.GetNamespace(), ""), Name: ptr.Deref(desired.GetName(), "")}
}

// ownedFields reads the child at key into live with r and extracts what fieldOwner owns there;
// found is false when the child does not exist.
func ownedFields[O client.Object, A any](
	ctx context.Context, r client.Reader, fieldOwner string, key client.ObjectKey, live O,
	extract func(O, string) (A, error),
) (owned A, found bool, err error) {
	kind := fmt.Sprintf("%T", live)
	switch err := r.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		return owned, false, nil
	case err != nil:
		return owned, false, fmt.Errorf("reading %s %s: %w", kind, key, err)
	}
	if owned, err = extract(live, fieldOwner); err != nil {
		return owned, false, fmt.Errorf("extracting %s's fields of %s %s: %w", fieldOwner, kind, key, err)
	}
	return owned, true, nil
}

// applyIfChanged applies desired (a child of the given kind) as fieldOwner unless the child exists
// (found) and what fieldOwner owns there (owned) already equals it; applied reports whether it
// wrote.
func applyIfChanged[A namedApplyConfiguration](ctx context.Context, c client.Client, fieldOwner, kind string, desired, owned A, found bool) (applied bool, err error) {
	if found && equality.Semantic.DeepEqual(owned, desired) {
		return false, nil
	}
	if err := c.Apply(ctx, desired, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("applying %s %s: %w", kind, childKey(desired), err)
	}
	return true, nil
}

// deleteIfControlled deletes the child at key when owner controls it: an optional child the
// spec no longer asks for. One of that name that the user wrote is left alone, and the delete is
// preconditioned on the UID read, so a child recreated meanwhile is not deleted by mistake.
func deleteIfControlled(ctx context.Context, c client.Client, owner client.Object, key client.ObjectKey, live client.Object) error {
	kind := fmt.Sprintf("%T", live)
	if err := c.Get(ctx, key, live); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading %s %s: %w", kind, key, err)
	}
	if !metav1.IsControlledBy(live, owner) {
		return nil
	}
	uid := live.GetUID()
	if err := c.Delete(ctx, live, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting %s %s: %w", kind, key, err)
	}
	return nil
}

// requestsByIndex maps an object to reconcile requests for the objects of list's kind in its
// namespace whose field index holds its name: the owners that reference it by name.
func requestsByIndex(c client.Reader, list client.ObjectList, index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		referrers := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(ctx, referrers, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing the objects that reference one", "index", index, "object", klog.KObj(o))
			return nil
		}
		var reqs []reconcile.Request
		_ = meta.EachListItem(referrers, func(item runtime.Object) error {
			obj := item.(client.Object)
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(obj)})
			return nil
		})
		return reqs
	}
}
