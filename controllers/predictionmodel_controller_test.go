package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestPredictionModelServesFromConfigMap(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	model := newModel(ns, "delay-risk", "delay-risk-onnx")
	mustCreate(t, newModelConfigMap(ns, "delay-risk-onnx", modelBytes), model)

	deploy := mustEventuallyGetDeployment(t, ns, "delay-risk-predictor")
	if got := deploy.Spec.Template.Annotations[annotationModelDigest]; got != digestOf(modelBytes) {
		t.Errorf("pod template model digest = %q, want %q", got, digestOf(modelBytes))
	}
	c := deploy.Spec.Template.Spec.Containers[0]
	if c.Image != testImage {
		t.Errorf("image = %q, want %q", c.Image, testImage)
	}
	for _, arg := range []string{"infer", "--model-file=/var/lib/freightcast/model/model.onnx", "--model-name=delay-risk",
		"--model-version=1", "--features=distance_km,carrier_on_time_rate,port_congestion_index", "--max-batch-size=64", "--max-batch-delay=2ms"} {
		if !slices.Contains(c.Args, arg) {
			t.Errorf("args %v lack %q", c.Args, arg)
		}
	}
	if owner := metav1.GetControllerOf(deploy); owner == nil || owner.Kind != "PredictionModel" || owner.Name != "delay-risk" {
		t.Errorf("controller owner = %+v", owner)
	}
	testenv.Eventually(t, 10*time.Second, "Service and PodDisruptionBudget", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "delay-risk-predictor"}, &corev1.Service{}); err != nil {
			return err
		}
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "delay-risk-predictor"}, &policyv1.PodDisruptionBudget{})
	})

	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)
	if model.Status.Endpoint != "http://delay-risk-predictor."+ns+".svc:8080/v2/models/delay-risk" {
		t.Errorf("endpoint = %q", model.Status.Endpoint)
	}
	if model.Status.ModelDigest != "" {
		t.Errorf("modelDigest = %q before any pod loaded the model", model.Status.ModelDigest)
	}

	markDeploymentRolledOut(t, ns, "delay-risk-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
	waitCondition(t, model, freightcastv1alpha1.ConditionModelLoaded, metav1.ConditionTrue, freightcastv1alpha1.ReasonModelLoaded)
	waitCondition(t, model, freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected)
	waitCondition(t, model, freightcastv1alpha1.ConditionProgressing, metav1.ConditionFalse, freightcastv1alpha1.ReasonReconciled)
	if model.Status.ModelDigest != digestOf(modelBytes) || model.Status.ReadyReplicas != 1 || model.Status.Selector == "" {
		t.Errorf("status = %+v", model.Status)
	}
	waitEvent(t, model, corev1.EventTypeNormal, freightcastv1alpha1.ReasonModelLoaded)
}

func mustEventuallyGetDeployment(t testing.TB, ns, name string) (d *appsv1.Deployment) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "Deployment "+name, func() (err error) {
		d, err = getDeployment(ns, name)
		return err
	})
	return d
}

func TestPredictionModelRestoresDeletedAndEditedChildren(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	mustCreate(t, newModelConfigMap(ns, "m-onnx", modelBytes), newModel(ns, "m", "m-onnx"))
	deploy := mustEventuallyGetDeployment(t, ns, "m-predictor")

	// Deleted: it comes back (a new object, so a new UID).
	if err := k8s.Delete(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, 10*time.Second, ns, "m-predictor", "deleted Deployment recreated", func(d *appsv1.Deployment) error {
		if d.UID == deploy.UID {
			return fmt.Errorf("still the old Deployment")
		}
		return nil
	})

	// Edited by hand (another field manager takes the image): the operator takes it back.
	d, _ := getDeployment(ns, "m-predictor")
	d.Spec.Template.Spec.Containers[0].Image = "example.invalid/not-freightcast:latest"
	d.Spec.Replicas = ptr.To[int32](7)
	if err := k8s.Update(ctx, d, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, 10*time.Second, ns, "m-predictor", "edited Deployment restored", func(d *appsv1.Deployment) error {
		if img := d.Spec.Template.Spec.Containers[0].Image; img != testImage || *d.Spec.Replicas != 1 {
			return fmt.Errorf("image %q replicas %d", img, *d.Spec.Replicas)
		}
		return nil
	})

	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "m-predictor"}, svc); err != nil {
		t.Fatal(err)
	}
	svc.Spec.Ports[0].TargetPort = intstr.FromInt32(9999)
	svc.Spec.Selector = map[string]string{"app": "something-else"}
	if err := k8s.Update(ctx, svc, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "edited Service restored", func() error {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "m-predictor"}, svc); err != nil {
			return err
		}
		if svc.Spec.Ports[0].TargetPort != intstr.FromString(httpPortName) || svc.Spec.Selector[labelModel] != "m" {
			return fmt.Errorf("ports %+v selector %v", svc.Spec.Ports, svc.Spec.Selector)
		}
		return nil
	})
}

