package controllers

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// servingModel creates model m on ConfigMap m-v1 (modelBytes), has its rollout complete, and
// waits until v1 is the last good revision.
func servingModel(t *testing.T, ns string) *freightcastv1alpha1.PredictionModel {
	t.Helper()
	model := newModel(ns, "m", "m-v1")
	mustCreate(t, newModelConfigMap(ns, "m-v1", modelBytes), model)
	waitPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
	testenv.Eventually(t, 10*time.Second, "v1 recorded as the last good revision", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if lg := model.Status.LastGoodRevision; lg == nil || lg.Digest != digestOf(modelBytes) {
			return fmt.Errorf("lastGoodRevision %+v", lg)
		}
		return nil
	})
	return model
}

// waitConditions waits until the model reports each of want ("Type=Status/Reason") and returns
// the model as read then.
func waitConditions(t testing.TB, model *freightcastv1alpha1.PredictionModel, want ...string) *freightcastv1alpha1.PredictionModel {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, strings.Join(want, ", "), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		for _, w := range want {
			typ, _, _ := strings.Cut(w, "=")
			c := meta.FindStatusCondition(model.Status.Conditions, typ)
			if c == nil || fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason) != w || c.ObservedGeneration != model.Generation {
				return fmt.Errorf("%s is %+v", typ, c)
			}
		}
		return nil
	})
	return model
}

func conditionMessage(model *freightcastv1alpha1.PredictionModel, typ string) string {
	if c := meta.FindStatusCondition(model.Status.Conditions, typ); c != nil {
		return c.Message
	}
	return ""
}

// TestPredictionModelRefusesAModelThatCannotLoad: a ConfigMap's model file that the runtime
// refuses is reported from the operator's own load, before any pod moves to it: the last good
// revision keeps serving, the status names the operator, domain and node, a Warning event says
// so, and Argo CD sees Degraded. A truncated file is InvalidModel the same way.
func TestPredictionModelRefusesAModelThatCannotLoad(t *testing.T) {
	ns := newNamespace(t)
	startOperatorWithClock(t, testingclock.NewFakeClock(time.Now()), "", ns)
	model := servingModel(t, ns)
	mustCreate(t, newModelConfigMap(ns, "m-fused", onnxtest.Refused(3)), newModelConfigMap(ns, "m-cut", onnxtest.Truncated(1, 2, 3)))

	setModelSource(t, model, "m-fused")
	model = waitConditions(t, model, "ModelLoaded=False/UnsupportedModel", "Degraded=True/UnsupportedModel", "Progressing=False/UnsupportedModel", "Ready=False/UnsupportedModel")
	msg := conditionMessage(model, freightcastv1alpha1.ConditionDegraded)
	for _, want := range []string{"ConfigMap m-fused", "FusedGemm", "com.microsoft", `"fused"`, "the serving pods stay on ConfigMap m-v1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Degraded message %q lacks %q", msg, want)
		}
	}
	assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	if f := model.Status.FailedRollout; f == nil || f.Reason != freightcastv1alpha1.ReasonUnsupportedModel || f.Revision.Source.ConfigMap.Name != "m-fused" {
		t.Errorf("failedRollout = %+v", f)
	}
	if model.Status.ModelDigest != digestOf(modelBytes) {
		t.Errorf("modelDigest %q, want v1's: v1 is what serves", model.Status.ModelDigest)
	}
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.ReasonUnsupportedModel)
	if got, why := argoHealth(t, model); got != "Degraded" {
		t.Errorf("Argo CD health %s (%s), want Degraded", got, why)
	}

	setModelSource(t, model, "m-cut")
	model = waitConditions(t, model, "ModelLoaded=False/InvalidModel", "Degraded=True/InvalidModel", "Progressing=False/InvalidModel")
	if msg := conditionMessage(model, freightcastv1alpha1.ConditionDegraded); !strings.Contains(msg, "invalid model") {
		t.Errorf("Degraded message %q does not give the loader's reason", msg)
	}
	assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))

	// A model that never served one that loads gets no serving pods at all.
	fresh := newModel(ns, "fresh", "m-fused")
	mustCreate(t, fresh)
	fresh = waitConditions(t, fresh, "Degraded=True/UnsupportedModel", "Progressing=False/UnsupportedModel")
	if msg := conditionMessage(fresh, freightcastv1alpha1.ConditionDegraded); !strings.Contains(msg, "nothing serves the model") {
		t.Errorf("Degraded message %q", msg)
	}
	if _, err := getDeployment(ns, "fresh-predictor"); !apierrors.IsNotFound(err) {
		t.Errorf("a serving Deployment for a model that cannot load: %v", err)
	}

	// The file is fixed in place: the operator checks it again and rolls it out.
	fixed := onnxtest.Linear(3, 2, 1)
	cm := &corev1.ConfigMap{}
	testenv.Eventually(t, 10*time.Second, "fix the model file in place", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "m-fused"}, cm); err != nil {
			return err
		}
		cm.BinaryData["model.onnx"] = fixed
		return k8s.Update(context.Background(), cm)
	})
	waitPredictorServes(t, ns, "fresh-predictor", "m-fused", digestOf(fixed))
	waitConditions(t, fresh, "Degraded=False/AsExpected")
}

