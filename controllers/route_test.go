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
	m.Spec.Route = &freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "internal"}}
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

// gatewayCRDs are the Gateway API CRD files of the module go.mod pins.
func gatewayCRDs(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("locating the gateway-api module: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	var paths []string
	for _, kind := range []string{"gatewayclasses", "gateways", "httproutes", "referencegrants"} {
		paths = append(paths, filepath.Join(dir, "gateway.networking.k8s.io_"+kind+".yaml"))
	}
	return paths
}

func httpRoutesServedNow(t *testing.T) bool {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatal(err)
	}
	served, err := httpRoutesServed(restmapper.NewDiscoveryRESTMapper(groups))
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
		model.Spec.Route = route
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

	if !httpRoutesServedNow(t) {
		if _, err := envtest.InstallCRDs(testConfig, envtest.CRDInstallOptions{Paths: gatewayCRDs(t), ErrorIfPathMissing: true}); err != nil {
			t.Fatalf("installing the Gateway API CRDs: %v", err)
		}
	}

	t.Run("with the Gateway API", func(t *testing.T) {
		ns := newNamespace(t)
		startOperator(t, "", ns)
		p := newPipeline(ns, "orders", "risk")
		p.Spec.Ingestion.Route = route
		model := newModel(ns, "risk", "risk-onnx")
		model.Spec.Route = &freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "internal"}}
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
