package v1alpha1

import (
	networkingv1 "k8s.io/api/networking/v1"
)

// NetworkPolicyMode says whether the operator writes a NetworkPolicy for a resource's pods.
// +kubebuilder:validation:Enum=Enabled;Disabled
type NetworkPolicyMode string

const (
	// NetworkPolicyEnabled writes a NetworkPolicy that admits only what the pods need.
	NetworkPolicyEnabled NetworkPolicyMode = "Enabled"
	// NetworkPolicyDisabled writes none, and removes the one the operator wrote before.
	NetworkPolicyDisabled NetworkPolicyMode = "Disabled"
)

// NetworkPolicySpec configures the NetworkPolicy the operator writes for a resource's pods.
// Ingress is limited to the pods' one HTTP port (API, health and /metrics); egress to DNS, the
// NATS server's port(s) (pipelines) and the model URI's port (models downloaded over https).
// Egress rules name ports, not addresses, so a NATS server or model store outside the cluster
// stays reachable.
type NetworkPolicySpec struct {
	// mode is Enabled (the default) or Disabled. Disabled removes the NetworkPolicy the operator
	// wrote; use it when the cluster's own policies already govern these pods.
	// +kubebuilder:default=Enabled
	// +optional
	Mode NetworkPolicyMode `json:"mode,omitempty"`

	// from lists the peers (pod and namespace selectors, IP blocks) allowed to reach the pods'
	// HTTP port. Empty admits any source. The port also serves /metrics: list the metrics
	// scraper's namespace too.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(p, has(p.podSelector) || has(p.namespaceSelector) || has(p.ipBlock))",message="each networkPolicy.from peer needs a podSelector, a namespaceSelector or an ipBlock"
	// +kubebuilder:validation:XValidation:rule="self.all(p, !has(p.ipBlock) || isCIDR(p.ipBlock.cidr))",message="networkPolicy.from ipBlock.cidr must be a CIDR"
	// +optional
	From []networkingv1.NetworkPolicyPeer `json:"from,omitempty"`
}
