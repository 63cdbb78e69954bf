package controllers

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/queue"
)

// The condition setters one by one; TestPipelineStatus and TestModelStatus check them together.

// condition is what these tables compare of a condition: "Status/Reason: message".
func condition(c *conditionSetter, condType string) string {
	got := c.get(condType)
	if got == nil {
		return "absent"
	}
	return fmt.Sprintf("%s/%s: %s", got.Status, got.Reason, got.Message)
}

// setterWith is a condition setter whose list already holds conds.
func setterWith(conds ...metav1.Condition) *conditionSetter {
	return newConditionSetter(conds, 1, testNow)
}

func TestSetDegraded(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		problems []problem
		want     string
	}{
		"no problem":            {want: "False/AsExpected: "},
		"only empty problems":   {problems: []problem{{}, {}}, want: "False/AsExpected: "},
		"the first one wins":    {problems: []problem{{}, {"ApplyFailed", "forbidden"}, {"QueueStalled", "since 9:00"}}, want: "True/ApplyFailed: forbidden"},
		"a single problem says": {problems: []problem{{"QueueStalled", "since 9:00"}}, want: "True/QueueStalled: since 9:00"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith()
			setDegraded(c, tc.problems...)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionDegraded)); diff != "" {
				t.Errorf("Degraded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetProgressing(t *testing.T) {
	t.Parallel()
	degraded := metav1.Condition{Type: freightcastv1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "RolloutFailed", Message: "v2 timed out"}
	cases := map[string]struct {
		blocked          bool
		rolling, settled problem
		want             string
	}{
		"blocked takes Degraded's reason": {blocked: true, rolling: problem{"RollingOut", "1 of 2"}, settled: problem{"Reconciled", "done"},
			want: "False/RolloutFailed: not progressing: v2 timed out"},
		"rolling out":   {rolling: problem{"RollingOut", "1 of 2 updated"}, settled: problem{"Reconciled", "done"}, want: "True/RollingOut: 1 of 2 updated"},
		"settled":       {settled: problem{"Reconciled", "the pods run the current spec"}, want: "False/Reconciled: the pods run the current spec"},
		"still waiting": {settled: problem{"Reconciling", "waiting: model"}, want: "False/Reconciling: waiting: model"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith(degraded)
			setProgressing(c, tc.blocked, tc.rolling, tc.settled)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionProgressing)); diff != "" {
				t.Errorf("Progressing (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetReady(t *testing.T) {
	t.Parallel()
	ready := problem{"Available", "serving at http://m"}
	cases := map[string]struct {
		degraded metav1.ConditionStatus
		blockers []problem
		want     string
	}{
		"serving":                   {degraded: metav1.ConditionFalse, want: "True/Available: serving at http://m"},
		"Degraded comes first":      {degraded: metav1.ConditionTrue, blockers: []problem{{"Loading", "1 of 2"}}, want: "False/SourceNotFound: ConfigMap m missing"},
		"the first blocker":         {degraded: metav1.ConditionFalse, blockers: []problem{{}, {"Loading", "1 of 2"}, {"CrashLoopBackOff", "pod m-1"}}, want: "False/Loading: 1 of 2"},
		"empty blockers block none": {degraded: metav1.ConditionFalse, blockers: []problem{{}, {}}, want: "True/Available: serving at http://m"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith(metav1.Condition{Type: freightcastv1alpha1.ConditionDegraded, Status: tc.degraded, Reason: "SourceNotFound", Message: "ConfigMap m missing"})
			setReady(c, ready, tc.blockers...)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionReady)); diff != "" {
				t.Errorf("Ready (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetQueueReady(t *testing.T) {
	t.Parallel()
	const url = "nats://q:4222"
	r3 := &queue.StreamHealth{Stream: "s", Replicas: 3, Leader: "n1", Followers: []queue.Peer{{Name: "n2", Current: true}, {Name: "n3", Current: true}}}
	lagging := &queue.StreamHealth{Stream: "s", Replicas: 3, Leader: "n1", Followers: []queue.Peer{{Name: "n2", Current: true}, {Name: "n3", Offline: true}}}
	full := &queue.InsufficientStorageError{Pipeline: "ns/p", Needed: 3 << 30, MaxBytes: 1 << 30, Replicas: 1,
		Capacity: queue.Capacity{Limit: 2 << 30, LimitFrom: "max_file_store of 2 GiB on each of 1 server(s)", Reserved: 1 << 30, Streams: []queue.Stream{{Name: "x"}}, Where: "NATS at " + url}}
	until := time.Date(2026, 11, 27, 8, 10, 0, 0, time.UTC)
	cases := map[string]struct {
		q    queueObservation
		want string
	}{
		"no server": {q: queueObservation{stream: "s"},
			want: "False/QueueNotConfigured: spec.queue.url is empty and the operator has no default NATS URL (--default-nats-url)"},
		"unreachable": {q: queueObservation{natsURL: url, stream: "s", replicas: 1, err: fmt.Errorf("%w: dial tcp: refused", queue.ErrUnreachable)},
			want: "False/NATSUnreachable: NATS JetStream unreachable: dial tcp: refused"},
		"no quorum is told apart from unreachable": {q: queueObservation{natsURL: url, stream: "s", replicas: 3, err: fmt.Errorf("stream s: %w: %w: it has no leader", queue.ErrUnreachable, queue.ErrNoQuorum)},
			want: "False/NoQuorum: the stream has no leader: fewer than a majority of its 3 replicas' servers are up, or they are electing one; ingestion answers 503 meanwhile: stream s: NATS JetStream unreachable: no quorum: it has no leader"},
		"insufficient storage, with the numbers": {q: queueObservation{natsURL: url, stream: "s", replicas: 1, err: full},
			want: "False/InsufficientStorage: " + full.Error() + "; nothing of the pipeline was created and ingestion answers 503 until it fits"},
		"more replicas than servers": {q: queueObservation{natsURL: url, stream: "s", replicas: 3, err: fmt.Errorf("%w: replicas > 1 not supported in non-clustered mode", queue.ErrNotEnoughServers)},
			want: "False/NotEnoughServers: spec.queue.replicas (or the operator's --default-queue-replicas) asks for 3 servers, more than the NATS cluster offers: not enough servers: replicas > 1 not supported in non-clustered mode"},
		"refused otherwise": {q: queueObservation{natsURL: url, stream: "s", replicas: 1, err: errors.New("permissions violation")},
			want: "False/ProvisionFailed: permissions violation"},
		"provisioned": {q: queueObservation{natsURL: url, stream: "s", replicas: 3, health: r3},
			want: "True/Provisioned: stream s on nats://q:4222 and its consumer ready at 3 replica(s), led by n1"},
		"a follower offline": {q: queueObservation{natsURL: url, stream: "s", replicas: 3, health: lagging},
			want: "True/Provisioned: stream s on nats://q:4222 ready at 3 replica(s), led by n1; behind or offline: n3"},
		"scaling up": {q: queueObservation{natsURL: url, stream: "s", replicas: 5, converging: true, health: lagging},
			want: "True/Converging: stream s on nats://q:4222 accepts events; its replicas are changing from 3 to 5 (leader n1, catching up: n3)"},
		"deleting: ingestion stopping": {q: queueObservation{natsURL: url, stream: "s", deletion: &queueDeletion{stoppingIngestion: true}},
			want: "False/Reconciling: deleting: waiting for the ingestion pods to stop before stream s is checked for pending events and deleted"},
		"deleting: events pending": {q: queueObservation{natsURL: url, stream: "s", deletion: &queueDeletion{pending: 7}},
			want: "False/PendingEvents: deleting: stream s still holds 7 event(s) without a prediction, and spec.queue.pendingEventsOnDelete is Wait: the streams are deleted once the inference pool has predicted them. To finish now: set pendingEventsOnDelete: Drop to delete them, or deletionPolicy: Retain to keep the streams on NATS"},
		"deleting: NATS unreachable": {q: queueObservation{natsURL: url, stream: "s", replicas: 1, err: fmt.Errorf("%w: timeout", queue.ErrUnreachable), deletion: &queueDeletion{retryUntil: until}},
			want: "False/NATSUnreachable: deleting stream s: NATS JetStream unreachable: timeout; retried until 2026-11-27T08:10:00Z, then the streams are left on NATS (see docs/operate.md#streams-without-a-pipeline)"},
		"deleting: refused": {q: queueObservation{natsURL: url, stream: "s", replicas: 1, err: errors.New("permissions violation"), deletion: &queueDeletion{retryUntil: until}},
			want: "False/DeletionFailed: deleting stream s: permissions violation; retried until 2026-11-27T08:10:00Z, then the streams are left on NATS (see docs/operate.md#streams-without-a-pipeline)"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith()
			setQueueReady(c, tc.q)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionQueueReady)); diff != "" {
				t.Errorf("QueueReady (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueueStatus(t *testing.T) {
	t.Parallel()
	prev := &freightcastv1alpha1.QueueStatus{Replicas: 3, Leader: "n1", ReservedBytes: 9 << 20}
	cases := map[string]struct {
		q    queueObservation
		want *freightcastv1alpha1.QueueStatus
	}{
		"the leader's report": {
			q: queueObservation{reserved: 9 << 20, health: &queue.StreamHealth{Replicas: 3, Leader: "n2",
				Followers: []queue.Peer{{Name: "n1", Current: false}, {Name: "n3", Current: true}}}},
			want: &freightcastv1alpha1.QueueStatus{Replicas: 3, Leader: "n2", LaggingReplicas: []string{"n1"}, ReservedBytes: 9 << 20},
		},
		"no quorum: no leader": {q: queueObservation{err: fmt.Errorf("%w: %w", queue.ErrUnreachable, queue.ErrNoQuorum)},
			want: &freightcastv1alpha1.QueueStatus{Replicas: 3, ReservedBytes: 9 << 20}},
		"no answer: what was known": {q: queueObservation{err: queue.ErrUnreachable}, want: prev},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, queueStatus(prev, tc.q)); diff != "" {
				t.Errorf("status.queue (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetStageCondition(t *testing.T) {
	t.Parallel()
	model := problem{"ModelNotReady", "PredictionModel m: Loading"}
	cases := map[string]struct {
		r                rollout
		waiting, blocked problem
		scaledToZero     bool
		want             string
	}{
		"not created, waiting for the model": {r: rollout{message: "Deployment not created yet"}, waiting: model, want: "False/ModelNotReady: PredictionModel m: Loading"},
		"not created yet":                    {r: rollout{message: "Deployment not created yet"}, want: "False/Reconciling: Deployment not created yet"},
		"running, but the model fails":       {r: rollout{exists: true, desired: 1, ready: 1}, blocked: model, want: "False/ModelNotReady: PredictionModel m: Loading"},
		"scaled to zero on purpose":          {r: rollout{exists: true}, scaledToZero: true, want: "True/ScaledToZero: no worker is needed: the queue is empty and minReplicas is 0"},
		"one pod ready is enough":            {r: rollout{exists: true, desired: 3, ready: 1, message: "1 ready"}, want: "True/Available: 1 of 3 pods ready"},
		"stalled":                            {r: rollout{exists: true, desired: 2, stalled: true, message: "timed out"}, want: "False/ProgressDeadlineExceeded: timed out"},
		"no pod ready":                       {r: rollout{exists: true, desired: 2, message: "0 of 2 ready"}, want: "False/Unavailable: 0 of 2 ready"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith()
			setStageCondition(c, freightcastv1alpha1.ConditionInferenceReady, tc.r, tc.waiting, tc.blocked, tc.scaledToZero)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionInferenceReady)); diff != "" {
				t.Errorf("InferenceReady (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetModelLoaded(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		sourceErr error
		failure   problem
		p         rollout
		runtime   *freightcastv1alpha1.RuntimeSpec
		want      string
	}{
		"source missing": {sourceErr: &errSourceNotFound{msg: "ConfigMap m not found"}, want: "False/SourceNotFound: ConfigMap m not found"},
		"another runtime ready": {p: rollout{exists: true, desired: 1, ready: 1, complete: true},
			runtime: &freightcastv1alpha1.RuntimeSpec{Image: "mlserver:1.6", Protocol: freightcastv1alpha1.RuntimeProtocolREST},
			want: "True/Loaded: 1 of 1 serving pods of runtime mlserver:1.6 are ready (Open Inference Protocol REST); " +
				"the operator's checks of the model file against its features and inputs were skipped: they apply to Freightcast's own runtime only"},
		"source invalid": {sourceErr: &errSourceInvalid{msg: "empty"}, p: rollout{exists: true, complete: true, ready: 1}, want: "False/SourceInvalid: empty"},
		"rolled back":    {failure: problem{"RolloutFailed", "v2 failed"}, p: rollout{exists: true, complete: true, ready: 1}, want: "False/RolloutFailed: v2 failed"},
		"refused":        {failure: problem{"UnsupportedModel", "SVMClassifier"}, p: rollout{exists: true, complete: true, ready: 1}, want: "False/UnsupportedModel: SVMClassifier"},
		"pods cannot load it, none served before": {failure: problem{"ModelLoadFailed", "exit 78"}, p: rollout{exists: true, desired: 1, message: "0 of 1 updated"},
			want: "False/ModelLoadFailed: exit 78"},
		"scaled to zero":  {p: rollout{exists: true, complete: true}, want: "False/ScaledToZero: spec.replicas is 0: no pod serves the model"},
		"loaded":          {p: rollout{exists: true, desired: 2, ready: 2, complete: true}, want: "True/Loaded: 2 of 2 serving pods loaded the model"},
		"stalled":         {p: rollout{exists: true, desired: 2, stalled: true, message: "timed out"}, want: "False/ProgressDeadlineExceeded: timed out"},
		"rolling out":     {p: rollout{exists: true, desired: 2, ready: 1, message: "1 of 2 updated"}, want: "False/Loading: 1 of 2 updated"},
		"not created yet": {p: rollout{message: "Deployment not created yet"}, want: "False/Loading: Deployment not created yet"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith()
			setModelLoaded(c, tc.sourceErr, tc.failure, tc.p, tc.runtime)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionModelLoaded)); diff != "" {
				t.Errorf("ModelLoaded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRolloutFailure(t *testing.T) {
	t.Parallel()
	rev := func(cm string) freightcastv1alpha1.ModelRevision {
		return freightcastv1alpha1.ModelRevision{Source: freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: cm}}, Version: "1"}
	}
	v1, v2 := rev("m-v1"), rev("m-v2")
	failed := func(reason, message string, generation int64) *freightcastv1alpha1.FailedRollout {
		return &freightcastv1alpha1.FailedRollout{Generation: generation, Revision: v2, Reason: reason, Message: message}
	}
	cases := map[string]struct {
		f        *freightcastv1alpha1.FailedRollout
		lastGood *freightcastv1alpha1.ModelRevision
		want     problem
	}{
		"none":                     {lastGood: &v1},
		"of an earlier generation": {f: failed("UnsupportedModel", "x", 1), lastGood: &v1},
		"refused, the last good one serves": {f: failed("UnsupportedModel", "operator SVMClassifier of domain ai.onnx.ml is not supported", 2), lastGood: &v1,
			want: problem{"UnsupportedModel", "the model file of ConfigMap m-v2 version 1 cannot load, so no pod was moved to it: operator SVMClassifier of domain ai.onnx.ml is not supported; " +
				"the serving pods stay on ConfigMap m-v1 version 1 until the spec or the model file changes"}},
		"refused, nothing served before": {f: failed("InvalidModel", "truncated", 2),
			want: problem{"InvalidModel", "the model file of ConfigMap m-v2 version 1 cannot load, so no pod was moved to it: truncated; " +
				"no other revision served before it, so nothing serves the model until the spec or the model file changes"}},
		"a pod could not load it, rolled back": {f: failed("ModelLoadFailed", "pod p exited with code 78", 2), lastGood: &v1,
			want: problem{"ModelLoadFailed", "the model of ConfigMap m-v2 version 1 cannot load: pod p exited with code 78; " +
				"the serving pods were rolled back to ConfigMap m-v1 version 1 and stay there until the spec or the model file changes"}},
		"past the progress deadline, recorded before reasons were": {f: failed("", "timed out", 2), lastGood: &v1,
			want: problem{"RolloutFailed", "the rollout of ConfigMap m-v2 version 1 failed: timed out; " +
				"the serving pods were rolled back to ConfigMap m-v1 version 1 and stay there until the spec or the model file changes"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, rolloutFailure(2, tc.f, tc.lastGood), cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("rolloutFailure (-want +got):\n%s", diff)
			}
		})
	}
}
