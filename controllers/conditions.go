package controllers

import (
	"errors"
	"time"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
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

// problem is a reason and a message for a condition; the zero problem means "none".
type problem struct {
	reason, message string
}

func (p problem) none() bool { return p.reason == "" }

// firstProblem is the first of problems that is one, the zero problem when none is.
func firstProblem(problems ...problem) problem {
	for _, p := range problems {
		if !p.none() {
			return p
		}
	}
	return problem{}
}

// setDegraded sets Degraded: True with the first of problems that is one (they come most
// important first), False AsExpected when none is. Degraded is what waiting alone will not fix.
func setDegraded(c *conditionSetter, problems ...problem) {
	if p := firstProblem(problems...); !p.none() {
		c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, p.reason, p.message)
		return
	}
	c.set(freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected, "")
}

// setProgressing sets Progressing: False with Degraded's reason while blocked (converging has
// stopped on what Degraded says), True while rolling is a rollout under way, and False with
// settled otherwise (converged, or waiting for something that is not a rollout).
func setProgressing(c *conditionSetter, blocked bool, rolling, settled problem) {
	switch {
	case blocked:
		d := c.get(freightcastv1alpha1.ConditionDegraded)
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, d.Reason, "not progressing: "+d.Message)
	case !rolling.none():
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, rolling.reason, rolling.message)
	default:
		c.set(freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, settled.reason, settled.message)
	}
}

// setReady sets Ready: False with Degraded's reason while it is True, else False with the first
// of blockers that is one (what keeps the object from serving, most important first), else True
// with ready.
func setReady(c *conditionSetter, ready problem, blockers ...problem) {
	if d := c.get(freightcastv1alpha1.ConditionDegraded); d != nil && d.Status == metav1.ConditionTrue {
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, d.Reason, d.Message)
		return
	}
	if b := firstProblem(blockers...); !b.none() {
		c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, b.reason, b.message)
		return
	}
	c.set(freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, ready.reason, ready.message)
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
