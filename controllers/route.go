package controllers

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;update;patch;delete

// httpRouteGroupKind is what the operator looks for in the cluster's API discovery.
var httpRouteGroupKind = schema.GroupKind{Group: gatewayv1.GroupName, Kind: "HTTPRoute"}

// httpRoutesServed reports whether the API server serves gateway.networking.k8s.io/v1
// HTTPRoutes. Only then do the controllers watch and write them.
func httpRoutesServed(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(httpRouteGroupKind, gatewayv1.GroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("looking up the Gateway API HTTPRoute kind: %w", err)
	}
}

// routeObservation is what a reconcile learned about the resource's HTTPRoute.
type routeObservation struct {
	// requested: the spec asks for a route.
	requested bool
	// unavailable: it does, but the cluster serves no HTTPRoutes.
	unavailable bool
	// gateway names the parent, for the condition's message.
	gateway string
	// err is why the route could not be written.
	err error
}

// desiredHTTPRoute routes pathPrefix on the named Gateway (and hostnames) to port httpPort of
// the Service backend, in the route's own namespace.
func desiredHTTPRoute(name, namespace string, labels map[string]string, owner *metav1ac.OwnerReferenceApplyConfiguration,
	route *freightcastv1alpha1.RouteSpec, pathPrefix, backend string) *gatewayv1ac.HTTPRouteApplyConfiguration {
	parent := gatewayv1ac.ParentReference().
		WithGroup(gatewayv1.GroupName).
		WithKind("Gateway").
		WithName(gatewayv1.ObjectName(route.Gateway.Name))
	if ns := route.Gateway.Namespace; ns != "" {
		parent.WithNamespace(gatewayv1.Namespace(ns))
	}
	if s := route.Gateway.SectionName; s != "" {
		parent.WithSectionName(gatewayv1.SectionName(s))
	}
	spec := gatewayv1ac.HTTPRouteSpec().
		WithParentRefs(parent).
		WithRules(gatewayv1ac.HTTPRouteRule().
			WithMatches(gatewayv1ac.HTTPRouteMatch().WithPath(gatewayv1ac.HTTPPathMatch().
				WithType(gatewayv1.PathMatchPathPrefix).
				WithValue(pathPrefix))).
			WithBackendRefs(gatewayv1ac.HTTPBackendRef().
				WithGroup("").
				WithKind("Service").
				WithName(gatewayv1.ObjectName(backend)).
				WithPort(httpPort)))
	for _, h := range route.Hostnames {
		spec.WithHostnames(gatewayv1.Hostname(h))
	}
	return gatewayv1ac.HTTPRoute(name, namespace).
		WithLabels(labels).
		WithOwnerReferences(owner).
		WithSpec(spec)
}

// desiredIngestionRoute exposes the ingestion API (/v1/events, /v1/predictions); the probes and
// /metrics are not routed.
func desiredIngestionRoute(p *freightcastv1alpha1.FreightPipeline) *gatewayv1ac.HTTPRouteApplyConfiguration {
	return desiredHTTPRoute(ingestionName(p), p.Namespace, pipelineLabels(p, componentIngestion), pipelineOwnerReference(p),
		p.Spec.Ingestion.Route, "/v1", ingestionName(p))
}

// desiredPredictorRoute exposes the model's Open Inference Protocol API (/v2); /metrics is not
// routed.
func desiredPredictorRoute(model *freightcastv1alpha1.PredictionModel) *gatewayv1ac.HTTPRouteApplyConfiguration {
	return desiredHTTPRoute(predictorName(model), model.Namespace, predictorLabels(model), modelOwnerReference(model),
		model.Spec.Route, "/v2", predictorName(model))
}

// reconcileRoute applies the HTTPRoute the spec asks for, or deletes the one owner controls
// when the spec no longer asks for it. Without the Gateway API it writes nothing and says so in
// the observation. build is only called when a route is wanted.
func reconcileRoute(ctx context.Context, c client.Client, fieldOwner string, served bool, owner client.Object, name string,
	route *freightcastv1alpha1.RouteSpec, build func() *gatewayv1ac.HTTPRouteApplyConfiguration) (routeObservation, error) {
	var obs routeObservation
	if route != nil {
		obs.requested = true
		obs.gateway = route.Gateway.Name
		if route.Gateway.Namespace != "" {
			obs.gateway = route.Gateway.Namespace + "/" + obs.gateway
		}
		if route.Gateway.SectionName != "" {
			obs.gateway += " listener " + route.Gateway.SectionName
		}
	}
	if !served {
		obs.unavailable = obs.requested
		return obs, nil
	}
	if route != nil {
		_, obs.err = applyChild(ctx, c, fieldOwner, build(), &gatewayv1.HTTPRoute{}, gatewayv1ac.ExtractHTTPRoute)
		return obs, obs.err
	}
	return obs, deleteIfControlled(ctx, c, owner, client.ObjectKey{Namespace: owner.GetNamespace(), Name: name}, &gatewayv1.HTTPRoute{})
}

// setRouteCondition sets RouteReady from the observation, and removes it when no route is asked
// for.
func setRouteCondition(c *conditionSetter, obs routeObservation) {
	switch {
	case !obs.requested:
		meta.RemoveStatusCondition(&c.conditions, freightcastv1alpha1.ConditionRouteReady)
	case obs.err != nil:
		c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonApplyFailed, obs.err.Error())
	case obs.unavailable:
		c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonGatewayAPIUnavailable,
			"the cluster serves no gateway.networking.k8s.io/v1 HTTPRoutes: install the Gateway API CRDs, then restart the operator, which looks for them at startup")
	default:
		c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonRouteApplied,
			"HTTPRoute attached to Gateway "+obs.gateway+"; the Gateway's status on the route says whether it accepted it")
	}
}
