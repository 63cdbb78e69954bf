// Package v1alpha1 contains the freightcast.io/v1alpha1 API: PredictionModel and FreightPipeline.
// +kubebuilder:object:generate=true
// +groupName=freightcast.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Freightcast API.
	GroupVersion = schema.GroupVersion{Group: "freightcast.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Freightcast kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Freightcast kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
