package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	testingclock "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/spec"
	"github.com/freightcast/freightcast/internal/testing/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// markDeploymentProgressDeadlineExceeded stands in for the Deployment controller, which envtest
// does not run, when a rollout makes no progress for progressDeadlineSeconds (for our pods: the
// new model file does not load, so they crash-loop or never pass readiness): it writes the status
// that controller would write then, with the old pods still serving.
func markDeploymentProgressDeadlineExceeded(t testing.TB, ns, name string) {
	t.Helper()
	setDeploymentStatus(t, ns, name, "past its progress deadline", func(d *appsv1.Deployment, n int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           n + 1, // maxSurge 1: one new pod beside the old ones
			UpdatedReplicas:    1,
			ReadyReplicas:      n,
			AvailableReplicas:  n,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
					Message:        fmt.Sprintf("ReplicaSet %q has timed out progressing.", name+"-7d9f8b6c5d"),
					LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()},
			},
		}
	})
}

// waitPredictorServes waits until the serving Deployment's pod template mounts ConfigMap cm and
// carries digest.
func waitPredictorServes(t testing.TB, ns, name, cm, digest string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s serves ConfigMap %s (%s)", name, cm, digest), func() (err error) {
		d, err = predictorServes(ns, name, cm, digest)
		return err
	})
	return d
}

// assertPredictorServes checks, now, that the serving Deployment's pod template mounts ConfigMap
// cm and carries digest.
func assertPredictorServes(t testing.TB, ns, name, cm, digest string) {
	t.Helper()
	if _, err := predictorServes(ns, name, cm, digest); err != nil {
		t.Errorf("%s does not serve ConfigMap %s (%s): %v", name, cm, digest, err)
	}
}

func predictorServes(ns, name, cm, digest string) (*appsv1.Deployment, error) {
	d, err := getDeployment(ns, name)
	if err != nil {
		return nil, err
	}
	var mounted []string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.Name == modelVolumeName {
			mounted = append(mounted, v.ConfigMap.Name)
		}
	}
	if got := d.Spec.Template.Annotations[annotationModelDigest]; got != digest || !slices.Equal(mounted, []string{cm}) {
		return d, fmt.Errorf("model ConfigMaps %v, digest %q", mounted, got)
	}
	return d, nil
}

func setModelSource(t testing.TB, model *freightcastv1alpha1.PredictionModel, cm string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "point the model at ConfigMap "+cm, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		model.Spec.Source = freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: cm}}
		return k8s.Update(context.Background(), model)
	})
}

func TestPredictionModelRollsBackAFailedRollout(t *testing.T) {
	ns := newNamespace(t)
	// Time stands still: nothing here waits on a threshold (the crash-looping pod of v2 is not
	// for the stuck-pod restarter), so nothing time-based acts behind the test's back.
	startOperatorWithClock(t, testingclock.NewFakeClock(time.Now()), "", ns)
	ctx := context.Background()
	v2 := append(slices.Clone(modelBytes), []byte("-v2-does-not-load")...)
	v3 := append(slices.Clone(modelBytes), []byte("-v3")...)
	model := newModel(ns, "m", "m-v1")
	mustCreate(t, newModelConfigMap(ns, "m-v1", modelBytes), newModelConfigMap(ns, "m-v2", v2), newModelConfigMap(ns, "m-v3", v3), model)

	d := waitPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	if d.Spec.ProgressDeadlineSeconds == nil || *d.Spec.ProgressDeadlineSeconds != 300 {
		t.Errorf("progressDeadlineSeconds = %v, want the default 300", d.Spec.ProgressDeadlineSeconds)
	}
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
	testenv.Eventually(t, 10*time.Second, "v1 recorded as the last good revision", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if lg := model.Status.LastGoodRevision; lg == nil || lg.Digest != digestOf(modelBytes) || lg.Source.ConfigMap.Name != "m-v1" {
			return fmt.Errorf("lastGoodRevision %+v", lg)
		}
		return nil
	})

	// v2 never loads: the Deployment controller gives up on it after the progress deadline.
	setModelSource(t, model, "m-v2")
	waitPredictorServes(t, ns, "m-predictor", "m-v2", digestOf(v2))
	waitCondition(t, model, freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut)
	// The new pod cannot load the file; its kubelet reports why.
	v2Pod := createPod(t, ns, "m-predictor-v2", predictorSelector(model), time.Minute, true)
	markDeploymentProgressDeadlineExceeded(t, ns, "m-predictor")

	// The operator puts v1 back, says so, and is not Ready: it serves, but not the spec.
	waitPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	waitCondition(t, model, freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonRolloutFailed)
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonRolloutFailed)
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.EventReasonRolledBack)
	// Alerts see it too: the rollback counter and the Degraded condition gauge.
	ids := map[string]string{"namespace": ns, "name": "m"}
	if v, ok := metricValue(t, "freightcast_model_rollbacks_total", ids); v != 1 {
		t.Errorf("freightcast_model_rollbacks_total = %v (exists: %v), want 1", v, ok)
	}
	// The condition gauge reads the operator's cache at scrape time, which follows the API server.
	waitConditionMetric(t, "PredictionModel", ns, "m", "Degraded", 1)
	f := model.Status.FailedRollout
	if f == nil || f.Generation != model.Generation || f.Revision.Source.ConfigMap == nil || f.Revision.Source.ConfigMap.Name != "m-v2" || f.Revision.Digest != digestOf(v2) {
		t.Fatalf("failedRollout = %+v", f)
	}
	degraded := meta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionDegraded)
	for _, want := range []string{"ConfigMap m-v2", "has timed out progressing", "rolled back to ConfigMap m-v1",
		"pod m-predictor-v2 container server: CrashLoopBackOff", "model: bad magic"} {
		if !strings.Contains(degraded.Message, want) {
			t.Errorf("Degraded message %q lacks %q", degraded.Message, want)
		}
	}

	// The rollback completes (the Deployment controller scales the failed revision's pod away);
	// the operator stays on v1 (no flapping back to v2).
	if err := k8s.Delete(ctx, v2Pod); err != nil {
		t.Fatal(err)
	}
	markDeploymentRolledOut(t, ns, "m-predictor")
	testenv.Eventually(t, 10*time.Second, "status names the served v1 digest", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if model.Status.ModelDigest != digestOf(modelBytes) || model.Status.ReadyReplicas != 1 {
			return fmt.Errorf("modelDigest %q readyReplicas %d", model.Status.ModelDigest, model.Status.ReadyReplicas)
		}
		return nil
	})
	// The reconcile that wrote that status applied the pods' template just before: still v1. So
	// does the next one, which a change to a child by someone else brings.
	assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	runs := reconcileCount(t, "predictionmodel")
	labelByHand(t, ns, "m-predictor", &corev1.Service{})
	waitReconciles(t, "predictionmodel", runs)
	assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonRolloutFailed)
	if lg := model.Status.LastGoodRevision; lg == nil || lg.Source.ConfigMap.Name != "m-v1" {
		t.Errorf("lastGoodRevision = %+v while rolled back, want v1", lg)
	}

	// A new spec is tried again, and once it rolls out it is the new last good revision.
	setModelSource(t, model, "m-v3")
	waitPredictorServes(t, ns, "m-predictor", "m-v3", digestOf(v3))
	waitCondition(t, model, freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut)
	waitCondition(t, model, freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected)
	if model.Status.FailedRollout != nil {
		t.Errorf("failedRollout = %+v after a new spec", model.Status.FailedRollout)
	}
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
	waitConditionMetric(t, "PredictionModel", ns, "m", "Degraded", 0)
	if v, _ := metricValue(t, "freightcast_model_rollbacks_total", ids); v != 1 {
		t.Errorf("freightcast_model_rollbacks_total = %v after v3 rolled out, want still 1", v)
	}
	if lg := model.Status.LastGoodRevision; lg == nil || lg.Source.ConfigMap.Name != "m-v3" || model.Status.ModelDigest != digestOf(v3) {
		t.Errorf("lastGoodRevision = %+v, modelDigest %q after v3 rolled out", lg, model.Status.ModelDigest)
	}
}

