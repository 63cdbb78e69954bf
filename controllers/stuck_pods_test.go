package controllers

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// testPod is a pod of revision rev that is ready or not since testNow-age.
func testPod(name, rev string, ready bool, age time.Duration) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: rev},
			CreationTimestamp: metav1.NewTime(testNow.Add(-2 * age))},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(testNow.Add(-age))}}},
	}
}

func crashLoopingPod(p corev1.Pod) corev1.Pod {
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1, Message: "model: bad magic\n"}}}}
	return p
}

func TestStuckPod(t *testing.T) {
	t.Parallel()
	const threshold = 5 * time.Minute
	terminating := testPod("t", "a", false, time.Hour)
	terminating.DeletionTimestamp = &metav1.Time{Time: testNow}
	cases := map[string]struct {
		pods        []corev1.Pod
		wantVictim  string
		wantWhy     string
		wantRecheck time.Duration
	}{
		"all ready": {
			pods: []corev1.Pod{testPod("a", "a", true, time.Hour), testPod("b", "a", true, time.Hour)},
		},
		"unready beside a ready sibling, past the threshold": {
			pods:       []corev1.Pod{testPod("a", "a", true, time.Hour), testPod("b", "a", false, 6*time.Minute)},
			wantVictim: "b",
			wantWhy:    "unready for 6m0s while 1 pod(s) of the same revision are ready",
		},
		"unready beside a ready sibling, not yet": {
			pods:        []corev1.Pod{testPod("a", "a", true, time.Hour), testPod("b", "a", false, 2*time.Minute)},
			wantRecheck: 3 * time.Minute,
		},
		"the longest unready goes first": {
			pods:       []corev1.Pod{testPod("a", "a", true, time.Hour), testPod("b", "a", false, 6*time.Minute), testPod("c", "a", false, 9*time.Minute)},
			wantVictim: "c",
			wantWhy:    "unready for 9m0s while 1 pod(s) of the same revision are ready",
		},
		"every pod of a revision unready is a failing rollout, not a stuck pod": {
			pods: []corev1.Pod{testPod("a", "old", true, time.Hour), testPod("b", "new", false, time.Hour)},
		},
		"crash-looping past the threshold, alone": {
			pods:       []corev1.Pod{crashLoopingPod(testPod("b", "a", false, 7*time.Minute))},
			wantVictim: "b",
			wantWhy:    "unready for 7m0s in CrashLoopBackOff (container server, last exit Error (code 1): model: bad magic)",
		},
		"one at a time: nothing while a pod terminates": {
			pods: []corev1.Pod{testPod("a", "a", true, time.Hour), testPod("b", "a", false, time.Hour), terminating},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			victim, why, recheck := stuckPod(tc.pods, testNow, threshold)
			got := ""
			if victim != nil {
				got = victim.Name
			}
			if diff := cmp.Diff([]any{tc.wantVictim, tc.wantWhy, tc.wantRecheck}, []any{got, why, recheck}); diff != "" {
				t.Errorf("stuckPod (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPodProblems(t *testing.T) {
	t.Parallel()
	pods := []corev1.Pod{testPod("ok", "a", true, time.Hour), crashLoopingPod(testPod("bad", "b", false, time.Minute))}
	want := "pod bad container server: CrashLoopBackOff: back-off 5m0s, last exit Error (code 1): model: bad magic"
	if diff := cmp.Diff(want, podProblems(pods)); diff != "" {
		t.Errorf("podProblems (-want +got):\n%s", diff)
	}
}

// createPod stands in for the ReplicaSet controller and the kubelet, which envtest does not
// run: it creates a pod with a Deployment's selector labels and writes the status a kubelet
// would report for it, unready since unreadyFor ago (ready when 0), crash-looping when crash is
// set.
func createPod(t testing.TB, ns, name string, selector map[string]string, unreadyFor time.Duration, crash bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	labels := maps.Clone(selector)
	labels[appsv1.DefaultDeploymentUniqueLabelKey] = "5d8f7c9b4"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: testImage}}},
	}
	mustCreate(t, pod)
	ready, since := corev1.ConditionTrue, metav1.Now()
	if unreadyFor > 0 {
		ready, since = corev1.ConditionFalse, metav1.NewTime(time.Now().Add(-unreadyFor))
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: since}}}
	if crash {
		pod.Status.ContainerStatuses = crashLoopingPod(*pod).Status.ContainerStatuses
	}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

