package controllers

import (
	"net/url"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// A pool scoring remotely calls a port the model's Service exposes, of the protocol it speaks.
func TestRemoteModelCallsAPortOfTheService(t *testing.T) {
	t.Parallel()
	cases := map[string]func(*freightcastv1alpha1.PredictionModel){
		"our runtime":          func(*freightcastv1alpha1.PredictionModel) {},
		"our runtime with TLS": func(m *freightcastv1alpha1.PredictionModel) { m.Spec.TLS = &freightcastv1alpha1.TLSSpec{} },
		"a REST runtime": func(m *freightcastv1alpha1.PredictionModel) {
			m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "r"}
		},
		"a gRPC runtime": func(m *freightcastv1alpha1.PredictionModel) {
			m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "r", Protocol: freightcastv1alpha1.RuntimeProtocolGRPC}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "risk", "cm")
			mutate(m)
			u, err := url.Parse(spec.RemoteModel(m).URL)
			if err != nil {
				t.Fatal(err)
			}
			svc := typedOf[corev1.Service](t, desiredPredictorService(m))
			if u.Hostname() != svc.Name+"."+svc.Namespace+".svc" {
				t.Errorf("host %s, Service %s/%s", u.Hostname(), svc.Namespace, svc.Name)
			}
			wantName := httpPortName
			if u.Scheme == "grpc" || u.Scheme == "grpcs" {
				wantName = grpcPortName
			}
			for _, p := range svc.Spec.Ports {
				if strconv.Itoa(int(p.Port)) == u.Port() {
					if p.Name != wantName {
						t.Errorf("%s calls port %d, named %s", u, p.Port, p.Name)
					}
					return
				}
			}
			t.Errorf("%s calls a port the Service has not: %+v", u, svc.Spec.Ports)
		})
	}
}
