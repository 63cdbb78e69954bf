package controllers

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func TestDesiredHTTPRoutes(t *testing.T) {
	t.Parallel()
	p := newPipeline("ns", "orders", "m")
	p.Spec.Ingestion.Route = &freightcastv1alpha1.RouteSpec{
		Gateway:   freightcastv1alpha1.GatewayReference{Name: "edge", Namespace: "gateways", SectionName: "https"},
		Hostnames: []string{"events.freight.example.com"},
	}
	m := newModel("ns", "risk", "cm")
	m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "internal"}}}
	cases := map[string]struct {
		got  *gatewayv1.HTTPRoute
		want gatewayv1.HTTPRouteSpec
		name string
	}{
		"pipeline ingestion": {
			got:  typedOf[gatewayv1.HTTPRoute](t, desiredIngestionRoute(p)),
			name: "orders-ingest",
			want: routeSpec(gatewayv1.ParentReference{Group: ptr.To[gatewayv1.Group]("gateway.networking.k8s.io"), Kind: ptr.To[gatewayv1.Kind]("Gateway"),
				Name: "edge", Namespace: ptr.To[gatewayv1.Namespace]("gateways"), SectionName: ptr.To[gatewayv1.SectionName]("https")},
				[]gatewayv1.Hostname{"events.freight.example.com"}, "/v1", "orders-ingest"),
		},
		"model serving": {
			got:  typedOf[gatewayv1.HTTPRoute](t, desiredPredictorRoute(m)),
			name: "risk-predictor",
			want: routeSpec(gatewayv1.ParentReference{Group: ptr.To[gatewayv1.Group]("gateway.networking.k8s.io"), Kind: ptr.To[gatewayv1.Kind]("Gateway"), Name: "internal"},
				nil, "/v2", "risk-predictor"),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, tc.got.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if tc.got.Name != tc.name || len(tc.got.OwnerReferences) != 1 || !ptr.Deref(tc.got.OwnerReferences[0].Controller, false) {
				t.Errorf("name %s, owners %+v", tc.got.Name, tc.got.OwnerReferences)
			}
		})
	}
}

func TestDesiredGRPCRoutes(t *testing.T) {
	t.Parallel()
	gatewayRef := freightcastv1alpha1.GatewayReference{Name: "edge", Namespace: "gateways", SectionName: "https"}
	parent := func(section string) []gatewayv1.ParentReference {
		return []gatewayv1.ParentReference{{Group: ptr.To[gatewayv1.Group]("gateway.networking.k8s.io"), Kind: ptr.To[gatewayv1.Kind]("Gateway"),
			Name: "edge", Namespace: ptr.To[gatewayv1.Namespace]("gateways"), SectionName: ptr.To(gatewayv1.SectionName(section))}}
	}
	rules := []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
		Group: ptr.To[gatewayv1.Group](""), Kind: ptr.To[gatewayv1.Kind]("Service"), Name: "risk-predictor", Port: ptr.To[gatewayv1.PortNumber](8081),
	}}}}}}
	cases := map[string]struct {
		grpc *freightcastv1alpha1.GRPCRouteSpec
		want gatewayv1.GRPCRouteSpec
	}{
		"the route's listener, hostnames of its own": {
			grpc: &freightcastv1alpha1.GRPCRouteSpec{Hostnames: []string{"grpc.risk.example.com"}},
			want: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parent("https")},
				Hostnames: []gatewayv1.Hostname{"grpc.risk.example.com"}, Rules: rules},
		},
		"a listener of its own, the route's hostnames": {
			grpc: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc"},
			want: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parent("grpc")},
				Hostnames: []gatewayv1.Hostname{"risk.example.com"}, Rules: rules},
		},
		"a listener and hostnames of its own": {
			grpc: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc", Hostnames: []string{"grpc.risk.example.com"}},
			want: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: parent("grpc")},
				Hostnames: []gatewayv1.Hostname{"grpc.risk.example.com"}, Rules: rules},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "risk", "cm")
			m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{
				RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: gatewayRef, Hostnames: []string{"risk.example.com"}}, GRPC: tc.grpc}
			got := typedOf[gatewayv1.GRPCRoute](t, desiredPredictorGRPCRoute(m))
			if diff := cmp.Diff(tc.want, got.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if got.Name != "risk-predictor" || !metav1.IsControlledBy(got, m) {
				t.Errorf("name %s, owners %+v", got.Name, got.OwnerReferences)
			}
		})
	}
}

func routeSpec(parent gatewayv1.ParentReference, hostnames []gatewayv1.Hostname, prefix, backend string) gatewayv1.HTTPRouteSpec {
	return gatewayv1.HTTPRouteSpec{
		CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
		Hostnames:       hostnames,
		Rules: []gatewayv1.HTTPRouteRule{{
			Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To(prefix)}}},
			BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
				Group: ptr.To[gatewayv1.Group](""), Kind: ptr.To[gatewayv1.Kind]("Service"), Name: gatewayv1.ObjectName(backend), Port: ptr.To[gatewayv1.PortNumber](8080),
			}}}},
		}},
	}
}

