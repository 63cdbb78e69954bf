package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
)

var testNow = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// summary reduces conditions to "Status/Reason" by type, what the tables below compare.
func summary(conds []metav1.Condition) map[string]string {
	out := map[string]string{}
	for _, c := range conds {
		out[c.Type] = string(c.Status) + "/" + c.Reason
	}
	return out
}

func TestRolloutOf(t *testing.T) {
	t.Parallel()
	deployment := func(gen, observed int64, spec, replicas, updated, ready int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "d", Generation: gen, CreationTimestamp: metav1.NewTime(testNow)},
			Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(spec)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated,
				ReadyReplicas: ready, Conditions: conds},
		}
	}
	cases := map[string]struct {
		d       *appsv1.Deployment
		changed bool
		want    rollout
	}{
		"not created": {d: &appsv1.Deployment{}, want: rollout{message: "Deployment not created yet"}},
		"complete": {d: deployment(2, 2, 3, 3, 3, 3),
			want: rollout{exists: true, desired: 3, replicas: 3, updated: 3, ready: 3, complete: true}},
		"just written by us": {d: deployment(2, 2, 3, 3, 3, 3), changed: true,
			want: rollout{exists: true, desired: 3, replicas: 3, updated: 3, ready: 3,
				message: "Deployment d: waiting for the Deployment controller to observe the new spec"}},
		"not observed": {d: deployment(3, 2, 3, 3, 3, 3),
			want: rollout{exists: true, desired: 3, replicas: 3, updated: 3, ready: 3,
				message: "Deployment d: waiting for the Deployment controller to observe the new spec"}},
		"old pods left": {d: deployment(2, 2, 2, 3, 2, 3),
			want: rollout{exists: true, desired: 2, replicas: 3, updated: 2, ready: 3, message: "Deployment d: 2 of 2 pods updated, 3 ready"}},
		"stalled": {d: deployment(2, 2, 2, 2, 1, 1, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing,
			Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "ReplicaSet d-2 has timed out progressing."}),
			want: rollout{exists: true, desired: 2, replicas: 2, updated: 1, ready: 1, stalled: true,
				message: "Deployment d: ReplicaSet d-2 has timed out progressing."}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, rolloutOf(tc.d, tc.changed), cmp.AllowUnexported(rollout{})); diff != "" {
				t.Errorf("rolloutOf (-want +got):\n%s", diff)
			}
		})
	}
}

