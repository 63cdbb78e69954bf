package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// typedNetworkPolicy reads an apply configuration back as the object it describes.
func typedNetworkPolicy(t *testing.T, ac *networkingv1ac.NetworkPolicyApplyConfiguration) *networkingv1.NetworkPolicy {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatal(err)
	}
	np := &networkingv1.NetworkPolicy{}
	if err := json.Unmarshal(b, np); err != nil {
		t.Fatal(err)
	}
	return np
}

func tcpPort(p int32) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromInt32(p))}
}

var (
	dnsRule = networkingv1.NetworkPolicyEgressRule{Ports: []networkingv1.NetworkPolicyPort{
		{Protocol: ptr.To(corev1.ProtocolUDP), Port: ptr.To(intstr.FromInt32(53))}, tcpPort(53)}}
	httpIngressPort = networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("http"))}
	// A model's serving pods admit gRPC from the same peers as REST.
	grpcIngressPort = networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("grpc"))}
	// The reporting pod's /metrics, on a port of its own.
	metricsIngressPort = networkingv1.NetworkPolicyPort{Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(intstr.FromString("metrics"))}
)

func TestDesiredPipelineNetworkPolicy(t *testing.T) {
	t.Parallel()
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	monitoring := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}
	clients := networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.20.0.0/16", Except: []string{"10.20.5.0/24"}}}
	cases := map[string]struct {
		natsURL      string
		otlpEndpoint string
		modelSource  *freightcastv1alpha1.ModelSource // nil: no model yet
		from         []networkingv1.NetworkPolicyPeer
		reporting    bool
		wantIngress  []networkingv1.NetworkPolicyIngressRule
		wantEgress   []networkingv1.NetworkPolicyEgressRule
	}{
		// The policy selects the inference pods too: the ingestion pods reach the reporting pod
		// by a policy of their own (TestDesiredIngestToReportingNetworkPolicy).
		"reporting: nothing here reaches the reporting pod": {
			natsURL:     "nats://nats:4222",
			reporting:   true,
			wantIngress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}}},
			wantEgress:  []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(4222)}}},
		},
		"in-cluster NATS on the default port, model in a ConfigMap": {
			natsURL:     "nats://nats.freightcast-system.svc",
			modelSource: &freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			wantIngress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}}},
			wantEgress:  []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(4222)}}},
		},
		"NATS outside the cluster on its own ports, model over https, restricted clients": {
			natsURL:     "tls://nats-1.example.com:7422, tls://nats-2.example.com:7422,nats-3.example.com:7423",
			modelSource: &freightcastv1alpha1.ModelSource{URI: "https://models.example.com:8443/m.onnx", SHA256: sha},
			from:        []networkingv1.NetworkPolicyPeer{monitoring, clients},
			wantIngress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}, From: []networkingv1.NetworkPolicyPeer{monitoring, clients}}},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule,
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(7422), tcpPort(7423)}},
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(8443)}}},
		},
		"model over https on the default port": {
			natsURL:     "nats://nats:4222",
			modelSource: &freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx", SHA256: sha},
			wantIngress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}}},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule,
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(4222)}},
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)}}},
		},
		"tracing on: the OTLP endpoint's port": {
			natsURL:      "nats://nats.freightcast-system.svc:4222",
			otlpEndpoint: "http://otel-collector.observability.svc:4318",
			wantIngress:  []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}}},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule,
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(4222)}},
				{Ports: []networkingv1.NetworkPolicyPort{tcpPort(4318)}}},
		},
		"no model yet, no NATS server known": {
			wantIngress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort}}},
			wantEgress:  []networkingv1.NetworkPolicyEgressRule{dnsRule},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newPipeline("ns", "orders", "m")
			p.Spec.NetworkPolicy.From = tc.from
			if tc.reporting {
				p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{}
			}
			var model *freightcastv1alpha1.PredictionModel
			if tc.modelSource != nil {
				model = newModel("ns", "m", "")
				model.Spec.Source = *tc.modelSource
			}
			np := typedNetworkPolicy(t, desiredPipelineNetworkPolicy(p, model, tc.natsURL, Options{OTLPEndpoint: tc.otlpEndpoint}))
			want := networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelPipeline: "orders"},
					// Not the reporting pod, which has a policy of its own.
					MatchExpressions: []metav1.LabelSelectorRequirement{{Key: labelComponent, Operator: metav1.LabelSelectorOpIn, Values: []string{"ingestion", "inference"}}}},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     tc.wantIngress,
				Egress:      tc.wantEgress,
			}
			if diff := cmp.Diff(want, np.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if np.Name != "orders-pipeline" || len(np.OwnerReferences) != 1 || np.OwnerReferences[0].Kind != "FreightPipeline" {
				t.Errorf("name %s, owners %+v", np.Name, np.OwnerReferences)
			}
		})
	}
}

