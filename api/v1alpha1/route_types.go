package v1alpha1

// RouteSpec exposes a server outside the cluster through a Gateway API HTTPRoute that the
// operator writes and owns. It needs the Gateway API CRDs (gateway.networking.k8s.io/v1); without
// them the resource reports RouteReady=False GatewayAPIUnavailable and everything else runs.
type RouteSpec struct {
	// gateway is the Gateway the HTTPRoute attaches to (its parentRef). A Gateway in another
	// namespace must admit routes from this one (its listeners' allowedRoutes).
	// +required
	Gateway GatewayReference `json:"gateway"`

	// hostnames the route answers for; empty means those of the Gateway's listener.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Hostnames []string `json:"hostnames,omitempty"`
}

// GatewayReference names a Gateway and, optionally, one of its listeners.
type GatewayReference struct {
	// name of the Gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// namespace of the Gateway; empty means the resource's own.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`

	// sectionName is the Gateway listener to attach to; empty means every listener that
	// admits the route.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}
