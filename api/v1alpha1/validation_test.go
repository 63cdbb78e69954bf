package v1alpha1_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// The API server, with the generated CRDs, is what rejects bad specs and fills in defaults: these
// cases run against it.

func TestInvalidPredictionModelsAreRejected(t *testing.T) {
	ns := newNamespace(t)
	const sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := map[string]struct {
		mutate func(*freightcastv1alpha1.PredictionModel)
		// wantInMessage must all appear in the API server's error.
		wantInMessage []string
	}{
		"no source": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Source = freightcastv1alpha1.ModelSource{} },
			wantInMessage: []string{"spec.source", "exactly one of"},
		},
		"two sources": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source.URI, m.Spec.Source.SHA256 = "https://models.example.com/m.onnx", sha
			},
			wantInMessage: []string{"spec.source", "exactly one of"},
		},
		"uri without sha256": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx"}
			},
			wantInMessage: []string{"spec.source", "sha256 is required"},
		},
		"plain http uri": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source = freightcastv1alpha1.ModelSource{URI: "http://models.example.com/m.onnx", SHA256: sha}
			},
			wantInMessage: []string{"spec.source.uri", "https://"},
		},
		"short sha256": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx", SHA256: "abc123"}
			},
			wantInMessage: []string{"spec.source.sha256"},
		},
		"a CA bundle without a download": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source.CABundle = &freightcastv1alpha1.CABundleSource{ConfigMap: freightcastv1alpha1.ConfigMapKeySelector{Name: "store-ca"}}
			},
			wantInMessage: []string{"spec.source", "caBundle is only allowed with source.uri"},
		},
		"a CA bundle ConfigMap without a name": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source = freightcastv1alpha1.ModelSource{URI: "https://models.example.com/m.onnx", SHA256: sha,
					CABundle: &freightcastv1alpha1.CABundleSource{}}
			},
			wantInMessage: []string{"spec.source.caBundle.configMap.name"},
		},
		"pvc path escaping the volume": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Source = freightcastv1alpha1.ModelSource{PersistentVolumeClaim: &freightcastv1alpha1.PVCModelSource{ClaimName: "models", Path: "a/../../etc/passwd"}}
			},
			wantInMessage: []string{"spec.source.persistentVolumeClaim.path", "'..'"},
		},
		"duplicate features": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Features = []string{"a", "b", "a"} },
			wantInMessage: []string{"spec.features[2]", "Duplicate"},
		},
		"feature name with a space": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Features = []string{"port congestion"} },
			wantInMessage: []string{"spec.features[0]"},
		},
		"negative replicas": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Replicas = ptr.To[int32](-1) },
			wantInMessage: []string{"spec.replicas"},
		},
		"unknown format": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Format = "PMML" },
			wantInMessage: []string{"spec.format", "ONNX"},
		},
		"batch too large": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Batching.MaxBatchSize = 100000 },
			wantInMessage: []string{"spec.batching.maxBatchSize"},
		},
		"queue delay too long": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Batching.MaxQueueDelay = &metav1.Duration{Duration: 5 * time.Second}
			},
			wantInMessage: []string{"spec.batching.maxQueueDelay"},
		},
		"auth Secret key with a slash": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "t", Key: "../tokens"}}
			},
			wantInMessage: []string{"spec.auth.secretRef.key"},
		},
		"auth without a Secret name": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{}
			},
			wantInMessage: []string{"spec.auth.secretRef.name"},
		},
		"tls Secret name too long": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: strings.Repeat("c", 254)}}
			},
			wantInMessage: []string{"spec.tls.secretRef.name"},
		},
		"route to a gateway namespace that is not a DNS label": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge", Namespace: "Gateways"}}}
			},
			wantInMessage: []string{"spec.route.gateway.namespace"},
		},
		"too many network policy peers": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.NetworkPolicy.From = make([]networkingv1.NetworkPolicyPeer, 17)
				for i := range m.Spec.NetworkPolicy.From {
					m.Spec.NetworkPolicy.From[i].IPBlock = &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}
				}
			},
			wantInMessage: []string{"spec.networkPolicy.from", "16"},
		},
		"runtime without an image": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{} },
			wantInMessage: []string{"spec.runtime.image"},
		},
		"runtime with an unknown protocol": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", Protocol: "SOAP"}
			},
			wantInMessage: []string{"spec.runtime.protocol", "REST", "GRPC"},
		},
		"runtime port out of range": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", Port: 70000}
			},
			wantInMessage: []string{"spec.runtime.port"},
		},
		"runtime model directory that is relative": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", ModelDir: "models"}
			},
			wantInMessage: []string{"spec.runtime.modelDir", "absolute"},
		},
		"runtime model directory escaping upwards": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", ModelDir: "/mnt/../etc"}
			},
			wantInMessage: []string{"spec.runtime.modelDir", "'..'"},
		},
		"runtime env in the operator's namespace": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08",
					Env: []corev1.EnvVar{{Name: "FREIGHTCAST_MODEL_PATH", Value: "/elsewhere"}}}
			},
			wantInMessage: []string{"spec.runtime", "FREIGHTCAST_"},
		},
		"runtime with tls": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08"}
				m.Spec.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "cert"}}
			},
			wantInMessage: []string{"spec.tls is not supported with spec.runtime"},
		},
		"route to a gRPC runtime": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08", Protocol: freightcastv1alpha1.RuntimeProtocolGRPC, Port: 8001}
				m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge"}}}
			},
			wantInMessage: []string{"spec.route exposes REST only"},
		},
		"gRPC route to a runtime of the model's own": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "tritonserver:24.08"}
				m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge"}},
					GRPC: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "grpc"}}
			},
			wantInMessage: []string{"spec.route.grpc routes Freightcast's own gRPC port"},
		},
		"gRPC route on the HTTPRoute's listener and hostnames": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge", SectionName: "https"},
					Hostnames: []string{"m.example.com"}}, GRPC: &freightcastv1alpha1.GRPCRouteSpec{SectionName: "https", Hostnames: []string{"m.example.com"}}}
			},
			wantInMessage: []string{"route.grpc needs a sectionName or hostnames of its own"},
		},
		"gRPC route hostname that is not a DNS name": {
			mutate: func(m *freightcastv1alpha1.PredictionModel) {
				m.Spec.Route = &freightcastv1alpha1.ModelRouteSpec{RouteSpec: freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge"}},
					GRPC: &freightcastv1alpha1.GRPCRouteSpec{Hostnames: []string{"Infer_Example"}}}
			},
			wantInMessage: []string{"spec.route.grpc.hostnames"},
		},
		"name too long for its Services": {
			mutate:        func(m *freightcastv1alpha1.PredictionModel) { m.Name = strings.Repeat("m", 60) },
			wantInMessage: []string{"metadata.name"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := newModel(ns, "m", "m-onnx")
			tc.mutate(m)
			assertRejected(t, m, tc.wantInMessage)
		})
	}
}

