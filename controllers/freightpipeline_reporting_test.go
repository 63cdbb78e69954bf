package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/spec"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func TestDesiredReportingStatefulSet(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		mutate func(*freightcastv1alpha1.FreightPipeline)
		// wantVolumes maps each Secret volume to its Secret.
		wantVolumes map[string]string
		wantMounts  map[string]string
	}{
		"no auth, anonymous NATS": {mutate: func(*freightcastv1alpha1.FreightPipeline) {}},
		"tokens, the pipeline's NATS user": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "tokens"}}
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "pipeline-nats"}}
			},
			wantVolumes: map[string]string{authVolume: "tokens", natsCredsVolume: "pipeline-nats"},
			wantMounts:  map[string]string{authVolume: "/etc/freightcast/auth", natsCredsVolume: spec.NATSCredentialsDir},
		},
		"its own NATS user": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "pipeline-nats"}}
				p.Spec.Reporting.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "reporting-nats"}}
			},
			wantVolumes: map[string]string{natsCredsVolume: "reporting-nats"},
			wantMounts:  map[string]string{natsCredsVolume: spec.NATSCredentialsDir},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline("ns", "orders", "m")
			p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{}
			tc.mutate(p)
			d := desiredReportingStatefulSet(p, "sha256:r", testOptions)
			// One pod, and its replacement only once it is gone (a StatefulSet's guarantee, which
			// a Deployment does not give when its pod is deleted or evicted).
			if *d.Name != "orders-reporting" || *d.Spec.Replicas != 1 || *d.Spec.PodManagementPolicy != appsv1.ParallelPodManagement ||
				*d.Spec.ServiceName != "orders-reporting" {
				t.Errorf("name %s, replicas %d, pod management %s, service %s: want orders-reporting, one pod, Parallel",
					*d.Name, *d.Spec.Replicas, *d.Spec.PodManagementPolicy, *d.Spec.ServiceName)
			}
			assertRestricted(t, d.Spec.Template.Spec)
			c := d.Spec.Template.Spec.Containers[0]
			if diff := cmp.Diff([]string{"report", "--addr=:8080", "--metrics-addr=:9090", "--config=/etc/freightcast/pipeline/reporting.json"}, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			// The metrics port is named for the chart's PodMonitor and the NetworkPolicy.
			if len(c.Ports) != 2 || *c.Ports[1].Name != "metrics" || *c.Ports[1].ContainerPort != 9090 {
				t.Errorf("ports %+v, want http and metrics (9090)", c.Ports)
			}
			if *c.ReadinessProbe.HTTPGet.Path != "/readyz" || *c.LivenessProbe.HTTPGet.Path != "/livez" {
				t.Errorf("probes %s, %s", *c.ReadinessProbe.HTTPGet.Path, *c.LivenessProbe.HTTPGet.Path)
			}
			if got := d.Spec.Template.Annotations[annotationConfigDigest]; got != "sha256:r" {
				t.Errorf("config digest %q: a new reporting config must replace the pod", got)
			}
			gotVolumes := map[string]string{}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					gotVolumes[*v.Name] = *v.Secret.SecretName
				}
			}
			gotMounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				if _, ok := gotVolumes[*m.Name]; ok {
					gotMounts[*m.Name] = *m.MountPath
				}
			}
			if diff := cmp.Diff(tc.wantVolumes, gotVolumes, cmpEmptyMaps); diff != "" {
				t.Errorf("Secret volumes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMounts, gotMounts, cmpEmptyMaps); diff != "" {
				t.Errorf("Secret mounts (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmptyMaps = cmp.FilterValues(func(a, b map[string]string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

// spec.reporting brings the reporting pod, its Service, its NetworkPolicy and its config;
// a dimension that does not compile is refused with a condition while the pod keeps its
// config; removing spec.reporting removes them all (envtest: the real API server, no pods).
func TestReportingFollowsTheSpec(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "delay-risk")
	p := newPipeline(ns, "orders", "delay-risk")
	p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{
		Dimensions: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
		Outputs:    []freightcastv1alpha1.ReportOutput{{Name: "delay_risk"}},
		Threshold:  "0.7",
	}
	mustCreate(t, p)
	waitCondition(t, p, freightcastv1alpha1.ConditionReportingValid, metav1.ConditionTrue, freightcastv1alpha1.ReasonReportingCompiled)
	testenv.Eventually(t, 10*time.Second, "the reporting StatefulSet", func() error {
		st := &appsv1.StatefulSet{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-reporting"}, st); err != nil {
			return err
		}
		if *st.Spec.Replicas != 1 {
			return fmt.Errorf("%d replicas", *st.Spec.Replicas)
		}
		return nil
	})
	for _, obj := range []client.Object{&corev1.Service{}, &networkingv1.NetworkPolicy{}} {
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-reporting"}, obj); err != nil {
			t.Fatalf("%T: %v", obj, err)
		}
	}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-ingest-to-reporting"}, &networkingv1.NetworkPolicy{}); err != nil {
		t.Fatalf("the ingestion pods' policy to the reporting pod: %v", err)
	}
	configs := func() (pipeline, reporting pipelineconfig.Config) {
		t.Helper()
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-pipeline"}, cm); err != nil {
			t.Fatal(err)
		}
		var err error
		if pipeline, err = pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName])); err != nil {
			t.Fatal(err)
		}
		if raw, ok := cm.Data[reportingConfigFile]; ok {
			if reporting, err = pipelineconfig.Parse([]byte(raw)); err != nil {
				t.Fatal(err)
			}
		}
		return pipeline, reporting
	}
	cfg, rcfg := configs()
	if cfg.Ingestion.ReportingURL != "http://orders-reporting."+ns+".svc:8080" {
		t.Errorf("ingestion forwards reports to %q", cfg.Ingestion.ReportingURL)
	}
	if rcfg.Reporting == nil || rcfg.Reporting.Threshold != 0.7 || rcfg.Reporting.Dimensions[0].Expression != "event.shipment.lane" {
		t.Fatalf("the reporting config has %+v", rcfg.Reporting)
	}
	waitCondition(t, p, freightcastv1alpha1.ConditionReportingReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonUnavailable)
	markStatefulSetRolledOut(t, ns, "orders-reporting")
	waitCondition(t, p, freightcastv1alpha1.ConditionReportingReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonAvailable)

	mustUpdate(t, p, func() { p.Spec.Reporting.Dimensions[0].Expression = "event.shipment.lane +" })
	waitCondition(t, p, freightcastv1alpha1.ConditionReportingValid, metav1.ConditionFalse, freightcastv1alpha1.ReasonInvalidReporting)
	if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionReportingValid); !strings.Contains(c.Message, `dimension "lane": expression "event.shipment.lane +"`) {
		t.Errorf("ReportingValid says %q", c.Message)
	}
	if _, rcfg := configs(); rcfg.Reporting.Dimensions[0].Expression != "event.shipment.lane" {
		t.Errorf("the reporting pod's config changed to %+v", rcfg.Reporting.Dimensions)
	}

	mustUpdate(t, p, func() { p.Spec.Reporting = nil })
	testenv.Eventually(t, 10*time.Second, "the reporting objects gone", func() error {
		for _, obj := range []client.Object{&appsv1.StatefulSet{}, &corev1.Service{}, &networkingv1.NetworkPolicy{}} {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-reporting"}, obj); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T: %v", obj, err)
			}
		}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orders-ingest-to-reporting"}, &networkingv1.NetworkPolicy{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the ingestion pods' policy to the reporting pod: %v", err)
		}
		if cfg, rcfg := configs(); cfg.Ingestion.ReportingURL != "" || rcfg.Reporting != nil {
			return fmt.Errorf("configs still carry reporting: %q, %+v", cfg.Ingestion.ReportingURL, rcfg.Reporting)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, "the reporting conditions gone", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return err
		}
		for _, typ := range []string{freightcastv1alpha1.ConditionReportingValid, freightcastv1alpha1.ConditionReportingReady} {
			if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
				return fmt.Errorf("%s still there: %+v", typ, c)
			}
		}
		return nil
	})
}

