package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// loadedModel creates a model with its ConfigMap and plays the serving pods loading it.
func loadedModel(t testing.TB, ns, name string) *freightcastv1alpha1.PredictionModel {
	t.Helper()
	model := newModel(ns, name, name+"-onnx")
	mustCreate(t, newModelConfigMap(ns, name+"-onnx", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, name+"-predictor")
	markDeploymentRolledOut(t, ns, name+"-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	return model
}

func TestFreightPipelineProvisionsQueueAndChildren(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "delay-risk")
	p := newPipeline(ns, "orders", "delay-risk")
	mustCreate(t, p)

	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
	waitEvent(t, p, corev1.EventTypeNormal, "QueueProvisioned")
	topo := queue.TopologyFor(ns, "orders")
	js := jetStreamFor(t, srv.URL())
	stream, err := js.Stream(ctx, topo.Stream)
	if err != nil {
		t.Fatalf("the pipeline's stream is not on the server: %v", err)
	}
	if cfg := stream.CachedInfo().Config; cfg.MaxMsgs != 1_000_000 || cfg.Discard != jetstream.DiscardNew || cfg.Duplicates != 2*time.Minute {
		t.Errorf("stream config = %+v", cfg)
	}

	// The rendered config is what the pods read; it must parse with the data plane's own parser.
	cm := &corev1.ConfigMap{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
	if err != nil {
		t.Fatalf("pipeline config does not parse: %v", err)
	}
	if cfg.NATSURL != srv.URL() || cfg.Queue.Stream != topo.Stream || cfg.Model.Name != "delay-risk" || len(cfg.Model.Features) != 3 {
		t.Errorf("pipeline config = %+v", cfg)
	}

	ingest := mustEventuallyGetDeployment(t, ns, "orders-ingest")
	if *ingest.Spec.Replicas != 2 || !slices.Contains(ingest.Spec.Template.Spec.Containers[0].Args, "ingest") {
		t.Errorf("ingestion Deployment: replicas %d args %v", *ingest.Spec.Replicas, ingest.Spec.Template.Spec.Containers[0].Args)
	}
	infer := mustEventuallyGetDeployment(t, ns, "orders-inference")
	owned, err := appsv1ac.ExtractDeployment(infer, FreightPipelineFieldOwner)
	if err != nil {
		t.Fatal(err)
	}
	if owned.Spec.Replicas != nil {
		t.Errorf("the applied inference Deployment carries spec.replicas=%d; the autoscaler owns it", *owned.Spec.Replicas)
	}
	for _, name := range []string{"orders-ingest", "orders-inference"} {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Service{}); err != nil {
			t.Errorf("Service %s: %v", name, err)
		}
	}

	waitCondition(t, p, freightcastv1alpha1.ConditionIngestionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable)
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable)
	markDeploymentRolledOut(t, ns, "orders-ingest")
	markDeploymentRolledOut(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonPipelineReady)
	waitCondition(t, p, freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciled)
	waitEvent(t, p, corev1.EventTypeNormal, freightcastv1alpha1.ReasonPipelineReady)
	st := p.Status
	if st.IngestionEndpoint != "http://orders-ingest."+ns+".svc:8080/v1/events" || st.Stream != topo.Stream ||
		st.Inference.ReadyReplicas != 1 || st.Ingestion.ReadyReplicas != 2 {
		t.Errorf("status = %+v", st)
	}

	// The autoscaler samples the queue: 5 events show up as its depth within a status refresh.
	for i := range 5 {
		if _, err := js.Publish(ctx, topo.Subject, []byte(`{}`), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 2*statusRefresh, "queue depth 5", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if a := p.Status.Autoscaling; a == nil || a.QueueDepth == nil || *a.QueueDepth != 5 || a.DesiredReplicas != 1 {
			return fmt.Errorf("autoscaling status %+v", a)
		}
		return nil
	})
}

func TestFreightPipelineWaitsForItsModel(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	p := newPipeline(ns, "orders", "later")
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonModelNotFound)
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonModelNotFound)
	if _, err := getDeployment(ns, "orders-inference"); !apierrors.IsNotFound(err) {
		t.Fatalf("inference pool created without a model: %v", err)
	}

	model := newModel(ns, "later", "later-onnx")
	mustCreate(t, newModelConfigMap(ns, "later-onnx", modelBytes), model)
	// The model exists but has not loaded: still waiting, now for that.
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonModelNotReady)
	markDeploymentRolledOut(t, ns, "later-predictor")
	mustEventuallyGetDeployment(t, ns, "orders-inference")
	mustEventuallyGetDeployment(t, ns, "orders-ingest")
	waitCondition(t, p, freightcastv1alpha1.ConditionInferenceReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable)
}

