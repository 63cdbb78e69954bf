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

// ModelRouteSpec exposes a model's Open Inference Protocol API: REST (/v2) through an HTTPRoute
// and, when grpc is set, the gRPC service through a GRPCRoute as well. Each needs its Gateway API
// CRD (gateway.networking.k8s.io/v1); without it the model reports RouteReady=False
// GatewayAPIUnavailable and everything else runs.
// +kubebuilder:validation:XValidation:rule="!has(self.grpc) || (has(self.grpc.sectionName) && (!has(self.gateway.sectionName) || self.grpc.sectionName != self.gateway.sectionName)) || (has(self.grpc.hostnames) && size(self.grpc.hostnames) > 0 && has(self.hostnames) && size(self.hostnames) > 0 && !self.grpc.hostnames.exists(h, h in self.hostnames))",message="route.grpc needs a sectionName or hostnames of its own: a Gateway rejects a GRPCRoute on the listener and hostnames of an HTTPRoute"
type ModelRouteSpec struct {
	RouteSpec `json:",inline"`

	// grpc also routes inference.GRPCInferenceService to the Service's grpc port through a
	// GRPCRoute named like the HTTPRoute, attached to the same Gateway. Give it a listener
	// (sectionName) or hostnames of its own: the Gateway API has a GRPCRoute that shares an
	// HTTPRoute's listener and hostname rejected.
	// +optional
	GRPC *GRPCRouteSpec `json:"grpc,omitempty"`
}

// GRPCRouteSpec is where on the route's Gateway the model's gRPC service is routed.
type GRPCRouteSpec struct {
	// sectionName is the Gateway listener of the GRPCRoute; empty means the route's
	// gateway.sectionName.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	SectionName string `json:"sectionName,omitempty"`

	// hostnames the GRPCRoute answers for; empty means the route's hostnames.
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Hostnames []string `json:"hostnames,omitempty"`
}