func TestInvalidFreightPipelinesAreRejected(t *testing.T) {
	ns := newNamespace(t)
	cases := map[string]struct {
		mutate        func(*freightcastv1alpha1.FreightPipeline)
		wantInMessage []string
	}{
		"no model": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.ModelRef.Name = "" },
			wantInMessage: []string{"spec.modelRef.name"},
		},
		"min above max": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Inference.MinReplicas, p.Spec.Inference.MaxReplicas = ptr.To[int32](5), 2
			},
			wantInMessage: []string{"spec.inference", "minReplicas must not exceed"},
		},
		"zero max replicas": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.Inference.MaxReplicas = -1 },
			wantInMessage: []string{"spec.inference.maxReplicas"},
		},
		"queue url not nats": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.Queue.URL = "http://nats:4222" },
			wantInMessage: []string{"spec.queue.url", "nats://"},
		},
		"poll interval too short": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Inference.PollInterval = &metav1.Duration{Duration: 100 * time.Millisecond}
			},
			wantInMessage: []string{"spec.inference.pollInterval"},
		},
		"tiny stream": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Queue.MaxBytes = ptr.To(resource.MustParse("1Ki"))
			},
			wantInMessage: []string{"spec.queue.maxBytes"},
		},
		"reporting without dimensions": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Dimensions = nil
			},
			wantInMessage: []string{"spec.reporting.dimensions"},
		},
		"a reporting dimension name with capitals": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Dimensions[0].Name = "Lane"
			},
			wantInMessage: []string{"spec.reporting.dimensions[0].name"},
		},
		"a reporting threshold that is not a number": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Threshold = "high"
			},
			wantInMessage: []string{"spec.reporting.threshold"},
		},
		"reporting buckets coarsest first": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Buckets = []freightcastv1alpha1.ReportBucket{
					{Width: metav1.Duration{Duration: time.Hour}, Retention: metav1.Duration{Duration: 48 * time.Hour}},
					{Width: metav1.Duration{Duration: 5 * time.Minute}, Retention: metav1.Duration{Duration: 48 * time.Hour}},
				}
			},
			wantInMessage: []string{"spec.reporting", "finest first"},
		},
		"a reporting bucket kept less than its width": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Buckets = []freightcastv1alpha1.ReportBucket{
					{Width: metav1.Duration{Duration: time.Hour}, Retention: metav1.Duration{Duration: time.Minute}},
				}
			},
			wantInMessage: []string{"spec.reporting.buckets[0]", "at least its width"},
		},
		"a reporting bucket narrower than a minute": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Buckets = []freightcastv1alpha1.ReportBucket{
					{Width: metav1.Duration{Duration: time.Second}, Retention: metav1.Duration{Duration: time.Hour}},
				}
			},
			wantInMessage: []string{"spec.reporting.buckets[0].width", "between 1m and 24h"},
		},
		"no reporting output": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Reporting = reporting()
				p.Spec.Reporting.Outputs = nil
			},
			wantInMessage: []string{"spec.reporting.outputs"},
		},
		"burst below rate": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.RateLimit = &freightcastv1alpha1.RateLimitSpec{EventsPerSecond: 100, Burst: 10}
			},
			wantInMessage: []string{"spec.ingestion.rateLimit", "burst"},
		},
		"unknown scaling policy": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Inference.ScaleDown = &freightcastv1alpha1.ScalingRules{Policies: []freightcastv1alpha1.ScalingPolicy{
					{Type: "Bananas", Value: 1, Period: metav1.Duration{Duration: time.Minute}}}}
			},
			wantInMessage: []string{"spec.inference.scaleDown.policies[0].type"},
		},
		"max deliver zero": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.Queue.MaxDeliver = -3 },
			wantInMessage: []string{"spec.queue.maxDeliver"},
		},
		"ingestion tls without a Secret name": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.TLS = &freightcastv1alpha1.TLSSpec{}
			},
			wantInMessage: []string{"spec.ingestion.tls.secretRef.name"},
		},
		"ingestion tls Secret name not a DNS name": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.TLS = &freightcastv1alpha1.TLSSpec{SecretRef: freightcastv1alpha1.SecretReference{Name: "Orders_Cert"}}
			},
			wantInMessage: []string{"spec.ingestion.tls.secretRef.name"},
		},
		"route without a gateway name": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.Route = &freightcastv1alpha1.RouteSpec{}
			},
			wantInMessage: []string{"spec.ingestion.route.gateway.name"},
		},
		"route hostname with a scheme": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.Route = &freightcastv1alpha1.RouteSpec{Gateway: freightcastv1alpha1.GatewayReference{Name: "edge"},
					Hostnames: []string{"https://events.example.com"}}
			},
			wantInMessage: []string{"spec.ingestion.route.hostnames[0]"},
		},
		"unknown network policy mode": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.NetworkPolicy.Mode = "Off" },
			wantInMessage: []string{"spec.networkPolicy.mode", "Enabled"},
		},
		"empty network policy peer": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.NetworkPolicy.From = []networkingv1.NetworkPolicyPeer{{}}
			},
			wantInMessage: []string{"spec.networkPolicy.from", "podSelector, a namespaceSelector or an ipBlock"},
		},
		"unknown scoring mode": {
			mutate:        func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.Inference.Scoring = "Elsewhere" },
			wantInMessage: []string{"spec.inference.scoring", "InProcess", "Remote"},
		},
		"network policy peer with a bad CIDR": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.NetworkPolicy.From = []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}}
			},
			wantInMessage: []string{"spec.networkPolicy.from", "must be a CIDR"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := newPipeline(ns, "p", "m")
			tc.mutate(p)
			assertRejected(t, p, tc.wantInMessage)
		})
	}
}

