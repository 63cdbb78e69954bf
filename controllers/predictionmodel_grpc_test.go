package controllers

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
)

// A model's pods serve the Open Inference Protocol over gRPC on a second port, which its Service
// exposes by name: h2c in plaintext, TLS (h2 by ALPN) when the model has spec.tls.
func TestPredictorServesGRPC(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		tls          *freightcastv1alpha1.TLSSpec
		wantProtocol string
	}{
		"plaintext": {wantProtocol: "kubernetes.io/h2c"},
		"TLS":       {tls: &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "cert"}}, wantProtocol: "https"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := newModel("ns", "risk", "")
			m.Spec.TLS = tc.tls
			svc := typedOf[corev1.Service](t, desiredPredictorService(m))
			wantPorts := []corev1.ServicePort{
				{Name: "http", Port: 8080, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To(urlScheme(tc.tls))},
				{Name: "grpc", Port: 8081, TargetPort: intstr.FromString("grpc"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To(tc.wantProtocol)},
			}
			if diff := cmp.Diff(wantPorts, svc.Spec.Ports); diff != "" {
				t.Errorf("Service ports (-want +got):\n%s", diff)
			}
			d := typedOf[appsv1.Deployment](t, desiredPredictorDeployment(m, spec.SpecRevision(m, "sha256:m"), testOptions))
			c := d.Spec.Template.Spec.Containers[0]
			wantContainerPorts := []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
				{Name: "grpc", ContainerPort: 8081, Protocol: corev1.ProtocolTCP},
			}
			if diff := cmp.Diff(wantContainerPorts, c.Ports); diff != "" {
				t.Errorf("container ports (-want +got):\n%s", diff)
			}
			if !slices.Contains(c.Args, "--grpc-addr=:8081") {
				t.Errorf("args %q lack --grpc-addr=:8081", c.Args)
			}
		})
	}
}