func TestPredictionModelSourceChangeRollsThePods(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	cm := newModelConfigMap(ns, "m-onnx", modelBytes)
	model := newModel(ns, "m", "m-onnx")
	mustCreate(t, cm, model)
	mustEventuallyGetDeployment(t, ns, "m-predictor")
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)

	// New model content in the same ConfigMap key: the pod template changes, so pods roll.
	v2 := append(slices.Clone(modelBytes), []byte("-v2")...)
	cm.BinaryData["model.onnx"] = v2
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, 10*time.Second, ns, "m-predictor", "pod template carries the new digest", func(d *appsv1.Deployment) error {
		if got := d.Spec.Template.Annotations[annotationModelDigest]; got != digestOf(v2) {
			return fmt.Errorf("digest %q", got)
		}
		return nil
	})
	// Until the new pods are ready, the status keeps naming the model that is served.
	waitCondition(t, model, freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut)
	if model.Status.ModelDigest != digestOf(modelBytes) {
		t.Errorf("modelDigest = %q during the rollout, want the old %q", model.Status.ModelDigest, digestOf(modelBytes))
	}
	markDeploymentRolledOut(t, ns, "m-predictor")
	testenv.Eventually(t, 10*time.Second, "status names the new model", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if model.Status.ModelDigest != digestOf(v2) {
			return fmt.Errorf("modelDigest %q", model.Status.ModelDigest)
		}
		return nil
	})

	// A spec change (version) rolls too, and the conditions follow the new generation.
	testenv.Eventually(t, 10*time.Second, "change the version", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		model.Spec.Version = "2026-11"
		return k8s.Update(ctx, model)
	})
	waitDeployment(t, 10*time.Second, ns, "m-predictor", "args carry the new version", func(d *appsv1.Deployment) error {
		if !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--model-version=2026-11") {
			return fmt.Errorf("args %v", d.Spec.Template.Spec.Containers[0].Args)
		}
		return nil
	})
	waitCondition(t, model, freightcastv1alpha1.ConditionProgressing, metav1.ConditionTrue, freightcastv1alpha1.ReasonRollingOut)
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)
	markDeploymentRolledOut(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)
}

func TestPredictionModelWaitsForItsConfigMap(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	model := newModel(ns, "m", "not-yet")
	mustCreate(t, model)
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonSourceNotFound)
	waitCondition(t, model, freightcastv1alpha1.ConditionDegraded, metav1.ConditionTrue, freightcastv1alpha1.ReasonSourceNotFound)
	waitEvent(t, model, corev1.EventTypeWarning, freightcastv1alpha1.ReasonSourceNotFound)
	if _, err := getDeployment(ns, "m-predictor"); !apierrors.IsNotFound(err) {
		t.Fatalf("a serving Deployment exists while its model file does not: err=%v", err)
	}

	// A ConfigMap without the key is still not a model.
	cm := newModelConfigMap(ns, "not-yet", nil)
	cm.BinaryData = map[string][]byte{"other.onnx": modelBytes}
	mustCreate(t, cm)
	testenv.Eventually(t, 10*time.Second, "missing key reported", func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		for _, c := range model.Status.Conditions {
			if c.Type == freightcastv1alpha1.ConditionReady && c.Reason == freightcastv1alpha1.ReasonSourceNotFound && strings.Contains(c.Message, `"model.onnx"`) {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", model.Status.Conditions)
	})

	cm.BinaryData = map[string][]byte{"model.onnx": modelBytes}
	if err := k8s.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	mustEventuallyGetDeployment(t, ns, "m-predictor")
	waitCondition(t, model, freightcastv1alpha1.ConditionDegraded, metav1.ConditionFalse, freightcastv1alpha1.ReasonAsExpected)
	waitCondition(t, model, freightcastv1alpha1.ConditionReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonLoading)
}

func TestPredictionModelScaleSubresource(t *testing.T) {
	ns := newNamespace(t)
	startOperator(t, "", ns)
	ctx := context.Background()
	model := newModel(ns, "m", "m-onnx")
	mustCreate(t, newModelConfigMap(ns, "m-onnx", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, "m-predictor")

	// kubectl scale pm/m --replicas=3 goes through the scale subresource.
	scale := &autoscalingv1.Scale{}
	testenv.Eventually(t, 10*time.Second, "scale pm/m to 3", func() error {
		if err := k8s.SubResource("scale").Get(ctx, model, scale); err != nil {
			return err
		}
		scale.Spec.Replicas = 3
		return k8s.SubResource("scale").Update(ctx, model, client.WithSubResourceBody(scale))
	})
	waitDeployment(t, 10*time.Second, ns, "m-predictor", "serving Deployment scaled to 3", func(d *appsv1.Deployment) error {
		if *d.Spec.Replicas != 3 {
			return fmt.Errorf("replicas %d", *d.Spec.Replicas)
		}
		return nil
	})
	markDeploymentRolledOut(t, ns, "m-predictor")
	testenv.Eventually(t, 10*time.Second, "scale subresource reports 3 replicas and a selector", func() error {
		if err := k8s.SubResource("scale").Get(ctx, model, scale); err != nil {
			return err
		}
		if diff := cmp.Diff(int32(3), scale.Status.Replicas); diff != "" || scale.Status.Selector == "" {
			return fmt.Errorf("scale status %+v", scale.Status)
		}
		return nil
	})
}

// TestModelSourceConfigMapsAreWatchedAsMetadata: the operator's cache holds no model file. A
// model's source ConfigMap is there as metadata only, which is enough to notice it change; the
// content is read when it does.
func TestModelSourceConfigMapsAreWatchedAsMetadata(t *testing.T) {
	ns := newNamespace(t)
	op := startOperator(t, "", ns)
	ctx := context.Background()
	model := newModel(ns, "m", "m-onnx")
	mustCreate(t, newModelConfigMap(ns, "m-onnx", modelBytes), model)
	mustEventuallyGetDeployment(t, ns, "m-predictor")

	key := client.ObjectKey{Namespace: ns, Name: "m-onnx"}
	if err := op.cache.Get(ctx, key, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("the cache holds the model's ConfigMap in full (err %v), want it not found there", err)
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("ConfigMap"))
	if err := op.cache.Get(ctx, key, meta); err != nil || meta.ResourceVersion == "" {
		t.Errorf("the cache does not hold the model's ConfigMap as metadata: %v", err)
	}
}
