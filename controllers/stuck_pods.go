package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

const (
	// defaultStuckPodThreshold is how long a pod may stay unready beside ready siblings, or sit
	// in CrashLoopBackOff, before it is deleted to be rescheduled.
	defaultStuckPodThreshold = 5 * time.Minute
	// defaultStuckPodInterval is the least time between two such deletions in one Deployment,
	// so that a cause no restart fixes costs one pod at a time, slowly.
	defaultStuckPodInterval = 5 * time.Minute
)

// stuckPod picks the pod of one Deployment's pods to delete so that it is rescheduled: the one
// unready the longest among those that have been, for at least threshold, either in
// CrashLoopBackOff or unready while pods of the same revision are ready. A pod unready together
// with all its siblings is not stuck but failing, which a restart does not fix (a failed model
// rollout is rolled back instead). None is picked while a pod is terminating: one at a time.
// recheck is when an unready pod will have waited threshold, 0 when none is waiting.
func stuckPod(pods []corev1.Pod, now time.Time, threshold time.Duration) (victim *corev1.Pod, why string, recheck time.Duration) {
	readyByRevision := map[string]int{}
	for i := range pods {
		if pods[i].DeletionTimestamp != nil {
			return nil, "", 0
		}
		if podReady(&pods[i]) {
			readyByRevision[pods[i].Labels[appsv1.DefaultDeploymentUniqueLabelKey]]++
		}
	}
	var longest time.Duration
	for i := range pods {
		pod := &pods[i]
		if podReady(pod) {
			continue
		}
		crash := crashLoopMessage(pod)
		siblings := readyByRevision[pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]]
		if crash == "" && siblings == 0 {
			continue
		}
		unready := now.Sub(unreadySince(pod))
		if unready < threshold {
			if left := threshold - unready; recheck == 0 || left < recheck {
				recheck = left
			}
			continue
		}
		if victim != nil && unready <= longest {
			continue
		}
		victim, longest = pod, unready
		if crash != "" {
			why = fmt.Sprintf("unready for %s in CrashLoopBackOff (%s)", unready.Round(time.Second), crash)
		} else {
			why = fmt.Sprintf("unready for %s while %d pod(s) of the same revision are ready", unready.Round(time.Second), siblings)
		}
	}
	return victim, why, recheck
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unreadySince is when the pod's Ready condition last became False, or its creation when it
// never reported readiness.
func unreadySince(pod *corev1.Pod) time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	return pod.CreationTimestamp.Time
}

// crashLoopMessage describes the first container of pod in CrashLoopBackOff with its last exit,
// "" when none is.
func crashLoopMessage(pod *corev1.Pod) string {
	for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" {
			return "container " + cs.Name + lastExit(cs)
		}
	}
	return ""
}

// crashLooping names the pods of pods with a container in CrashLoopBackOff, with why.
func crashLooping(pods []corev1.Pod) []string {
	var out []string
	for i := range pods {
		if m := crashLoopMessage(&pods[i]); m != "" && pods[i].DeletionTimestamp == nil {
			out = append(out, "pod "+pods[i].Name+" "+m)
		}
	}
	return out
}

// podProblems describes why the unready pods of pods are: their containers' waiting reasons and
// last exits, for a message a human can act on.
func podProblems(pods []corev1.Pod) string {
	var out []string
	for i := range pods {
		pod := &pods[i]
		if podReady(pod) || pod.DeletionTimestamp != nil {
			continue
		}
		for _, cs := range slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses) {
			var s string
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				s = cs.State.Waiting.Reason
				if m := cs.State.Waiting.Message; m != "" {
					s += ": " + m
				}
			case cs.State.Terminated != nil:
				s = fmt.Sprintf("terminated %s (exit code %d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
			case cs.State.Running != nil && !cs.Ready:
				s = "running, not ready"
			default:
				continue
			}
			out = append(out, fmt.Sprintf("pod %s container %s: %s%s", pod.Name, cs.Name, s, lastExit(cs)))
		}
	}
	return strings.Join(out, "; ")
}

func lastExit(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return ""
	}
	s := fmt.Sprintf(", last exit %s (code %d)", t.Reason, t.ExitCode)
	if t.Message != "" {
		s += ": " + strings.TrimSpace(t.Message)
	}
	return s
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete

// podRestarter deletes stuck pods (see stuckPod), at most one per Deployment per Interval. The
// time of the last deletion lives in memory, keyed by the owner (each reconciler has its own
// podRestarter, and heals one Deployment per owner): a restarted operator may delete one pod
// sooner, which is harmless. Only the leader runs reconciles, so there is one of these at work.
type podRestarter struct {
	Client    client.Client
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	Threshold time.Duration
	Interval  time.Duration

	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

// forget drops what is remembered of an owner that is gone.
func (h *podRestarter) forget(owner types.NamespacedName) {
	h.mu.Lock()
	delete(h.last, owner)
	h.mu.Unlock()
}

// healPods lists the pods of Deployment d (through the API reader: the operator caches no
// pods) and deletes a stuck one, recording a Normal event on owner. It returns the pods, as
// listed, and when to look again: when an unready pod will have waited long enough, or the rate
// limit lets the next deletion through.
func (h *podRestarter) healPods(ctx context.Context, owner client.Object, d types.NamespacedName, selector map[string]string) ([]corev1.Pod, time.Duration, error) {
	var pods corev1.PodList
	if err := h.APIReader.List(ctx, &pods, client.InNamespace(d.Namespace), client.MatchingLabels(selector)); err != nil {
		return nil, 0, fmt.Errorf("listing pods of Deployment %s: %w", d, err)
	}
	recheck, err := h.restartStuck(ctx, owner, d, pods.Items)
	return pods.Items, recheck, err
}

func (h *podRestarter) restartStuck(ctx context.Context, owner client.Object, d types.NamespacedName, pods []corev1.Pod) (time.Duration, error) {
	now := h.Clock.Now()
	victim, why, recheck := stuckPod(pods, now, h.Threshold)
	if victim == nil {
		return recheck, nil
	}
	ownerKey := client.ObjectKeyFromObject(owner)
	h.mu.Lock()
	last, seen := h.last[ownerKey]
	h.mu.Unlock()
	if wait := h.Interval - now.Sub(last); seen && wait > 0 {
		return wait, nil
	}
	// Preconditioned on the UID: a pod of the same name recreated meanwhile is not ours to delete.
	if err := h.Client.Delete(ctx, victim, client.Preconditions{UID: &victim.UID}); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, fmt.Errorf("deleting stuck pod %s: %w", victim.Name, err)
	}
	h.mu.Lock()
	if h.last == nil {
		h.last = map[types.NamespacedName]time.Time{}
	}
	h.last[ownerKey] = now
	h.mu.Unlock()
	ctrl.LoggerFrom(ctx).Info("deleted a stuck pod", "pod", klog.KObj(victim), "why", why)
	h.Recorder.Eventf(owner, victim, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonRestartedStuckPod, "DeletePod",
		"%s", truncateNote(fmt.Sprintf("Deleted pod %s of Deployment %s to have it rescheduled: %s", victim.Name, d.Name, why)))
	return h.Interval, nil
}