func TestStuckServingPodIsRestartedOnceAtATime(t *testing.T) {
	ns := newNamespace(t)
	// The restarter's clock is fake: it stands still until the test steps it past the interval.
	clk := testingclock.NewFakeClock(time.Now())
	startOperatorWithClock(t, clk, "", ns, func(o *Options) {
		o.StuckPodThreshold = time.Minute
		o.StuckPodInterval = time.Hour
	})
	ctx := context.Background()
	model := newModel(ns, "m", "m-onnx")
	model.Spec.Replicas = ptr.To[int32](3)
	mustCreate(t, newModelConfigMap(ns, "m-onnx", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, "m-predictor")
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)

	createPod(t, ns, "m-predictor-ready", predictorSelector(model), 0, false)
	stuck := createPod(t, ns, "m-predictor-stuck", predictorSelector(model), 10*time.Minute, false)
	crash := createPod(t, ns, "m-predictor-crash", predictorSelector(model), 5*time.Minute, true)
	// The Deployment controller sees two pods go unready and says so in its status, which
	// wakes the model's reconcile.
	withReady := func(ready int32) {
		setDeploymentStatus(t, ns, "m-predictor", fmt.Sprintf("with %d of 3 pods ready", ready), func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
			return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: ready, AvailableReplicas: ready}
		})
	}
	withReady(1)

	testenv.Eventually(t, 15*time.Second, "the pod unready the longest is deleted", func() error {
		err := k8s.Get(ctx, client.ObjectKeyFromObject(stuck), &corev1.Pod{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still there (err %v)", stuck.Name, err)
		}
		return nil
	})
	waitEvent(t, model, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonRestartedStuckPod)
	// Ready is not True while pods fail.
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)

	// One deletion per Deployment per interval: a reconcile that starts after the deletion (the
	// status it writes shows it saw 2 ready pods) leaves the crash-looping pod alone.
	withReady(2)
	waitModelReadyReplicas(t, model, 2)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(crash), &corev1.Pod{}); err != nil {
		t.Errorf("a second pod was deleted within the rate limit: %v", err)
	}
	// Not Ready even when the Deployment counts every pod ready, caught between two crashes.
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonCrashLoopBackOff)
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)

	// Once the interval has passed, the next reconcile deletes the crash-looping pod.
	clk.Step(time.Hour)
	withReady(1)
	testenv.Eventually(t, 15*time.Second, "the crash-looping pod is deleted after the interval", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(crash), &corev1.Pod{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still there (err %v)", crash.Name, err)
		}
		return nil
	})
}

// waitModelReadyReplicas waits until the model's status counts ready serving pods: a reconcile
// has seen the Deployment say so.
func waitModelReadyReplicas(t testing.TB, model *freightcastv1alpha1.PredictionModel, ready int32) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s status with %d ready replicas", model.Name, ready), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if model.Status.ReadyReplicas != ready {
			return fmt.Errorf("readyReplicas %d", model.Status.ReadyReplicas)
		}
		return nil
	})
}

func TestStuckInferencePodIsRestarted(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns, func(o *Options) { o.StuckPodThreshold = time.Minute })
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	p.Spec.Inference.MinReplicas = ptr.To[int32](2)
	mustCreate(t, p)
	mustEventuallyGetDeployment(t, ns, "orders-inference")
	markDeploymentRolledOut(t, ns, "orders-inference")

	selector := pipelineSelector(p, componentInference)
	createPod(t, ns, "orders-inference-ready", selector, 0, false)
	stuck := createPod(t, ns, "orders-inference-stuck", selector, 2*time.Minute, false)
	setDeploymentStatus(t, ns, "orders-inference", "with 1 of 2 pods ready", func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: 1, AvailableReplicas: 1}
	})
	testenv.Eventually(t, 15*time.Second, "the stuck worker is deleted", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(stuck), &corev1.Pod{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still there (err %v)", stuck.Name, err)
		}
		return nil
	})
	waitEvent(t, p, corev1.EventTypeNormal, freightcastv1alpha1.EventReasonRestartedStuckPod)
}

// TestRestarterForgetsAGoneOwner: the rate limit is remembered per owner, and an owner that is
// gone is forgotten, so that the memory does not grow with every model or pipeline ever seen.
func TestRestarterForgetsAGoneOwner(t *testing.T) {
	ns := newNamespace(t)
	model := newModel(ns, "m", "m-onnx")
	selector := predictorSelector(model)
	// A pod is stuck when it stays unready beside a ready sibling.
	ready := *createPod(t, ns, "m-predictor-ready", selector, 0, false)
	pods := []corev1.Pod{
		*createPod(t, ns, "m-predictor-a", selector, 10*time.Minute, false),
		*createPod(t, ns, "m-predictor-b", selector, 5*time.Minute, false),
	}
	clk := testingclock.NewFakeClock(time.Now())
	h := &podRestarter{Client: k8s, Recorder: events.NewFakeRecorder(10), Clock: clk,
		Threshold: time.Minute, Interval: time.Hour}
	deployment := types.NamespacedName{Namespace: ns, Name: predictorName(model)}
	ctx := context.Background()
	gone := func(p corev1.Pod) bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(&p), &corev1.Pod{}))
	}

	if _, err := h.restartStuck(ctx, model, deployment, append(pods, ready)); err != nil {
		t.Fatal(err)
	}
	if !gone(pods[0]) || gone(pods[1]) {
		t.Fatalf("first pass: want only %s deleted (gone: %v, %v)", pods[0].Name, gone(pods[0]), gone(pods[1]))
	}
	clk.Step(59 * time.Minute)
	if wait, err := h.restartStuck(ctx, model, deployment, []corev1.Pod{pods[1], ready}); err != nil || wait != time.Minute || gone(pods[1]) {
		t.Fatalf("within the interval: wait %s, err %v, %s deleted %v; want a wait of the minute left and no deletion", wait, err, pods[1].Name, gone(pods[1]))
	}

	h.forget(client.ObjectKeyFromObject(model))
	if len(h.last) != 0 {
		t.Errorf("after forget the restarter still remembers %v", h.last)
	}
	if _, err := h.restartStuck(ctx, model, deployment, []corev1.Pod{pods[1], ready}); err != nil || !gone(pods[1]) {
		t.Fatalf("a model of the same name, after forget: err %v, %s deleted %v; want it deleted", err, pods[1].Name, gone(pods[1]))
	}
}
