package controllers

import (
	"errors"
	"fmt"
	"testing"

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
	cases := map[string]struct {
		natsURL  string
		queueErr error
		want     string
	}{
		"no server":   {want: "False/QueueNotConfigured: spec.queue.url is empty and the operator has no default NATS URL (--default-nats-url)"},
		"unreachable": {natsURL: "nats://q:4222", queueErr: fmt.Errorf("%w: dial tcp: refused", queue.ErrUnreachable), want: "False/NATSUnreachable: NATS JetStream unreachable: dial tcp: refused"},
		"refused":     {natsURL: "nats://q:4222", queueErr: errors.New("insufficient resources"), want: "False/ProvisionFailed: insufficient resources"},
		"provisioned": {natsURL: "nats://q:4222", want: "True/Provisioned: stream s and consumer ready on nats://q:4222"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := setterWith()
			setQueueReady(c, tc.natsURL, tc.queueErr, "s")
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionQueueReady)); diff != "" {
				t.Errorf("QueueReady (-want +got):\n%s", diff)
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
		sourceErr  error
		rolledBack string
		p          rollout
		want       string
	}{
		"source missing":  {sourceErr: &errSourceNotFound{msg: "ConfigMap m not found"}, want: "False/SourceNotFound: ConfigMap m not found"},
		"source invalid":  {sourceErr: &errSourceInvalid{msg: "empty"}, p: rollout{exists: true, complete: true, ready: 1}, want: "False/SourceInvalid: empty"},
		"rolled back":     {rolledBack: "v2 failed", p: rollout{exists: true, complete: true, ready: 1}, want: "False/RolloutFailed: v2 failed"},
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
			setModelLoaded(c, tc.sourceErr, tc.rolledBack, tc.p)
			if diff := cmp.Diff(tc.want, condition(c, freightcastv1alpha1.ConditionModelLoaded)); diff != "" {
				t.Errorf("ModelLoaded (-want +got):\n%s", diff)
			}
		})
	}
}
