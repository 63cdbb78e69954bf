package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// recordConditionChanges emits an event for each condition change a human should see, so that
// `kubectl describe` tells the story: a Warning when something went bad (Degraded became True, or
// a condition that was True became False), a Normal event when a condition became True. Initial
// "not yet" states and Progressing, which flips on every rollout, are left to the conditions;
// RouteReady=False is never a "not yet" and is always told.
func recordConditionChanges(rec events.EventRecorder, obj runtime.Object, before, after []metav1.Condition) {
	for _, c := range after {
		if c.Type == freightcastv1alpha1.ConditionProgressing {
			continue
		}
		old := meta.FindStatusCondition(before, c.Type)
		if old != nil && old.Status == c.Status && old.Reason == c.Reason {
			continue
		}
		var eventType string
		switch {
		case c.Type == freightcastv1alpha1.ConditionDegraded && c.Status == metav1.ConditionTrue:
			eventType = corev1.EventTypeWarning
		case c.Type == freightcastv1alpha1.ConditionDegraded:
			if old == nil {
				continue
			}
			eventType = corev1.EventTypeNormal
		case c.Type == freightcastv1alpha1.ConditionRouteReady && c.Status == metav1.ConditionFalse:
			// A route that cannot be written is never a "not yet": say so at once.
			eventType = corev1.EventTypeWarning
		case c.Status == metav1.ConditionTrue:
			eventType = corev1.EventTypeNormal
		case old != nil && old.Status == metav1.ConditionTrue:
			eventType = corev1.EventTypeWarning
		default:
			continue
		}
		note := c.Type + "=" + string(c.Status)
		if c.Message != "" {
			note += ": " + c.Message
		}
		rec.Eventf(obj, nil, eventType, c.Reason, "Condition"+c.Type, "%s", truncateNote(note))
	}
}

// truncateNote keeps an event note within the events API's 1 kB limit.
func truncateNote(n string) string { return truncateString(n, 1024) }
