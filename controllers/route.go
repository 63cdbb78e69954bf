package controllers

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch;create;update;patch;delete

// The route kinds the operator writes, looked up in the cluster's API discovery.
const (
	kindHTTPRoute = "HTTPRoute"
	kindGRPCRoute = "GRPCRoute"
)

// httpRoutesServed reports whether the API server serves gateway.networking.k8s.io/v1
// HTTPRoutes. Only then do the controllers watch and write them.
func httpRoutesServed(mapper meta.RESTMapper) (bool, error) {
	return routeKindServed(mapper, kindHTTPRoute)
}

// routeKindServed reports whether the API server serves gateway.networking.k8s.io/v1 routes of
// kind: a cluster may have an older Gateway API release with HTTPRoutes and no v1 GRPCRoutes.
func routeKindServed(mapper meta.RESTMapper, kind string) (bool, error) {
	_, err := mapper.RESTMapping(schema.GroupKind{Group: gatewayv1.GroupName, Kind: kind}, gatewayv1.GroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("looking up the Gateway API %s kind: %w", kind, err)
	}
}

// routeObservation is what a reconcile learned about one of the resource's routes.
type routeObservation struct {
	// kind is the route's kind, HTTPRoute or GRPCRoute.
	kind string
	// requested: the spec asks for a route.
	requested bool
	// unavailable: it does, but the cluster serves no routes of that kind.
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
	spec := gatewayv1ac.HTTPRouteSpec().
		WithParentRefs(parentReference(route.Gateway, route.Gateway.SectionName)).
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

// parentReference is the Gateway listener a route attaches to.
func parentReference(gw freightcastv1alpha1.GatewayReference, sectionName string) *gatewayv1ac.ParentReferenceApplyConfiguration {
	parent := gatewayv1ac.ParentReference().
		WithGroup(gatewayv1.GroupName).
		WithKind("Gateway").
		WithName(gatewayv1.ObjectName(gw.Name))
	if gw.Namespace != "" {
		parent.WithNamespace(gatewayv1.Namespace(gw.Namespace))
	}
	if sectionName != "" {
		parent.WithSectionName(gatewayv1.SectionName(sectionName))
	}
	return parent
}

// desiredPredictorGRPCRoute routes every method of the model's Service's grpc port: the OIP
// service and grpc.health.v1, which gateways' health checks and clients' probes call.
func desiredPredictorGRPCRoute(model *freightcastv1alpha1.PredictionModel) *gatewayv1ac.GRPCRouteApplyConfiguration {
	route := model.Spec.Route
	hostnames := route.Hostnames
	if len(route.GRPC.Hostnames) > 0 {
		hostnames = route.GRPC.Hostnames
	}
	spec := gatewayv1ac.GRPCRouteSpec().
		WithParentRefs(parentReference(route.Gateway, cmp.Or(route.GRPC.SectionName, route.Gateway.SectionName))).
		WithRules(gatewayv1ac.GRPCRouteRule().
			WithBackendRefs(gatewayv1ac.GRPCBackendRef().
				WithGroup("").
				WithKind("Service").
				WithName(gatewayv1.ObjectName(predictorName(model))).
				WithPort(grpcPort)))
	for _, h := range hostnames {
		spec.WithHostnames(gatewayv1.Hostname(h))
	}
	return gatewayv1ac.GRPCRoute(predictorName(model), model.Namespace).
		WithLabels(predictorLabels(model)).
		WithOwnerReferences(modelOwnerReference(model)).
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
		&model.Spec.Route.RouteSpec, "/v2", predictorName(model))
}

// reconcileRoute applies the route the spec asks for, or deletes the one owner controls when
// the spec no longer asks for it. Without the route's kind in the cluster it writes nothing and
// says so in the observation. build is only called when a route is wanted; section is the
// listener it attaches to, for the condition's message.
func reconcileRoute[O client.Object, A namedApplyConfiguration](ctx context.Context, c client.Client, fieldOwner string, served bool, owner client.Object, name string,
	kind string, route *freightcastv1alpha1.RouteSpec, section string, build func() A, live func() O, extract func(O, string) (A, error)) (routeObservation, error) {
	obs := routeObservation{kind: kind}
	if route != nil {
		obs.requested = true
		obs.gateway = route.Gateway.Name
		if route.Gateway.Namespace != "" {
			obs.gateway = route.Gateway.Namespace + "/" + obs.gateway
		}
		if section != "" {
			obs.gateway += " listener " + section
		}
	}
	if !served {
		obs.unavailable = obs.requested
		return obs, nil
	}
	if route != nil {
		_, obs.err = applyChild(ctx, c, fieldOwner, build(), live(), extract)
		return obs, obs.err
	}
	return obs, deleteIfControlled(ctx, c, owner, client.ObjectKey{Namespace: owner.GetNamespace(), Name: name}, live())
}

// reconcileHTTPRoute is reconcileRoute for an HTTPRoute.
func reconcileHTTPRoute(ctx context.Context, c client.Client, fieldOwner string, served bool, owner client.Object, name string,
	route *freightcastv1alpha1.RouteSpec, build func() *gatewayv1ac.HTTPRouteApplyConfiguration) (routeObservation, error) {
	section := ""
	if route != nil {
		section = route.Gateway.SectionName
	}
	return reconcileRoute(ctx, c, fieldOwner, served, owner, name, kindHTTPRoute, route, section, build,
		func() *gatewayv1.HTTPRoute { return &gatewayv1.HTTPRoute{} }, gatewayv1ac.ExtractHTTPRoute)
}

// setRouteCondition sets RouteReady from the observations of the resource's routes (the first
// that failed says why), and removes it when no route is asked for.
func setRouteCondition(c *conditionSetter, routes ...routeObservation) {
	var attached []string
	for _, obs := range routes {
		switch {
		case !obs.requested:
			continue
		case obs.err != nil:
			c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonApplyFailed, obs.err.Error())
			return
		case obs.unavailable:
			c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonGatewayAPIUnavailable,
				"the cluster serves no gateway.networking.k8s.io/v1 "+obs.kind+"s: install the Gateway API CRDs, then restart the operator, which looks for them at startup")
			return
		}
		attached = append(attached, obs.kind+" attached to Gateway "+obs.gateway)
	}
	if len(attached) == 0 {
		meta.RemoveStatusCondition(&c.conditions, freightcastv1alpha1.ConditionRouteReady)
		return
	}
	c.set(freightcastv1alpha1.ConditionRouteReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonRouteApplied,
		strings.Join(attached, ", ")+"; the Gateway's status on each route says whether it accepted it")
}
