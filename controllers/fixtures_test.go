package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/onnxtest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// modelBytes is a model file that loads, with as many inputs as newModel has features: the
// operator loads a ConfigMap's model before rolling it out. Envtest runs no pod, so nothing
// else loads it.
var modelBytes = onnxtest.Linear(0.5, -1, 2)

func newModelConfigMap(ns, name string, content []byte) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		BinaryData: map[string][]byte{"model.onnx": content},
	}
}

func newModel(ns, name, configMap string) *freightcastv1alpha1.PredictionModel {
	return &freightcastv1alpha1.PredictionModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: freightcastv1alpha1.PredictionModelSpec{
			Source:   freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: configMap}},
			Features: []string{"distance_km", "carrier_on_time_rate", "port_congestion_index"},
		},
	}
}

func newPipeline(ns, name, model string) *freightcastv1alpha1.FreightPipeline {
	return &freightcastv1alpha1.FreightPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: freightcastv1alpha1.FreightPipelineSpec{
			ModelRef: freightcastv1alpha1.ModelReference{Name: model},
		},
	}
}

func mustCreate(t testing.TB, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := k8s.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// mustUpdate reads obj, applies mutate to it and updates it, again on conflicts with the
// operator's status writes.
func mustUpdate(t testing.TB, obj client.Object, mutate func()) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "updating "+obj.GetName(), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return k8s.Update(context.Background(), obj)
	})
}

func getDeployment(ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d)
}

// waitCondition waits until obj's condition condType has status and reason.
func waitCondition(t testing.TB, obj client.Object, condType string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s %s=%s/%s", obj.GetName(), condType, status, reason), func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		var conds []metav1.Condition
		var observed int64
		switch o := obj.(type) {
		case *freightcastv1alpha1.PredictionModel:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		case *freightcastv1alpha1.FreightPipeline:
			conds, observed = o.Status.Conditions, o.Status.ObservedGeneration
		}
		if observed != obj.GetGeneration() {
			return fmt.Errorf("status.observedGeneration %d, generation %d", observed, obj.GetGeneration())
		}
		c := meta.FindStatusCondition(conds, condType)
		if c == nil {
			return fmt.Errorf("no %s condition in %+v", condType, conds)
		}
		if c.Status != status || c.Reason != reason {
			return fmt.Errorf("%s=%s/%s: %s", condType, c.Status, c.Reason, c.Message)
		}
		if c.ObservedGeneration != obj.GetGeneration() {
			return fmt.Errorf("%s condition observedGeneration %d, generation %d", condType, c.ObservedGeneration, obj.GetGeneration())
		}
		return nil
	})
}

// waitEvent waits for an event about obj with the given type and reason.
func waitEvent(t testing.TB, obj client.Object, eventType, reason string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%s event %s about %s", eventType, reason, obj.GetName()), func() error {
		var list eventsv1.EventList
		if err := k8s.List(context.Background(), &list, client.InNamespace(obj.GetNamespace())); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name == obj.GetName() && e.Regarding.UID == obj.GetUID() {
				if e.Type == eventType && e.Reason == reason {
					return nil
				}
				seen = append(seen, e.Type+"/"+e.Reason)
			}
		}
		return fmt.Errorf("events seen: %v", seen)
	})
}

// waitDeployment waits until the Deployment ns/name exists and check accepts it.
func waitDeployment(t testing.TB, timeout time.Duration, ns, name, what string, check func(*appsv1.Deployment) error) {
	t.Helper()
	testenv.Eventually(t, timeout, what, func() error {
		d, err := getDeployment(ns, name)
		if err != nil {
			return err
		}
		return check(d)
	})
}