// gatewayCRDs are the Gateway API CRD files of the module go.mod pins, of the given resources.
func gatewayCRDs(t *testing.T, resources ...string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("locating the gateway-api module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	var paths []string
	for _, kind := range resources {
		paths = append(paths, filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	return paths
}

func httpRoutesServedNow(t *testing.T) bool {
	t.Helper()
	return routeKindServedNow(t, kindHTTPRoute)
}

func routeKindServedNow(t *testing.T, kind string) bool {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	served, err := routeKindServed(restmapper.NewDiscoveryRESTMapper(groups), kind)
	if err != nil {
		t.Fatal(err)
	}
	return served
}

func getRoute(ns, name string) (*gatewayv1.HTTPRoute, error) {
	r := &gatewayv1.HTTPRoute{}
	return r, k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, r)
}

func waitRoute(t *testing.T, ns, name string, check func(*gatewayv1.HTTPRoute) error) *gatewayv1.HTTPRoute {
	t.Helper()
	var r *gatewayv1.HTTPRoute
	testenv.Eventually(t, 10*time.Second, "HTTPRoute "+name, func() (err error) {
		if r, err = getRoute(ns, name); err != nil {
			return err
		}
		return check(r)
	})
	return r
}

func waitGRPCRoute(t *testing.T, ns, name string, check func(*gatewayv1.GRPCRoute) error) *gatewayv1.GRPCRoute {
	t.Helper()
	r := &gatewayv1.GRPCRoute{}
	testenv.Eventually(t, 10*time.Second, "GRPCRoute "+name, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, r); err != nil {
			return err
		}
		return check(r)
	})
	return r
}