// The reporting pod admits to its API only its pipeline's ingestion pods, whatever
// spec.networkPolicy.from admits to them, to its metrics port the peers of
// spec.networkPolicy.from, and reaches only DNS, NATS and the OTLP endpoint.
func TestDesiredReportingNetworkPolicy(t *testing.T) {
	t.Parallel()
	p := newPipeline("ns", "orders", "m")
	monitoring := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}
	p.Spec.NetworkPolicy.From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}, monitoring}
	p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{}
	np := typedNetworkPolicy(t, desiredReportingNetworkPolicy(p, "nats://nats:4222", Options{OTLPEndpoint: "http://otel:4318"}))
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelComponent: "reporting", labelPipeline: "orders"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort},
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelComponent: "ingestion", labelPipeline: "orders"}}}}},
			{Ports: []networkingv1.NetworkPolicyPort{metricsIngressPort}, From: p.Spec.NetworkPolicy.From}},
		Egress: []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(4222), tcpPort(4318)}}},
	}
	if diff := cmp.Diff(want, np.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if np.Name != "orders-reporting" || len(np.OwnerReferences) != 1 {
		t.Errorf("name %s, owners %+v", np.Name, np.OwnerReferences)
	}

	// Without spec.networkPolicy.from, metrics from anywhere, as the other pods' port.
	p.Spec.NetworkPolicy.From = nil
	np = typedNetworkPolicy(t, desiredReportingNetworkPolicy(p, "nats://nats:4222", Options{}))
	if got := np.Spec.Ingress[1]; len(np.Spec.Ingress) != 2 || got.From != nil || !cmp.Equal(got.Ports, []networkingv1.NetworkPolicyPort{metricsIngressPort}) {
		t.Errorf("ingress %+v, want the API from ingestion and metrics from anywhere", np.Spec.Ingress)
	}
}

// Only the ingestion pods, not the inference pods, may reach the reporting pod.
func TestDesiredIngestToReportingNetworkPolicy(t *testing.T) {
	t.Parallel()
	p := newPipeline("ns", "orders", "m")
	p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{}
	np := typedNetworkPolicy(t, desiredIngestToReportingNetworkPolicy(p))
	want := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelComponent: "ingestion", labelPipeline: "orders"}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		Egress: []networkingv1.NetworkPolicyEgressRule{{Ports: []networkingv1.NetworkPolicyPort{tcpPort(8080)}, To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{labelName: appName, labelComponent: "reporting", labelPipeline: "orders"}}}}}},
	}
	if diff := cmp.Diff(want, np.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if np.Name != "orders-ingest-to-reporting" || len(np.OwnerReferences) != 1 {
		t.Errorf("name %s, owners %+v", np.Name, np.OwnerReferences)
	}
}

func TestDesiredPredictorNetworkPolicy(t *testing.T) {
	t.Parallel()
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := map[string]struct {
		source       freightcastv1alpha1.ModelSource
		lastGood     *freightcastv1alpha1.ModelSource
		otlpEndpoint string
		wantEgress   []networkingv1.NetworkPolicyEgressRule
	}{
		"ConfigMap: DNS only": {
			source:     freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule},
		},
		"https URI": {
			source:     freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx", SHA256: sha},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)}}},
		},
		"tracing on, endpoint without a port: the scheme's": {
			source:       freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			otlpEndpoint: "https://otlp.example.com",
			wantEgress:   []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(443)}}},
		},
		"a rollback may serve the last good URI": {
			source:     freightcastv1alpha1.ModelSource{URI: "https://new.example.com:9443/m.onnx", SHA256: sha},
			lastGood:   &freightcastv1alpha1.ModelSource{URI: "https://old.example.com/m.onnx", SHA256: sha},
			wantEgress: []networkingv1.NetworkPolicyEgressRule{dnsRule, {Ports: []networkingv1.NetworkPolicyPort{tcpPort(443), tcpPort(9443)}}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "risk", "")
			m.Spec.Source = tc.source
			if tc.lastGood != nil {
				m.Status.LastGoodRevision = &freightcastv1alpha1.ModelRevision{Source: *tc.lastGood}
			}
			np := typedNetworkPolicy(t, desiredPredictorNetworkPolicy(m, Options{OTLPEndpoint: tc.otlpEndpoint}))
			want := networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: predictorSelector(m)},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{httpIngressPort, grpcIngressPort}}},
				Egress:      tc.wantEgress,
			}
			if diff := cmp.Diff(want, np.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if np.Name != "risk-predictor" || np.OwnerReferences[0].Kind != "PredictionModel" {
				t.Errorf("name %s, owners %+v", np.Name, np.OwnerReferences)
			}
		})
	}
}

func getNetworkPolicy(ns, name string) (*networkingv1.NetworkPolicy, error) {
	np := &networkingv1.NetworkPolicy{}
	return np, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, np)
}

func mustEventuallyGetNetworkPolicy(t testing.TB, ns, name string, check func(*networkingv1.NetworkPolicy) error) *networkingv1.NetworkPolicy {
	t.Helper()
	var np *networkingv1.NetworkPolicy
	testenv.Eventually(t, 10*time.Second, "NetworkPolicy "+name, func() (err error) {
		if np, err = getNetworkPolicy(ns, name); err != nil {
			return err
		}
		if check != nil {
			return check(np)
		}
		return nil
	})
	return np
}

