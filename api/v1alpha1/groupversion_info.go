// Package v1alpha1 contains the freightcast.io/v1alpha1 API: PredictionModel and FreightPipeline.
// +kubebuilder:object:generate=true
// +groupName=freightcast.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the Freightcast API.
	GroupVersion = schema.GroupVersion{Group: "freightcast.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Freightcast kinds with a runtime.Scheme. It is apimachinery's
	// rather than controller-runtime's, so that the packages that translate the API for the data
	// plane (internal/spec, local mode) do not pull in controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Freightcast kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PredictionModel{}, &PredictionModelList{}, &FreightPipeline{}, &FreightPipelineList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