// unloadablePod stands in for the ReplicaSet controller and the kubelet: a pod of the serving
// Deployment's current template whose container exited because the model cannot load, wrote
// message to its termination log, and is now in CrashLoopBackOff, unready since unreadyFor ago.
func unloadablePod(t testing.TB, ns, name string, d *appsv1.Deployment, unreadyFor time.Duration, message string) *corev1.Pod {
	t.Helper()
	labels := maps.Clone(d.Spec.Template.Labels)
	labels[appsv1.DefaultDeploymentUniqueLabelKey] = "6c7d8e9f0"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: maps.Clone(d.Spec.Template.Annotations)},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	mustCreate(t, pod)
	since := metav1.NewTime(time.Now().Add(-unreadyFor))
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: since}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:         "server",
			Image:        testImage,
			RestartCount: 1,
			State:        corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s restarting failed container"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: modelcheck.ExitUnloadable, Reason: "Error", Message: message, StartedAt: since, FinishedAt: since}},
		}},
	}
	if err := k8s.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

const fusedLoadError = `freightcast infer: load model: model not supported: node "fused" (FusedGemm, domain com.microsoft, opset 1): operator FusedGemm of domain "com.microsoft" is not supported (supported domains: ai.onnx, ai.onnx.ml)`

// TestPredictionModelReportsAPodThatCannotLoadItsModel: a model the operator cannot read (a URI)
// is reported from its first pod's exit, without waiting for the progress deadline: the pods
// are rolled back to the last good revision at once, with the pod's termination message.
func TestPredictionModelReportsAPodThatCannotLoadItsModel(t *testing.T) {
	ns := newNamespace(t)
	startOperatorWithClock(t, testingclock.NewFakeClock(time.Now()), "", ns)
	model := servingModel(t, ns)
	mustUpdate(t, model, func() {
		model.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/fused.onnx", SHA256: strings.Repeat("ab", 32)}
	})
	var d *appsv1.Deployment
	waitDeployment(t, 15*time.Second, ns, "m-predictor", "serving the URI", func(got *appsv1.Deployment) error {
		d = got
		if !strings.Contains(strings.Join(got.Spec.Template.Spec.Containers[0].Args, " "), "--model-uri=https://models.example.com/fused.onnx") {
			return fmt.Errorf("args %v", got.Spec.Template.Spec.Containers[0].Args)
		}
		return nil
	})
	waitConditions(t, model, "Progressing=True/RollingOut")
	// Nothing but the pod changes: the Deployment's status says nothing of a pod that crashed.
	unloadablePod(t, ns, "m-predictor-fused", d, time.Second, fusedLoadError)

	model = waitConditions(t, model, "Degraded=True/ModelLoadFailed", "ModelLoaded=False/ModelLoadFailed", "Progressing=False/ModelLoadFailed", "Ready=False/ModelLoadFailed")
	msg := conditionMessage(model, freightcastv1alpha1.ConditionDegraded)
	for _, want := range []string{"https://models.example.com/fused.onnx", "pod m-predictor-fused container server exited with code 78", "FusedGemm", "rolled back to ConfigMap m-v1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Degraded message %q lacks %q", msg, want)
		}
	}
	waitPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonRolledBack)
	if got, why := argoHealth(t, model); got != "Degraded" {
		t.Errorf("Argo CD health %s (%s), want Degraded", got, why)
	}
}