func waitNetworkPolicyGone(t testing.TB, ns, name string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, "NetworkPolicy "+name+" deleted", func() error {
		if _, err := getNetworkPolicy(ns, name); !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
}

func TestNetworkPoliciesAreOwnedRestoredAndOptional(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	ctx := context.Background()
	model := loadedModel(t, ns, "risk")
	p := newPipeline(ns, "orders", "risk")
	mustCreate(t, p)

	natsPort := natsPorts(srv.URL())[0]
	for _, c := range []struct {
		name  string
		owner client.Object
		check func(*networkingv1.NetworkPolicy) error
	}{
		{"orders-pipeline", p, func(np *networkingv1.NetworkPolicy) error {
			if len(np.Spec.Egress) != 2 || *np.Spec.Egress[1].Ports[0].Port != intstr.FromInt32(natsPort) {
				return fmt.Errorf("egress %+v does not admit the NATS port %d", np.Spec.Egress, natsPort)
			}
			return nil
		}},
		{"risk-predictor", model, nil},
	} {
		np := mustEventuallyGetNetworkPolicy(t, ns, c.name, c.check)
		if !metav1.IsControlledBy(np, c.owner) {
			t.Errorf("NetworkPolicy %s is not controlled by %s: %+v", c.name, c.owner.GetName(), np.OwnerReferences)
		}
		// Deleted by hand, it comes back.
		if err := k8s.Delete(ctx, np); err != nil {
			t.Fatal(err)
		}
		mustEventuallyGetNetworkPolicy(t, ns, c.name, func(got *networkingv1.NetworkPolicy) error {
			if got.UID == np.UID {
				return fmt.Errorf("not deleted yet")
			}
			return nil
		})
	}

	// A from list narrows the ingestion port's sources.
	peer := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shipping"}}}
	mustUpdate(t, p, func() { p.Spec.NetworkPolicy.From = []networkingv1.NetworkPolicyPeer{peer} })
	mustEventuallyGetNetworkPolicy(t, ns, "orders-pipeline", func(np *networkingv1.NetworkPolicy) error {
		if diff := cmp.Diff([]networkingv1.NetworkPolicyPeer{peer}, np.Spec.Ingress[0].From); diff != "" {
			return fmt.Errorf("ingress from (-want +got):\n%s", diff)
		}
		return nil
	})

	// Disabled: the operator removes what it wrote, and leaves a policy of the user's alone.
	mustUpdate(t, p, func() { p.Spec.NetworkPolicy.Mode = freightcastv1alpha1.NetworkPolicyDisabled })
	waitNetworkPolicyGone(t, ns, "orders-pipeline")

	mustUpdate(t, model, func() { model.Spec.NetworkPolicy.Mode = freightcastv1alpha1.NetworkPolicyDisabled })
	waitNetworkPolicyGone(t, ns, "risk-predictor")
	users := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "risk-predictor"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	// A reconcile that read the model before the change may still write its policy once; the
	// next one removes it again.
	testenv.Eventually(t, 10*time.Second, "the user's own NetworkPolicy created", func() error {
		return k8s.Create(ctx, users)
	})
	// A spec change makes the model reconcile again; the user's policy stays.
	mustUpdate(t, model, func() { model.Spec.Replicas = ptr.To[int32](2) })
	testenv.Eventually(t, 10*time.Second, "the model's status of its new generation", func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(model), model); err != nil {
			return err
		}
		if model.Status.ObservedGeneration != model.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", model.Status.ObservedGeneration, model.Generation)
		}
		return nil
	})
	if _, err := getNetworkPolicy(ns, "risk-predictor"); err != nil {
		t.Errorf("the user's NetworkPolicy was removed: %v", err)
	}
}

// A model that admits only some peers (spec.networkPolicy.from) still admits the inference pools
// of its namespace, which score through it remotely; a gRPC runtime's port is admitted by name.
func TestDesiredPredictorNetworkPolicyAdmitsRemoteScoringPools(t *testing.T) {
	t.Parallel()
	m := newModel("ns", "risk", "cm")
	m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", Protocol: freightcastv1alpha1.RuntimeProtocolGRPC, Port: 8001}
	m.Spec.NetworkPolicy.From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "freight"}}}}
	np := typedNetworkPolicy(t, desiredPredictorNetworkPolicy(m, Options{}))
	grpcPort := intstr.FromString("grpc")
	tcp := corev1.ProtocolTCP
	want := []networkingv1.NetworkPolicyIngressRule{{
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &grpcPort}},
		From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "freight"}}},
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelName: appName, labelComponent: componentInference}}},
		},
	}}
	if diff := cmp.Diff(want, np.Spec.Ingress); diff != "" {
		t.Errorf("ingress (-want +got):\n%s", diff)
	}
}
