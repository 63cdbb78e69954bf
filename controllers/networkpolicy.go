package controllers

import (
	"cmp"
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete

const (
	defaultNATSPort  = 4222
	defaultHTTPSPort = 443
	dnsPort          = 53
)

// networkPolicyEnabled reports whether the spec asks for a NetworkPolicy (the default).
func networkPolicyEnabled(np freightcastv1alpha1.NetworkPolicySpec) bool {
	return np.Mode != freightcastv1alpha1.NetworkPolicyDisabled
}

// pipelineNetworkPolicyName names the NetworkPolicy of a pipeline's pods.
func pipelineNetworkPolicyName(p *freightcastv1alpha1.FreightPipeline) string {
	return p.Name + "-pipeline"
}

// desiredPipelineNetworkPolicy admits, to the pipeline's ingestion and inference pods, their HTTP
// port (from spec.networkPolicy.from, or anywhere), and lets them reach DNS, the NATS server's
// port(s), when the model they load is downloaded its https port, and when tracing is on the OTLP
// endpoint's port (the ingestion pods reach the reporting pod by a policy of their own). Egress names ports, not addresses: a NATS server outside the cluster stays
// reachable. model may be nil (not there yet).
func desiredPipelineNetworkPolicy(p *freightcastv1alpha1.FreightPipeline, model *freightcastv1alpha1.PredictionModel, natsURL string, opts Options) *networkingv1ac.NetworkPolicyApplyConfiguration {
	egress := []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration{dnsEgress()}
	if ports := natsPorts(natsURL); len(ports) > 0 {
		egress = append(egress, tcpEgress(ports))
	}
	if model != nil {
		if ports := modelDownloadPorts(spec.ServedRevision(model).Source); len(ports) > 0 {
			egress = append(egress, tcpEgress(ports))
		}
		if spec.RemoteScoring(p, model) {
			// The pool calls the model's serving pods; egress ports are the pods' own: our own
			// runtime's gRPC port (spec.RemoteModel), another runtime's one port.
			port := int32(grpcPort)
			if r := model.Spec.Runtime; r != nil {
				port = cmp.Or(r.Port, freightcastv1alpha1.DefaultRuntimePort)
			}
			egress = append(egress, networkingv1ac.NetworkPolicyEgressRule().
				WithTo(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(predictorSelector(model)))).
				WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(port))))
		}
	}
	if ports := otlpPorts(opts.OTLPEndpoint); len(ports) > 0 {
		egress = append(egress, tcpEgress(ports))
	}
	selector := map[string]string{labelName: appName, labelPipeline: p.Name}
	policy := networkingv1ac.NetworkPolicy(pipelineNetworkPolicyName(p), p.Namespace).
		WithLabels(pipelineLabels(p, "network-policy")).
		WithOwnerReferences(pipelineOwnerReference(p)).
		WithSpec(networkPolicySpec(selector, p.Spec.NetworkPolicy.From, egress))
	// Not the reporting pod: policies add up, and this one admits clients (it has its own).
	policy.Spec.PodSelector.WithMatchExpressions(metav1ac.LabelSelectorRequirement().
		WithKey(labelComponent).WithOperator(metav1.LabelSelectorOpIn).WithValues(componentIngestion, componentInference))
	return policy
}

// desiredPredictorNetworkPolicy admits, to a model's serving pods, their HTTP port (OIP, health,
// /metrics) and their gRPC port from spec.networkPolicy.from or anywhere, and lets them reach DNS, for a model
// downloaded over https its port (of the spec's source and of the last good one, which a
// rollback may serve), and when tracing is on the OTLP endpoint's port.
func desiredPredictorNetworkPolicy(model *freightcastv1alpha1.PredictionModel, opts Options) *networkingv1ac.NetworkPolicyApplyConfiguration {
	egress := []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration{dnsEgress()}
	ports := modelDownloadPorts(model.Spec.Source)
	if lg := model.Status.LastGoodRevision; lg != nil {
		ports = append(ports, modelDownloadPorts(lg.Source)...)
	}
	ports = append(ports, otlpPorts(opts.OTLPEndpoint)...)
	if ports = sortedUnique(ports); len(ports) > 0 {
		egress = append(egress, tcpEgress(ports))
	}
	policy := networkingv1ac.NetworkPolicy(predictorName(model), model.Namespace).
		WithLabels(predictorLabels(model)).
		WithOwnerReferences(modelOwnerReference(model)).
		WithSpec(networkPolicySpec(predictorSelector(model), model.Spec.NetworkPolicy.From, egress))
	if r := model.Spec.Runtime; r != nil {
		// Another runtime's port is named after its protocol.
		policy.Spec.Ingress[0].Ports[0].WithPort(intstr.FromString(runtimePortName(r)))
	} else {
		// Our own runtime's gRPC is admitted from the same peers as REST.
		policy.Spec.Ingress[0].WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString(grpcPortName)))
	}
	if len(model.Spec.NetworkPolicy.From) > 0 {
		// The inference pools of the namespace's pipelines that score through the model
		// reach it whatever spec.networkPolicy.from admits.
		policy.Spec.Ingress[0].WithFrom(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().
			WithMatchLabels(map[string]string{labelName: appName, labelComponent: componentInference})))
	}
	return policy
}