// TestAModelThatCannotLoadIsNotHealedAndItsStatusHolds: with no earlier revision to go back to,
// the pods of a model that cannot load stay as they are; the stuck-pod restarter, whose clock is
// stepped through several thresholds and intervals, never deletes one (that would reset the
// rollout and the status with it), and the conditions hold, transition times and all.
func TestAModelThatCannotLoadIsNotHealedAndItsStatusHolds(t *testing.T) {
	ns := newNamespace(t)
	clk := testingclock.NewFakeClock(time.Now())
	startOperatorWithClock(t, clk, "", ns, func(o *Options) {
		o.StuckPodThreshold = time.Minute
		o.StuckPodInterval = 2 * time.Minute
	})
	ctx := context.Background()
	model := newModel(ns, "m", "")
	model.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/fused.onnx", SHA256: strings.Repeat("ab", 32)}
	mustCreate(t, model)
	d := mustEventuallyGetDeployment(t, ns, "m-predictor")
	pod := unloadablePod(t, ns, "m-predictor-fused", d, 10*time.Minute, fusedLoadError)
	model = waitConditions(t, model, "Degraded=True/ModelLoadFailed", "Progressing=False/ModelLoadFailed", "Ready=False/ModelLoadFailed")
	held := model.Status.DeepCopy()
	if msg := conditionMessage(model, freightcastv1alpha1.ConditionDegraded); !strings.Contains(msg, "FusedGemm") || !strings.Contains(msg, "nothing serves the model") {
		t.Errorf("Degraded message %q", msg)
	}

	// The Deployment controller gives up on the rollout too; that does not take the reason's place.
	markDeploymentProgressDeadlineExceeded(t, ns, "m-predictor")
	for i := range 5 {
		clk.Step(3 * time.Minute) // past the threshold and the interval, every time
		runs := reconcileCount(t, "predictionmodel")
		svc := &corev1.Service{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "m-predictor"}, svc); err != nil {
			t.Fatal(err)
		}
		svc.Labels["heal-interval"] = fmt.Sprint(i) // a change, which wakes the model's reconcile
		if err := k8s.Update(ctx, svc, client.FieldOwner("someone-else")); err != nil {
			t.Fatal(err)
		}
		waitReconciles(t, "predictionmodel", runs)
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{}); err != nil {
			t.Fatalf("heal interval %d: the pod that cannot load its model was deleted: %v", i+1, err)
		}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			t.Fatal(err)
		}
		for _, want := range held.Conditions {
			got := meta.FindStatusCondition(model.Status.Conditions, want.Type)
			if got == nil || got.Status != want.Status || got.Reason != want.Reason || !got.LastTransitionTime.Equal(&want.LastTransitionTime) {
				t.Fatalf("heal interval %d: %s went from %s/%s (at %s) to %+v", i+1, want.Type, want.Status, want.Reason, want.LastTransitionTime, got)
			}
		}
		if f := model.Status.FailedRollout; f == nil || f.Reason != freightcastv1alpha1.ReasonModelLoadFailed {
			t.Fatalf("heal interval %d: failedRollout %+v", i+1, f)
		}
	}
	if got, why := argoHealth(t, model); got != "Degraded" {
		t.Errorf("Argo CD health %s (%s), want Degraded", got, why)
	}
}

// TestPipelineOfAModelThatCannotLoad: a pipeline whose model cannot load says so in its own
// conditions, naming the model and the reason, Argo CD sees it Degraded, and its queue (on a real
// NATS server) keeps the events that arrive meanwhile: none is consumed or dead-lettered.
func TestPipelineOfAModelThatCannotLoad(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperatorWithClock(t, testingclock.NewFakeClock(time.Now()), srv.URL(), ns)
	ctx := context.Background()
	model := newModel(ns, "m", "m-fused")
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, newModelConfigMap(ns, "m-fused", onnxtest.Refused(3)), model, p)

	testenv.Eventually(t, 15*time.Second, "the pipeline names its model and why it cannot load", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		for _, typ := range []string{freightcastv1alpha1.ConditionDegraded, freightcastv1alpha1.ConditionInferenceReady, freightcastv1alpha1.ConditionReady} {
			c := meta.FindStatusCondition(p.Status.Conditions, typ)
			if c == nil || c.Reason != freightcastv1alpha1.ReasonUnsupportedModel || !strings.Contains(c.Message, "PredictionModel m cannot load") || !strings.Contains(c.Message, "FusedGemm") {
				return fmt.Errorf("%s is %+v", typ, c)
			}
		}
		if !meta.IsStatusConditionTrue(p.Status.Conditions, freightcastv1alpha1.ConditionDegraded) || !meta.IsStatusConditionTrue(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady) {
			return fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		return nil
	})
	if got, why := argoHealth(t, p); got != "Degraded" {
		t.Errorf("Argo CD health of the pipeline %s (%s), want Degraded", got, why)
	}
	for _, name := range []string{"orders-ingest", "orders-inference"} {
		if _, err := getDeployment(ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("Deployment %s for a model that cannot load: %v", name, err)
		}
	}

	// Events that arrive meanwhile wait in the pipeline's stream.
	topo := queue.TopologyFor(ns, "orders")
	_, js := natstest.Connect(t, srv.URL())
	const n = 20
	for i := range n {
		msg, err := event.Encode(&event.Event{ID: fmt.Sprintf("e%d", i), Features: []float64{1, 2, 3}, ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, topo.Subject, msg, jetstream.WithMsgID(fmt.Sprintf("e%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	runs := reconcileCount(t, "freightpipeline")
	labelByHand(t, ns, "orders-ingest", &corev1.Service{})
	waitReconciles(t, "freightpipeline", runs)
	stream, err := js.Stream(ctx, topo.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := stream.Consumer(ctx, topo.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	ci, err := consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out, err := js.Stream(ctx, topo.OutputStream)
	if err != nil {
		t.Fatal(err)
	}
	oi, err := out.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n || ci.NumPending != n || ci.Delivered.Consumer != 0 || oi.State.Msgs != 0 {
		t.Errorf("stream holds %d events, consumer %d pending and %d delivered, output stream %d messages; want %d, %d, 0, 0",
			info.State.Msgs, ci.NumPending, ci.Delivered.Consumer, oi.State.Msgs, n, n)
	}
}