func TestARuntimeModelIsAccepted(t *testing.T) {
	ns := newNamespace(t)
	m := newModel(ns, "triton", "m-onnx")
	m.Spec.Runtime = &freightcastv1alpha1.RuntimeSpec{Image: "nvcr.io/nvidia/tritonserver:24.08-py3", Protocol: freightcastv1alpha1.RuntimeProtocolGRPC,
		Port: 8001, Args: []string{"tritonserver", "--model-repository=$(FREIGHTCAST_MODEL_DIR)"},
		Env: []corev1.EnvVar{{Name: "LOG_VERBOSE", Value: "1"}}}
	m.Spec.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "oip-tokens"}}
	mustCreate(t, m)
	got := &freightcastv1alpha1.PredictionModel{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(m), got); err != nil {
		t.Fatal(err)
	}
	if r := got.Spec.Runtime; r.ModelDir != "/mnt/models" || r.Port != 8001 || r.Protocol != freightcastv1alpha1.RuntimeProtocolGRPC {
		t.Errorf("runtime as stored = %+v, want modelDir /mnt/models, port 8001, GRPC", r)
	}
}

func TestQueueURLIsImmutable(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	p := newPipeline(ns, "p", "m")
	p.Spec.Queue.URL = "nats://nats-a.freight.svc:4222"
	mustCreate(t, p)
	p.Spec.Queue.URL = "nats://nats-b.freight.svc:4222"
	err := k8s.Update(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "queue.url is immutable") {
		t.Fatalf("changing queue.url: err = %v, want it refused as immutable", err)
	}
	// Other queue settings may change.
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Queue.MaxMessages = 42
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatalf("changing queue.maxMessages: %v", err)
	}
}

func assertRejected(t *testing.T, obj client.Object, wantInMessage []string) {
	t.Helper()
	err := k8s.Create(context.Background(), obj)
	if err == nil {
		_ = k8s.Delete(context.Background(), obj)
		t.Fatalf("the API server accepted %s", obj.GetName())
	}
	for _, want := range wantInMessage {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// reporting is a valid spec.reporting, which the cases above break one field at a time.
func reporting() *freightcastv1alpha1.ReportingSpec {
	return &freightcastv1alpha1.ReportingSpec{
		Dimensions: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
		Outputs:    []freightcastv1alpha1.ReportOutput{{Name: "delay_risk"}},
	}
}