// markStatefulSetRolledOut stands in for the StatefulSet controller and the kubelet, which envtest
// does not run: the status they write once the one pod of the current revision is ready.
func markStatefulSetRolledOut(t testing.TB, ns, name string) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, "StatefulSet "+name+" rolled out", func() error {
		st := &appsv1.StatefulSet{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, st); err != nil {
			return err
		}
		st.Status = appsv1.StatefulSetStatus{ObservedGeneration: st.Generation, Replicas: 1, ReadyReplicas: 1,
			CurrentReplicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1}
		return k8s.Status().Update(ctx, st)
	})
}

// A reporting Deployment left by an earlier version goes before the StatefulSet's pod starts:
// the two must not consume at once.
func TestReportingReplacesTheDeploymentOfEarlierVersions(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(t, ns, "delay-risk")
	p := newPipeline(ns, "orders", "delay-risk")
	mustCreate(t, p)
	waitDeployment(t, 10*time.Second, ns, "orders-ingest", "the ingestion Deployment", func(*appsv1.Deployment) error { return nil })
	labels := map[string]string{"app": "old-reporting"}
	old := &appsv1.Deployment{
		// The finalizer stands in for its pod still stopping (envtest runs no garbage collector).
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-reporting", Finalizers: []string{"freightcast.io/test-pod-stopping"}, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: freightcastv1alpha1.GroupVersion.String(), Kind: "FreightPipeline", Name: p.Name, UID: p.UID,
			Controller: ptr.To(true)}}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "report", Image: "freightcast:old"}}}}},
	}
	mustCreate(t, old)
	mustUpdate(t, p, func() {
		p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{
			Dimensions: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
			Outputs:    []freightcastv1alpha1.ReportOutput{{Name: "delay_risk"}},
		}
	})
	// Deleted, but no StatefulSet comes while it (and so its pod) is still there.
	testenv.Eventually(t, 10*time.Second, "the old Deployment deleted", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(old), old); err != nil {
			return err
		}
		if old.DeletionTimestamp == nil {
			return fmt.Errorf("not deleted: finalizers %v", old.Finalizers)
		}
		return nil
	})
	mustUpdate(t, p, func() { p.Spec.Reporting.Threshold = "0.6" }) // one more reconcile
	time.Sleep(time.Second)
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(old), &appsv1.StatefulSet{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a StatefulSet while the old Deployment's pod may still run: %v", err)
	}
	// Its pod gone: the finalizers go (the garbage collector removes foregroundDeletion).
	testenv.Eventually(t, 10*time.Second, "the old Deployment gone", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(old), old); err != nil {
			return client.IgnoreNotFound(err)
		}
		old.Finalizers = nil
		return k8s.Update(ctx, old)
	})
	testenv.Eventually(t, 10*time.Second, "the StatefulSet in its place", func() error {
		return k8s.Get(ctx, client.ObjectKeyFromObject(old), &appsv1.StatefulSet{})
	})
}
