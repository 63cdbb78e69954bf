package controllers

import (
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// conditionSetter sets conditions on a copy of an object's list, stamping transitions with an
// injected time and the generation the status describes.
type conditionSetter struct {
	conditions []metav1.Condition
	generation int64
	now        metav1.Time
}

func newConditionSetter(existing []metav1.Condition, generation int64, now time.Time) *conditionSetter {
	cs := make([]metav1.Condition, len(existing))
	copy(cs, existing)
	return &conditionSetter{conditions: cs, generation: generation, now: metav1.NewTime(now)}
}

func (s *conditionSetter) set(condType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.conditions, metav1.Condition{
		Type:               condType,
		Status:             status,
		Reason:             reason,
		Message:            truncateMessage(message),
		ObservedGeneration: s.generation,
		LastTransitionTime: s.now,
	})
}

func (s *conditionSetter) isTrue(condType string) bool {
	return meta.IsStatusConditionTrue(s.conditions, condType)
}

func (s *conditionSetter) get(condType string) *metav1.Condition {
	return meta.FindStatusCondition(s.conditions, condType)
}

// truncateMessage keeps a message within metav1.Condition's 32768-byte limit.
func truncateMessage(m string) string {
	return truncateString(m, 32768)
}

// truncateString keeps s within max bytes, marking the cut.
func truncateString(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// asError reports whether err is of type T, and returns it.
func asError[T error](err error) (T, bool) {
	var t T
	ok := errors.As(err, &t)
	return t, ok
}