// TestHTTPRoutes runs without the Gateway API CRDs first, then installs them into the suite's API
// server (they stay: later tests do not ask for routes) and starts a new operator, which finds
// them at startup.
func TestHTTPRoutes(t *testing.T) {
	ctx := context.Background()
	route := &freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge", Namespace: "gateways", SectionName: "https"},
		Hostnames: []string{"events.freight.example.com"}}

	t.Run("without the Gateway API", func(t *testing.T) {
		if httpRoutesServedNow(t) {
			t.Skip("the Gateway API CRDs are already installed (an earlier run of this test)")
		}
		ns := newNamespace(t)
		startOperator(t, "", ns)
		model := newModel(ns, "risk", "risk-onnx")
		model.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: *route, GRPC: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc"}}
		mustCreate(t, newModelConfigMap(ns, "risk-onnx", modelBytes), model)
		// The route cannot be written; everything else goes on.
		waitCondition(t, model, freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonGatewayAPIUnavailable)
		mustEventuallyGetDeployment(t, ns, "risk-predictor")
		p := newPipeline(ns, "orders", "risk")
		p.Spec.Ingestion.Route = route
		mustCreate(t, p)
		waitCondition(t, p, freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonGatewayAPIUnavailable)
		waitEvent(t, p, "Warning", freightcastv1alpha1.ReasonGatewayAPIUnavailable)
	})

	installCRDs := func(resources ...string) {
		if _, err := envtest.InstallCRDs(testConfig, envtest.CRDInstallOptions{Paths: gatewayCRDs(t, resources...), ErrorIfPathMissing: true}); err != nil {
			t.Fatalf("installing the Gateway API CRDs: %v", err)
		}
	}
	if !httpRoutesServedNow(t) {
		installCRDs("gatewayclasses", "gateways", "httproutes", "referencegrants")
	}

	t.Run("with HTTPRoutes but no GRPCRoutes", func(t *testing.T) {
		if routeKindServedNow(t, kindGRPCRoute) {
			t.Skip("the GRPCRoute CRD is already installed (an earlier run of this test)")
		}
		ns := newNamespace(t)
		startOperator(t, "", ns)
		model := newModel(ns, "risk", "risk-onnx")
		model.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "internal"}},
			GRPC: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc"}}
		mustCreate(t, newModelConfigMap(ns, "risk-onnx", modelBytes), model)
		// The HTTPRoute is written; the condition names the kind that is missing.
		waitRoute(t, ns, "risk-predictor", func(r *gatewayv1.HTTPRoute) error { return nil })
		waitCondition(t, model, freightcastv1alpha1.ConditionRouteReady, metav1.ConditionFalse, freightcastv1alpha1.ReasonGatewayAPIUnavailable)
		if c := meta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionRouteReady); !strings.Contains(c.Message, "GRPCRoutes") {
			t.Errorf("message %q does not name GRPCRoutes", c.Message)
		}
	})

	if !routeKindServedNow(t, kindGRPCRoute) {
		installCRDs("grpcroutes")
	}

	t.Run("with the Gateway API", func(t *testing.T) {
		ns := newNamespace(t)
		startOperator(t, "", ns)
		p := newPipeline(ns, "orders", "risk")
		p.Spec.Ingestion.Route = route
		model := newModel(ns, "risk", "risk-onnx")
		model.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "internal"}},
			GRPC: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc", Hostnames: []string{"grpc.risk.example.com"}}}
		mustCreate(t, newModelConfigMap(ns, "risk-onnx", modelBytes), model, p)

		wantParent := gatewayv1.ParentReference{Group: ptr.To[gatewayv1.Group]("gateway.networking.k8s.io"), Kind: ptr.To[gatewayv1.Kind]("Gateway"),
			Name: "edge", Namespace: ptr.To[gatewayv1.Namespace]("gateways"), SectionName: ptr.To[gatewayv1.SectionName]("https")}
		r := waitRoute(t, ns, "orders-ingest", func(r *gatewayv1.HTTPRoute) error { return nil })
		if diff := cmp.Diff([]gatewayv1.ParentReference{wantParent}, r.Spec.ParentRefs); diff != "" {
			t.Errorf("parentRefs (-want +got):\n%s", diff)
		}
		backend := r.Spec.Rules[0].BackendRefs[0]
		if backend.Name != "orders-ingest" || ptr.Deref(backend.Port, 0) != 8080 || ptr.Deref(backend.Kind, "") != "Service" {
			t.Errorf("backendRef %+v", backend.BackendObjectReference)
		}
		if path := r.Spec.Rules[0].Matches[0].Path; ptr.Deref(path.Value, "") != "/v1" {
			t.Errorf("path match %+v", path)
		}
		if !metav1.IsControlledBy(r, p) {
			t.Errorf("route owners %+v", r.OwnerReferences)
		}
		waitCondition(t, p, freightcastv1alpha1.ConditionRouteReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonRouteApplied)
		mr := waitRoute(t, ns, "risk-predictor", func(r *gatewayv1.HTTPRoute) error { return nil })
		if b := mr.Spec.Rules[0].BackendRefs[0]; b.Name != "risk-predictor" || ptr.Deref(mr.Spec.Rules[0].Matches[0].Path.Value, "") != "/v2" {
			t.Errorf("model route %+v", mr.Spec.Rules)
		}
		gr := waitGRPCRoute(t, ns, "risk-predictor", func(*gatewayv1.GRPCRoute) error { return nil })
		if b := gr.Spec.Rules[0].BackendRefs[0]; b.Name != "risk-predictor" || ptr.Deref(b.Port, 0) != 8081 ||
			ptr.Deref(gr.Spec.ParentRefs[0].SectionName, "") != "grpc" || len(gr.Spec.Hostnames) != 1 || !metav1.IsControlledBy(gr, model) {
			t.Errorf("model GRPCRoute %+v", gr.Spec)
		}
		waitCondition(t, model, freightcastv1alpha1.ConditionRouteReady, metav1.ConditionTrue, freightcastv1alpha1.ReasonRouteApplied)
		if c := meta.FindStatusCondition(model.Status.Conditions, freightcastv1alpha1.ConditionRouteReady); !strings.Contains(c.Message, "GRPCRoute attached to Gateway internal listener grpc") {
			t.Errorf("message %q", c.Message)
		}
		// The GRPCRoute goes when the spec no longer asks for it; the HTTPRoute stays.
		mustUpdate(t, model, func() { model.Spec.Route.GRPC = nil })
		testenv.Eventually(t, 10*time.Second, "GRPCRoute risk-predictor deleted", func() error {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "risk-predictor"}, &gatewayv1.GRPCRoute{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
		if _, err := getRoute(ns, "risk-predictor"); err != nil {
			t.Errorf("the HTTPRoute: %v", err)
		}

		// Updated with the spec.
		mustUpdate(t, p, func() {
			p.Spec.Ingestion.Route.Hostnames = []string{"in.freight.example.com", "events.freight.example.com"}
		})
		waitRoute(t, ns, "orders-ingest", func(r *gatewayv1.HTTPRoute) error {
			if len(r.Spec.Hostnames) != 2 {
				return fmt.Errorf("hostnames %v", r.Spec.Hostnames)
			}
			return nil
		})

		// Restored after deletion.
		if err := k8s.Delete(ctx, r); err != nil {
			t.Fatal(err)
		}
		waitRoute(t, ns, "orders-ingest", func(got *gatewayv1.HTTPRoute) error {
			if got.UID == r.UID {
				return fmt.Errorf("not deleted yet")
			}
			return nil
		})

		// Deleted when the spec no longer asks for it, and the condition goes.
		mustUpdate(t, p, func() { p.Spec.Ingestion.Route = nil })
		testenv.Eventually(t, 10*time.Second, "HTTPRoute orders-ingest deleted", func() error {
			if _, err := getRoute(ns, "orders-ingest"); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
		testenv.Eventually(t, 10*time.Second, "RouteReady removed", func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			if c := meta.FindStatusCondition(p.Status.Conditions, freightcastv1alpha1.ConditionRouteReady); c != nil || p.Status.ObservedGeneration != p.Generation {
				return fmt.Errorf("condition %+v at generation %d/%d", c, p.Status.ObservedGeneration, p.Generation)
			}
			return nil
		})
	})
}