func networkPolicySpec(selector map[string]string, from []networkingv1.NetworkPolicyPeer, egress []*networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration) *networkingv1ac.NetworkPolicySpecApplyConfiguration {
	ingress := networkingv1ac.NetworkPolicyIngressRule().WithPorts(networkingv1ac.NetworkPolicyPort().
		WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString(httpPortName)))
	for i := range from {
		ingress.WithFrom(networkPolicyPeer(&from[i]))
	}
	return networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
		WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
		WithIngress(ingress).
		WithEgress(egress...)
}

// dnsEgress lets pods resolve names, wherever the cluster's resolver runs (a node-local cache
// has no pod selector to name).
func dnsEgress() *networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	return networkingv1ac.NetworkPolicyEgressRule().WithPorts(
		networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolUDP).WithPort(intstr.FromInt32(dnsPort)),
		networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(dnsPort)))
}

// tcpEgress admits the TCP ports to any address.
func tcpEgress(ports []int32) *networkingv1ac.NetworkPolicyEgressRuleApplyConfiguration {
	rule := networkingv1ac.NetworkPolicyEgressRule()
	for _, port := range ports {
		rule.WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromInt32(port)))
	}
	return rule
}

// natsPorts are the ports of a NATS URL, or of a comma-separated list of them (what nats.go
// accepts); a URL without a port means NATS' 4222.
func natsPorts(natsURL string) []int32 {
	var ports []int32
	for _, u := range strings.Split(natsURL, ",") {
		if port, ok := urlPort(strings.TrimSpace(u), defaultNATSPort); ok {
			ports = append(ports, port)
		}
	}
	return sortedUnique(ports)
}

// otlpPorts is the port of the OTLP/HTTP endpoint data-plane pods export traces to: the URL's, or
// its scheme's default (what the exporter dials). None when tracing is off.
func otlpPorts(endpoint string) []int32 {
	def := int32(80)
	if strings.HasPrefix(endpoint, "https://") {
		def = defaultHTTPSPort
	}
	if port, ok := urlPort(endpoint, def); ok {
		return []int32{port}
	}
	return nil
}

// modelDownloadPorts is the port a model source is downloaded from: an https URI's, none else.
func modelDownloadPorts(src freightcastv1alpha1.ModelSource) []int32 {
	if src.URI == "" {
		return nil
	}
	if port, ok := urlPort(src.URI, defaultHTTPSPort); ok {
		return []int32{port}
	}
	return nil
}

func urlPort(raw string, def int32) (int32, bool) {
	if raw == "" {
		return 0, false
	}
	if !strings.Contains(raw, "://") {
		// nats.go takes host:port without a scheme too.
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return 0, false
	}
	if _, p, err := net.SplitHostPort(u.Host); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return 0, false
		}
		return int32(n), true
	}
	return def, true
}

func sortedUnique(ports []int32) []int32 {
	slices.Sort(ports)
	return slices.Compact(ports)
}

// networkPolicyPeer converts a typed peer into its apply configuration.
func networkPolicyPeer(p *networkingv1.NetworkPolicyPeer) *networkingv1ac.NetworkPolicyPeerApplyConfiguration {
	peer := networkingv1ac.NetworkPolicyPeer()
	if p.PodSelector != nil {
		peer.WithPodSelector(labelSelector(p.PodSelector))
	}
	if p.NamespaceSelector != nil {
		peer.WithNamespaceSelector(labelSelector(p.NamespaceSelector))
	}
	if b := p.IPBlock; b != nil {
		block := networkingv1ac.IPBlock().WithCIDR(b.CIDR)
		if len(b.Except) > 0 {
			block.WithExcept(b.Except...)
		}
		peer.WithIPBlock(block)
	}
	return peer
}

func labelSelector(s *metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	sel := metav1ac.LabelSelector()
	if len(s.MatchLabels) > 0 {
		sel.WithMatchLabels(s.MatchLabels)
	}
	for _, e := range s.MatchExpressions {
		req := metav1ac.LabelSelectorRequirement().WithKey(e.Key).WithOperator(e.Operator)
		if len(e.Values) > 0 {
			req.WithValues(e.Values...)
		}
		sel.WithMatchExpressions(req)
	}
	return sel
}

// reconcileNetworkPolicy applies desired when enabled; when not, it deletes the NetworkPolicy of
// that name if owner controls it (one the user wrote is left alone).
func reconcileNetworkPolicy(ctx context.Context, c client.Client, fieldOwner string, owner client.Object, enabled bool,
	desired *networkingv1ac.NetworkPolicyApplyConfiguration) error {
	if enabled {
		_, err := applyChild(ctx, c, fieldOwner, desired, &networkingv1.NetworkPolicy{}, networkingv1ac.ExtractNetworkPolicy)
		return err
	}
	return deleteIfControlled(ctx, c, owner, client.ObjectKey{Namespace: *desired.Namespace, Name: *desired.Name}, &networkingv1.NetworkPolicy{})
}