// staleModelClient answers reads of one PredictionModel with an older copy of it, as an informer
// cache does for a moment after the operator wrote the model's status.
type staleModelClient struct {
	client.Client
	stale *freightcastv1alpha1.PredictionModel
}

func (c staleModelClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if m, ok := obj.(*freightcastv1alpha1.PredictionModel); ok && key == client.ObjectKeyFromObject(c.stale) {
		c.stale.DeepCopyInto(m)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestRollbackHoldsAgainstAStaleCache: a reconcile that reads the model from a cache that does not
// hold its rollback record yet must not roll the failed revision out again. It is checked against
// the API server before the pods' template moves.
func TestRollbackHoldsAgainstAStaleCache(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	v2 := append(slices.Clone(modelBytes), []byte("-v2-does-not-load")...)
	model := newModel(ns, "m", "m-v2")
	mustCreate(t, newModelConfigMap(ns, "m-v1", modelBytes), newModelConfigMap(ns, "m-v2", v2), model)
	stale := model.DeepCopy()

	// What the operator wrote when it rolled v2 back: the record in status, the pods on v1.
	lastGood := freightcastv1alpha1.ModelRevision{Source: freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "m-v1", Key: "model.onnx"}},
		Version: "1", Digest: digestOf(modelBytes)}
	model.Status = freightcastv1alpha1.PredictionModelStatus{ObservedGeneration: model.Generation, ModelDigest: digestOf(modelBytes), LastGoodRevision: &lastGood,
		FailedRollout: &freightcastv1alpha1.FailedRollout{Generation: model.Generation, Revision: spec.SpecRevision(model, digestOf(v2)), Message: "timed out"}}
	if err := k8s.Status().Update(ctx, model); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Apply(ctx, desiredPredictorDeployment(model, lastGood, testOptions), client.FieldOwner(PredictionModelFieldOwner), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}

	m, err := metrics.NewModels(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	clk := testingclock.NewFakeClock(time.Now())
	r := &PredictionModelReconciler{Client: staleModelClient{Client: k8s, stale: stale}, APIReader: k8s, Recorder: events.NewFakeRecorder(100),
		Clock: clk, Options: testOptions, Metrics: m, sources: sourceReads{apiReader: k8s},
		restarter: &podRestarter{Client: k8s, APIReader: k8s, Recorder: events.NewFakeRecorder(100), Clock: clk, Threshold: time.Hour, Interval: time.Hour}}
	_, err = r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(model)})
	assertPredictorServes(t, ns, "m-predictor", "m-v1", digestOf(modelBytes))
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
		t.Fatal(err)
	}
	if f := model.Status.FailedRollout; f == nil || f.Revision.Digest != digestOf(v2) {
		t.Errorf("failedRollout = %+v after a reconcile from a stale cache, want the v2 record kept", f)
	}
}
