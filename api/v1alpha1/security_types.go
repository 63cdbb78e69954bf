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

// BearerTokenAuth points at the bearer tokens clients must present.
type BearerTokenAuth struct {
	// secretRef is a Secret in the resource's namespace whose key holds the accepted tokens,
	// one per line (blank lines and lines starting with '#' are ignored). The pods re-read it
	// when the Secret changes, so tokens rotate without a restart.
	// +required
	SecretRef SecretKeyReference `json:"secretRef"`
}

// SecretKeyReference is a key of a Secret in the same namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// key in the Secret.
	// +kubebuilder:default="tokens"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	Key string `json:"key,omitempty"`
}

// TLSSpec makes a server speak HTTPS.
type TLSSpec struct {
	// secretRef names a kubernetes.io/tls Secret in the resource's namespace (keys tls.crt and
	// tls.key), e.g. one cert-manager issues. The pods reload the certificate when the Secret
	// changes, and their probes switch to HTTPS.
	// +required
	SecretRef SecretReference `json:"secretRef"`
}

// SecretReference names a Secret in the same namespace.
type SecretReference struct {
	// name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`
}