func TestModelStatus(t *testing.T) {
	t.Parallel()
	done := rollout{exists: true, desired: 2, replicas: 2, updated: 2, ready: 2, complete: true}
	revision := func(cm, digest string) *freightcastv1alpha1.ModelRevision {
		return &freightcastv1alpha1.ModelRevision{
			Source:  freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: cm}},
			Version: "1", Digest: digest,
		}
	}
	good, bad := revision("m-onnx", "sha256:aa"), revision("m-v2", "sha256:bb")
	failed := &freightcastv1alpha1.FailedRollout{Generation: 4, Revision: *bad, Message: "Deployment m-predictor: ReplicaSet has timed out progressing."}
	cases := map[string]struct {
		status       freightcastv1alpha1.PredictionModelStatus // before
		obs          modelObservation
		want         map[string]string
		wantDigest   string
		wantLastGood *freightcastv1alpha1.ModelRevision
		wantFailed   *freightcastv1alpha1.FailedRollout
	}{
		"source not found": {
			obs: modelObservation{sourceErr: &errSourceNotFound{msg: "ConfigMap m not found"}},
			want: map[string]string{"Ready": "False/SourceNotFound", "ModelLoaded": "False/SourceNotFound",
				"Degraded": "True/SourceNotFound", "Progressing": "False/SourceNotFound"},
		},
		"source invalid keeps the old pods serving": {
			obs: modelObservation{sourceErr: &errSourceInvalid{msg: "empty"}, predictor: done},
			want: map[string]string{"Ready": "False/SourceInvalid", "ModelLoaded": "False/SourceInvalid",
				"Degraded": "True/SourceInvalid", "Progressing": "False/SourceInvalid"},
		},
		"just created": {
			obs: modelObservation{digest: "sha256:aa", served: good, predictor: rollout{message: "Deployment not created yet"}},
			want: map[string]string{"Ready": "False/Loading", "ModelLoaded": "False/Loading",
				"Degraded": "False/AsExpected", "Progressing": "True/RollingOut"},
		},
		"rolled out: the revision becomes the last good one": {
			obs: modelObservation{digest: "sha256:aa", served: good, predictor: done},
			want: map[string]string{"Ready": "True/Available", "ModelLoaded": "True/Loaded",
				"Degraded": "False/AsExpected", "Progressing": "False/Reconciled"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
		},
		"scaled to zero": {
			obs: modelObservation{digest: "sha256:aa", served: good, predictor: rollout{exists: true, complete: true}},
			want: map[string]string{"Ready": "False/ScaledToZero", "ModelLoaded": "False/ScaledToZero",
				"Degraded": "False/AsExpected", "Progressing": "False/Reconciled"},
			wantDigest: "sha256:aa",
		},
		"rollout stalled with nothing to roll back to": {
			obs: modelObservation{digest: "sha256:bb", served: bad, predictor: rollout{exists: true, desired: 2, replicas: 3, ready: 2, stalled: true, message: "timed out"}},
			want: map[string]string{"Ready": "False/ProgressDeadlineExceeded", "ModelLoaded": "False/ProgressDeadlineExceeded",
				"Degraded": "True/ProgressDeadlineExceeded", "Progressing": "False/ProgressDeadlineExceeded"},
		},
		"rolling out a new revision keeps the last good one and the served digest": {
			status: freightcastv1alpha1.PredictionModelStatus{ModelDigest: "sha256:aa", LastGoodRevision: good},
			obs:    modelObservation{digest: "sha256:bb", served: bad, predictor: rollout{exists: true, desired: 2, replicas: 3, updated: 1, ready: 2, message: "1 of 2 updated"}},
			want: map[string]string{"Ready": "False/Loading", "ModelLoaded": "False/Loading",
				"Degraded": "False/AsExpected", "Progressing": "True/RollingOut"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
		},
		"rolled back: serving the last good revision is not Ready": {
			status: freightcastv1alpha1.PredictionModelStatus{ModelDigest: "sha256:aa", LastGoodRevision: good},
			obs:    modelObservation{digest: "sha256:bb", served: good, failed: failed, predictor: done},
			want: map[string]string{"Ready": "False/RolloutFailed", "ModelLoaded": "False/RolloutFailed",
				"Degraded": "True/RolloutFailed", "Progressing": "False/RolloutFailed"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
			wantFailed:   failed,
		},
		"a new revision after a rollback clears the record": {
			status: freightcastv1alpha1.PredictionModelStatus{ModelDigest: "sha256:aa", LastGoodRevision: good, FailedRollout: failed},
			obs:    modelObservation{digest: "sha256:cc", served: revision("m-v3", "sha256:cc"), predictor: rollout{exists: true, desired: 2, replicas: 3, ready: 2, message: "rolling"}},
			want: map[string]string{"Ready": "False/Loading", "ModelLoaded": "False/Loading",
				"Degraded": "False/AsExpected", "Progressing": "True/RollingOut"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
		},
		"a reconcile cut short keeps the rollback record": {
			status: freightcastv1alpha1.PredictionModelStatus{ModelDigest: "sha256:aa", LastGoodRevision: good, FailedRollout: failed},
			obs:    modelObservation{applyErr: errors.New("forbidden")},
			want: map[string]string{"Ready": "False/ApplyFailed", "ModelLoaded": "False/RolloutFailed",
				"Degraded": "True/ApplyFailed", "Progressing": "False/ApplyFailed"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
			wantFailed:   failed,
		},
		"every pod counted ready, but one crash-loops between two checks": {
			obs: modelObservation{digest: "sha256:aa", served: good, predictor: done, crashLooping: []string{"pod m-1 container server"}},
			want: map[string]string{"Ready": "False/CrashLoopBackOff", "ModelLoaded": "True/Loaded",
				"Degraded": "False/AsExpected", "Progressing": "False/Reconciled"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
		},
		"apply failed": {
			obs: modelObservation{digest: "sha256:aa", served: good, predictor: done, applyErr: errors.New("forbidden")},
			want: map[string]string{"Ready": "False/ApplyFailed", "ModelLoaded": "True/Loaded",
				"Degraded": "True/ApplyFailed", "Progressing": "False/Reconciled"},
			wantDigest:   "sha256:aa",
			wantLastGood: good,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "m", "m-onnx")
			m.Generation = 4
			m.Status = tc.status
			st := modelStatus(m, tc.obs, testNow)
			if diff := cmp.Diff(tc.want, summary(st.Conditions)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if st.ModelDigest != tc.wantDigest || st.ObservedGeneration != 4 {
				t.Errorf("modelDigest %q observedGeneration %d", st.ModelDigest, st.ObservedGeneration)
			}
			if diff := cmp.Diff(tc.wantLastGood, st.LastGoodRevision); diff != "" {
				t.Errorf("lastGoodRevision (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantFailed, st.FailedRollout); diff != "" {
				t.Errorf("failedRollout (-want +got):\n%s", diff)
			}
			for _, c := range st.Conditions {
				if c.ObservedGeneration != 4 || !c.LastTransitionTime.Time.Equal(testNow) {
					t.Errorf("condition %s: observedGeneration %d, lastTransitionTime %v", c.Type, c.ObservedGeneration, c.LastTransitionTime)
				}
			}
			if tc.wantFailed != nil {
				msg := meta.FindStatusCondition(st.Conditions, "ModelLoaded").Message
				for _, want := range []string{"ConfigMap m-v2", "sha256:bb", "timed out progressing", "rolled back to ConfigMap m-onnx"} {
					if !strings.Contains(msg, want) {
						t.Errorf("ModelLoaded message %q lacks %q", msg, want)
					}
				}
			}
		})
	}
}

func TestModelStatusKeepsTransitionTimes(t *testing.T) {
	t.Parallel()
	m := newModel("ns", "m", "m-onnx")
	done := rollout{exists: true, desired: 1, replicas: 1, updated: 1, ready: 1, complete: true}
	m.Status = modelStatus(m, modelObservation{predictor: done}, testNow)
	later := modelStatus(m, modelObservation{predictor: done}, testNow.Add(time.Hour))
	for _, c := range later.Conditions {
		if !c.LastTransitionTime.Time.Equal(testNow) {
			t.Errorf("%s moved its lastTransitionTime to %v without changing", c.Type, c.LastTransitionTime)
		}
	}
}

func loadedTestModel() *freightcastv1alpha1.PredictionModel {
	m := newModel("ns", "m", "m-onnx")
	m.Generation = 1
	m.Status.Conditions = []metav1.Condition{{Type: "ModelLoaded", Status: metav1.ConditionTrue, Reason: "Loaded", ObservedGeneration: 1}}
	return m
}

func TestPipelineStatus(t *testing.T) {
	t.Parallel()
	ready := func(n int32) rollout {
		return rollout{exists: true, desired: n, replicas: n, updated: n, ready: n, complete: true}
	}
	notLoaded := newModel("ns", "m", "m-onnx")
	notLoaded.Generation = 2
	notLoaded.Status.Conditions = []metav1.Condition{{Type: "ModelLoaded", Status: metav1.ConditionFalse, Reason: "Loading", ObservedGeneration: 2}}
	unreachable := fmt.Errorf("%w: dial tcp: refused", queue.ErrUnreachable)
	cannotLoad := notLoaded.DeepCopy()
	cannotLoad.Status.Conditions = []metav1.Condition{{Type: "ModelLoaded", Status: metav1.ConditionFalse, Reason: "UnsupportedModel", Message: "operator SVMClassifier", ObservedGeneration: 2}}
	failedInPods := notLoaded.DeepCopy()
	failedInPods.Status.Conditions = []metav1.Condition{{Type: "ModelLoaded", Status: metav1.ConditionFalse, Reason: "ModelLoadFailed", Message: "exit 78", ObservedGeneration: 2}}
	healthy := queueObservation{natsURL: "nats://q:4222", stream: "s", replicas: 1, health: &queue.StreamHealth{Replicas: 1, Leader: "n1"}}
	failed := func(err error) queueObservation { q := healthy; q.health, q.err = nil, err; return q }
	converging := healthy
	converging.replicas, converging.converging = 3, true
	runtimeReady := loadedTestModel()
	runtimeReady.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "mlserver:1.6"}
	runtimeReady.Status.ReadyReplicas = 1
	runtimeDown := runtimeReady.DeepCopy()
	runtimeDown.Status.ReadyReplicas = 0
	runtimeDown.Status.Conditions = []metav1.Condition{{Type: "ModelLoaded", Status: metav1.ConditionFalse, Reason: "Loading", ObservedGeneration: 1}}
	runtimeNoFeatures := runtimeReady.DeepCopy()
	runtimeNoFeatures.Spec.Features = nil

	cases := map[string]struct {
		minReplicas int32
		obs         pipelineObservation
		want        map[string]string
	}{
		"model missing": {
			obs: pipelineObservation{queue: healthy},
			want: map[string]string{"Ready": "False/ModelNotFound", "Degraded": "False/AsExpected", "Progressing": "False/Reconciling",
				"QueueReady": "True/Provisioned", "IngestionReady": "False/ModelNotFound", "InferenceReady": "False/ModelNotFound"},
		},
		"model not loaded, pods already running": {
			obs: pipelineObservation{queue: healthy, model: notLoaded, ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/ModelNotReady", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "False/ModelNotReady"},
		},
		"model cannot load, no pods yet": {
			obs: pipelineObservation{queue: healthy, model: cannotLoad},
			want: map[string]string{"Ready": "False/UnsupportedModel", "Degraded": "True/UnsupportedModel", "Progressing": "False/UnsupportedModel",
				"QueueReady": "True/Provisioned", "IngestionReady": "False/UnsupportedModel", "InferenceReady": "False/UnsupportedModel"},
		},
		"model cannot load, pods on the last good revision": {
			obs: pipelineObservation{queue: healthy, model: failedInPods, ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/ModelLoadFailed", "Degraded": "True/ModelLoadFailed", "Progressing": "False/ModelLoadFailed",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "False/ModelLoadFailed"},
		},
		"scoring through another runtime": {
			obs: pipelineObservation{queue: healthy, model: runtimeReady, ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "True/PipelineReady", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"the other runtime has no ready pod": {
			obs: pipelineObservation{queue: healthy, model: runtimeDown, ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/ModelUnavailable", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "False/ModelUnavailable"},
		},
		"another runtime's model without spec.features": {
			obs: pipelineObservation{queue: healthy, model: runtimeNoFeatures},
			want: map[string]string{"Ready": "False/ModelFeaturesUndeclared", "Degraded": "True/ModelFeaturesUndeclared", "Progressing": "False/ModelFeaturesUndeclared",
				"QueueReady": "True/Provisioned", "IngestionReady": "False/ModelFeaturesUndeclared", "InferenceReady": "False/ModelFeaturesUndeclared"},
		},
		"no NATS configured": {
			obs: pipelineObservation{model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/QueueNotConfigured", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "False/QueueNotConfigured", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"NATS unreachable": {
			obs: pipelineObservation{queue: failed(unreachable), model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/NATSUnreachable", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "False/NATSUnreachable", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"NATS refuses the stream": {
			obs: pipelineObservation{queue: failed(errors.New("insufficient resources")), model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/ProvisionFailed", "Degraded": "True/ProvisionFailed", "Progressing": "False/ProvisionFailed",
				"QueueReady": "False/ProvisionFailed", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"the store is full": {
			obs: pipelineObservation{queue: failed(&queue.InsufficientStorageError{Pipeline: "ns/orders", Needed: 3 << 30, MaxBytes: 1 << 30, Replicas: 1, Capacity: queue.Capacity{Limit: -1}}),
				model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/InsufficientStorage", "Degraded": "True/InsufficientStorage", "Progressing": "False/InsufficientStorage",
				"QueueReady": "False/InsufficientStorage", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"no quorum is not degraded: it heals by itself": {
			obs: pipelineObservation{queue: failed(fmt.Errorf("%w: %w", queue.ErrUnreachable, queue.ErrNoQuorum)), model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "False/NoQuorum", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "False/NoQuorum", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"replicas changing": {
			obs: pipelineObservation{queue: converging, model: loadedTestModel(), ingestion: ready(2), inference: ready(1)},
			want: map[string]string{"Ready": "True/PipelineReady", "Degraded": "False/AsExpected", "Progressing": "True/Converging",
				"QueueReady": "True/Converging", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"all ready": {
			obs: pipelineObservation{queue: healthy, model: loadedTestModel(), ingestion: ready(2), inference: ready(3)},
			want: map[string]string{"Ready": "True/PipelineReady", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "True/Available"},
		},
		"scaled to zero on purpose": {
			minReplicas: 0,
			obs:         pipelineObservation{queue: healthy, model: loadedTestModel(), ingestion: ready(2), inference: ready(0)},
			want: map[string]string{"Ready": "True/PipelineReady", "Degraded": "False/AsExpected", "Progressing": "False/Reconciled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "True/ScaledToZero"},
		},
		"zero workers with minReplicas 1": {
			minReplicas: 1,
			obs: pipelineObservation{queue: healthy, model: loadedTestModel(), ingestion: ready(2),
				inference: rollout{exists: true, desired: 1, message: "Deployment d: 0 of 1 pods updated, 0 ready"}},
			want: map[string]string{"Ready": "False/Unavailable", "Degraded": "False/AsExpected", "Progressing": "True/RollingOut",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "False/Unavailable"},
		},
		"ingestion stalled": {
			obs: pipelineObservation{queue: healthy, model: loadedTestModel(), ingestion: rollout{exists: true, desired: 2, stalled: true, message: "timed out"}, inference: ready(1)},
			want: map[string]string{"Ready": "False/ProgressDeadlineExceeded", "Degraded": "True/ProgressDeadlineExceeded", "Progressing": "False/ProgressDeadlineExceeded",
				"QueueReady": "True/Provisioned", "IngestionReady": "False/ProgressDeadlineExceeded", "InferenceReady": "True/Available"},
		},
		"backlog with no ready worker past the threshold": {
			minReplicas: 1,
			obs: pipelineObservation{queue: healthy, model: loadedTestModel(), ingestion: ready(2),
				inference:  rollout{exists: true, desired: 3, replicas: 3, updated: 3, message: "Deployment d: 3 of 3 pods updated, 0 ready"},
				queueStall: &queueStall{since: testNow.Add(-time.Minute)}},
			want: map[string]string{"Ready": "False/QueueStalled", "Degraded": "True/QueueStalled", "Progressing": "False/QueueStalled",
				"QueueReady": "True/Provisioned", "IngestionReady": "True/Available", "InferenceReady": "False/Unavailable"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline("ns", "orders", "m")
			p.Generation = 3
			p.Spec.Inference.MinReplicas = ptr.To(tc.minReplicas)
			st := pipelineStatus(p, tc.obs, testNow)
			if diff := cmp.Diff(tc.want, summary(st.Conditions)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if st.ObservedGeneration != 3 || st.IngestionEndpoint != "http://orders-ingest.ns.svc:8080/v1/events" {
				t.Errorf("status = %+v", st)
			}
		})
	}
}

func TestRecordConditionChanges(t *testing.T) {
	t.Parallel()
	cond := func(typ, status, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: "m"}
	}
	cases := map[string]struct {
		before, after []metav1.Condition
		want          []string
	}{
		"first sight of not-yet states is quiet": {
			after: []metav1.Condition{cond("Ready", "False", "Loading"), cond("Degraded", "False", "AsExpected"), cond("Progressing", "True", "RollingOut")},
		},
		"first sight of a failure warns": {
			after: []metav1.Condition{cond("Degraded", "True", "SourceNotFound")},
			want:  []string{"Warning SourceNotFound Degraded=True: m"},
		},
		"becoming ready is news": {
			before: []metav1.Condition{cond("Ready", "False", "Loading")},
			after:  []metav1.Condition{cond("Ready", "True", "Available")},
			want:   []string{"Normal Available Ready=True: m"},
		},
		"losing readiness warns": {
			before: []metav1.Condition{cond("QueueReady", "True", "Provisioned")},
			after:  []metav1.Condition{cond("QueueReady", "False", "NATSUnreachable")},
			want:   []string{"Warning NATSUnreachable QueueReady=False: m"},
		},
		"recovery from degraded": {
			before: []metav1.Condition{cond("Degraded", "True", "SourceNotFound")},
			after:  []metav1.Condition{cond("Degraded", "False", "AsExpected")},
			want:   []string{"Normal AsExpected Degraded=False: m"},
		},
		"unchanged is silent": {
			before: []metav1.Condition{cond("Ready", "True", "Available")},
			after:  []metav1.Condition{cond("Ready", "True", "Available")},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rec := events.NewFakeRecorder(10)
			recordConditionChanges(rec, newModel("ns", "m", "cm"), tc.before, tc.after)
			close(rec.Events)
			var got []string
			for e := range rec.Events {
				got = append(got, e)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}