func TestFreightPipelineKeepsInferenceReplicasWithinBounds(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	p.Spec.Inference.MinReplicas = ptr.To[int32](3)
	p.Spec.Inference.MaxReplicas = 5
	mustCreate(t, p)

	// The pool is created at its minimum.
	waitPoolReplicas(t, ns, "orders-inference", 3, 10*time.Second)

	// Someone scales the pool below minReplicas, then far past maxReplicas: the operator brings
	// it back each time.
	scaleBy := func(replicas int32) {
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("scale the pool to %d", replicas), func() error {
			d, err := getDeployment(ns, "orders-inference")
			if err != nil {
				return err
			}
			return k8s.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}))
		})
	}
	scaleBy(1)
	waitPoolReplicas(t, ns, "orders-inference", 3, 10*time.Second)
	waitEvent(t, p, corev1.EventTypeNormal, "ScaledUp")
	scaleBy(50)
	waitPoolReplicas(t, ns, "orders-inference", 5, 10*time.Second)
	waitEvent(t, p, corev1.EventTypeNormal, "ScaledDown")
	// Both moves were the bounds' doing, not the queue's, and the metric says so.
	for _, direction := range []string{"up", "down"} {
		if v, _ := metricValue(t, "freightcast_scale_decisions_total", map[string]string{"direction": direction, "reason": "bounds"}); v < 1 {
			t.Errorf("freightcast_scale_decisions_total{direction=%q,reason=\"bounds\"} = %v, want at least 1", direction, v)
		}
	}

	// A GitOps re-apply of the pipeline (a spec change) never resets the pool's size.
	testenv.Eventually(t, 10*time.Second, "change the batch size", func() error {
		p = &freightcastv1alpha1.FreightPipeline{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders"}, p); err != nil {
			return err
		}
		p.Spec.Inference.BatchSize = 16
		return k8s.Update(ctx, p)
	})
	waitDeployment(t, 10*time.Second, ns, "orders-inference", "new batch size rolled into the pool", func(d *appsv1.Deployment) error {
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--max-batch-size=16") {
			return fmt.Errorf("args %v", d.Spec.Template.Spec.Containers[0].Args)
		}
		if *d.Spec.Replicas != 5 {
			return fmt.Errorf("replicas %d after a spec change, want 5 kept", *d.Spec.Replicas)
		}
		return nil
	})
}

func TestFreightPipelineReportsAnUnreachableQueue(t *testing.T) {
	srv := natstest.Start(t)
	srv.Stop()
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueUnreachable)
	if a := p.Status.Autoscaling; a != nil && a.QueueDepth != nil {
		t.Errorf("queueDepth = %d while NATS is unreachable; an unknown depth must be absent", *a.QueueDepth)
	}
	// The data-plane children do not wait for the queue: their pods report it themselves.
	mustEventuallyGetDeployment(t, ns, "orders-ingest")

	srv.Restart(t)
	testenv.Eventually(t, 2*queueRetryInterval+5*time.Second, "QueueReady after NATS returns", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == freightcastv1alpha1.ConditionQueueReady && c.Status == metav1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", p.Status.Conditions)
	})
}

func TestFreightPipelineWithoutAnyNATS(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueNotConfigured)
	waitCondition(t, p, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueNotConfigured)
}

func TestFreightPipelineReprovisionsADeletedStream(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "m")
	p := newPipeline(ns, "orders", "m")
	fastScaling(p)
	mustCreate(t, p)
	mustEventuallyGetDeployment(t, ns, "orders-inference")
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)

	// Someone deletes the stream (and with it the consumer) on the server: the autoscaler's
	// next depth read fails, wakes the reconciler, and that provisions them again.
	js := jetStreamFor(t, srv.URL())
	topo := queue.TopologyFor(ns, "orders")
	if err := js.DeleteStream(ctx, topo.Stream); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "stream and consumer provisioned again", func() error {
		stream, err := js.Stream(ctx, topo.Stream)
		if err != nil {
			return err
		}
		_, err = stream.Consumer(ctx, topo.Consumer)
		return err
	})
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonQueueProvisioned)
}

// TestPipelineStatusOfAnEarlierOperatorIsAdopted: an operator before server-side apply wrote the
// whole status with Updates. The reconciler takes those fields over, so that a condition it no
// longer reports, and a queue depth nobody can read, go away rather than stay owned by the
// earlier writer.
func TestPipelineStatusOfAnEarlierOperatorIsAdopted(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	p := newPipeline(ns, "orders", "m")
	mustCreate(t, p)
	p.Status = freightcastv1alpha1.FreightPipelineStatus{
		ObservedGeneration: p.Generation,
		Conditions: []metav1.Condition{{Type: freightcastv1alpha1.ConditionRouteReady, Status: metav1.ConditionTrue,
			Reason: freightcastv1alpha1.ReasonRouteApplied, Message: "from an earlier operator", LastTransitionTime: metav1.Now()}},
		Autoscaling: &freightcastv1alpha1.AutoscalingStatus{QueueDepth: ptr.To[int64](7), CurrentReplicas: 1, DesiredReplicas: 1},
	}
	if err := k8s.Status().Update(ctx, p, client.FieldOwner("freightcast")); err != nil {
		t.Fatal(err)
	}

	// No NATS anywhere: the autoscaler has nothing to read, so the old depth must not stay.
	startOperator(t, "", ns)
	waitCondition(t, p, freightcastv1alpha1.ConditionQueueReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonQueueNotConfigured)
	testenv.Eventually(t, 10*time.Second, "the earlier operator's fields gone", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionRouteReady); c != nil {
			return fmt.Errorf("RouteReady still there: %+v", c)
		}
		if p.Status.Autoscaling != nil {
			return fmt.Errorf("status.autoscaling still there: %+v", p.Status.Autoscaling)
		}
		for _, mf := range p.ManagedFields {
			if mf.Operation == metav1.ManagedFieldsOperationUpdate && mf.Subresource == "status" {
				return fmt.Errorf("%s still owns status fields by Update", mf.Manager)
			}
		}
		return nil
	})
}
