package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/autoscale"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
)

func testModel() *freightcastv1alpha1.PredictionModel {
	return &freightcastv1alpha1.PredictionModel{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "m"},
		Spec: freightcastv1alpha1.PredictionModelSpec{
			Source:   freightcastv1alpha1.ModelSource{ConfigMap: &freightcastv1alpha1.ConfigMapModelSource{Name: "cm"}},
			Features: []string{"distance_km", "carrier_on_time_rate", "port_congestion_index"},
		},
	}
}

func testPipeline() *freightcastv1alpha1.FreightPipeline {
	return &freightcastv1alpha1.FreightPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orders"},
		Spec:       freightcastv1alpha1.FreightPipelineSpec{ModelRef: freightcastv1alpha1.ModelReference{Name: "m"}},
	}
}

func TestPipeline(t *testing.T) {
	m := testModel()
	m.Spec.Version = "7"
	cases := map[string]struct {
		mutate          func(*freightcastv1alpha1.FreightPipeline)
		defaultReplicas int
		want            func(*pipelineconfig.Config)
	}{
		"defaults": {mutate: func(*freightcastv1alpha1.FreightPipeline) {}, want: func(*pipelineconfig.Config) {}},
		"the operator's default replicas apply when the spec has none": {
			mutate: func(*freightcastv1alpha1.FreightPipeline) {}, defaultReplicas: 3,
			want: func(c *pipelineconfig.Config) { c.Queue.Replicas = 3 },
		},
		"the spec's replicas win over the operator's default": {
			mutate:          func(p *freightcastv1alpha1.FreightPipeline) { p.Spec.Queue.Replicas = ptr.To[int32](5) },
			defaultReplicas: 3,
			want:            func(c *pipelineconfig.Config) { c.Queue.Replicas = 5 },
		},
		"creds and a CA": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "nats-orders"}}
				p.Spec.Queue.TLS = &freightcastv1alpha1.QueueTLS{CASecretRef: freightcastv1alpha1.SecretReference{Name: "nats-ca"}}
			},
			want: func(c *pipelineconfig.Config) {
				c.NATSCredentials = queue.Credentials{CredsFile: "/etc/freightcast/nats/creds", CAFile: "/etc/freightcast/nats-ca/ca.crt"}
			},
		},
		"an NKey": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "s"}, Type: freightcastv1alpha1.NATSNKey}
			},
			want: func(c *pipelineconfig.Config) {
				c.NATSCredentials = queue.Credentials{NKeySeedFile: "/etc/freightcast/nats/nkey"}
			},
		},
		"a user and password": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "s"}, Type: freightcastv1alpha1.NATSUserPassword}
			},
			want: func(c *pipelineconfig.Config) {
				c.NATSCredentials = queue.Credentials{UserFile: "/etc/freightcast/nats/user", PasswordFile: "/etc/freightcast/nats/password"}
			},
		},
		"auth and a rate limit without burst": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Ingestion.Auth = &freightcastv1alpha1.BearerTokenAuth{SecretRef: freightcastv1alpha1.SecretKeyReference{Name: "s"}}
				p.Spec.Ingestion.RateLimit = &freightcastv1alpha1.RateLimitSpec{EventsPerSecond: 500}
			},
			want: func(c *pipelineconfig.Config) {
				c.Ingestion.TokensFile = "/etc/freightcast/auth/tokens"
				c.Ingestion.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: 500, Burst: 500}
			},
		},
		"bigger pool and batches raise the ack-pending bound": {
			mutate: func(p *freightcastv1alpha1.FreightPipeline) {
				p.Spec.Inference.MaxReplicas, p.Spec.Inference.BatchSize = 40, 128
			},
			want: func(c *pipelineconfig.Config) {
				c.Queue.MaxAckPending = 40 * 128 * 2
				c.Inference.BatchSize = 128
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			want := pipelineconfig.Config{
				Namespace: "ns", Name: "orders", NATSURL: "nats://nats:4222",
				Queue: queue.Spec{Replicas: 1, Topology: queue.TopologyFor("ns", "orders"), Limits: queue.Limits{
					MaxMessages: 1_000_000, MaxBytes: 256 << 20, MaxAge: 24 * time.Hour, DuplicateWindow: 2 * time.Minute,
					AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 10 * 64 * 2, PredictionRetention: 24 * time.Hour}},
				Model:     pipelineconfig.Model{Name: "m", Version: "7", Features: m.Spec.Features},
				Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 4 << 20},
				Inference: pipelineconfig.Inference{BatchSize: 64},
			}
			tc.want(&want)
			p := testPipeline()
			tc.mutate(p)
			got := Pipeline(p, m, "nats://nats:4222", tc.defaultReplicas)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("rendered config does not validate: %v", err)
			}
		})
	}
}

func TestConfigMapModel(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		cm      corev1.ConfigMap
		want    string
		wantErr error
	}{
		"binaryData": {cm: corev1.ConfigMap{BinaryData: map[string][]byte{"model.onnx": []byte("bin")}}, want: "bin"},
		"data":       {cm: corev1.ConfigMap{Data: map[string]string{"model.onnx": "text"}}, want: "text"},
		"binaryData before data": {cm: corev1.ConfigMap{BinaryData: map[string][]byte{"model.onnx": []byte("bin")},
			Data: map[string]string{"model.onnx": "text"}}, want: "bin"},
		"missing key": {cm: corev1.ConfigMap{Data: map[string]string{"other.onnx": "text"}}, wantErr: ErrModelKeyMissing},
		"empty":       {cm: corev1.ConfigMap{BinaryData: map[string][]byte{"model.onnx": {}}}, wantErr: ErrModelEmpty},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.cm.Name = "m-onnx"
			got, err := ConfigMapModel(&tc.cm, "model.onnx")
			if !errors.Is(err, tc.wantErr) || string(got) != tc.want {
				t.Errorf("ConfigMapModel = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), `ConfigMap m-onnx`) {
				t.Errorf("error %q does not name the ConfigMap", err)
			}
		})
	}
}

func TestAutoscale(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		mutate       func(*freightcastv1alpha1.InferenceSpec)
		want         autoscale.Policy
		wantInterval time.Duration
	}{
		"defaults": {
			mutate:       func(*freightcastv1alpha1.InferenceSpec) {},
			want:         autoscale.Policy{MinReplicas: 1, MaxReplicas: 10, TargetPerReplica: 100, Tolerance: 0.1},
			wantInterval: 2 * time.Second,
		},
		"every field": {
			mutate: func(in *freightcastv1alpha1.InferenceSpec) {
				in.MinReplicas, in.MaxReplicas, in.TargetQueueDepthPerReplica = ptr.To[int32](0), 40, 500
				in.TolerancePercent, in.ActivationQueueDepth = 5, 3
				in.PollInterval = &metav1.Duration{Duration: time.Second}
				in.DrainTarget = &metav1.Duration{Duration: time.Minute}
				in.Fallback = &freightcastv1alpha1.FallbackSpec{Replicas: 4}
				in.ScaleDown = &freightcastv1alpha1.ScalingRules{SelectPolicy: freightcastv1alpha1.SelectMin,
					StabilizationWindow: &metav1.Duration{Duration: 30 * time.Second},
					Policies:            []freightcastv1alpha1.ScalingPolicy{{Type: "Percent", Value: 50, Period: metav1.Duration{Duration: 15 * time.Second}}}}
			},
			want: autoscale.Policy{MinReplicas: 0, MaxReplicas: 40, TargetPerReplica: 500, Tolerance: 0.05, ActivationThreshold: 3,
				DrainTarget: time.Minute, FailureThreshold: 3, FallbackReplicas: ptr.To[int32](4),
				ScaleDown: autoscale.Rules{Select: autoscale.SelectMin, StabilizationWindow: ptr.To(30 * time.Second),
					Policies: []autoscale.RatePolicy{{Type: autoscale.Percent, Value: 50, Period: 15 * time.Second}}}},
			wantInterval: time.Second,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testPipeline()
			tc.mutate(&p.Spec.Inference)
			got, interval := Autoscale(p)
			if diff := cmp.Diff(tc.want, got); diff != "" || interval != tc.wantInterval {
				t.Errorf("policy (-want +got):\n%s\npoll interval %s, want %s", diff, interval, tc.wantInterval)
			}
			if _, err := autoscale.New(got); err != nil {
				t.Errorf("the recommender refuses the policy: %v", err)
			}
		})
	}
}

func TestModelServer(t *testing.T) {
	t.Parallel()
	m := testModel()
	rolledBack := freightcastv1alpha1.ModelRevision{Version: "0.9"}
	cases := map[string]struct {
		rev  freightcastv1alpha1.ModelRevision
		want Server
	}{
		"the spec's revision, defaults applied": {rev: SpecRevision(m, ""),
			want: Server{Name: "m", Version: "1", Features: m.Spec.Features, MaxBatchSize: 64, MaxBatchDelay: 2 * time.Millisecond}},
		"another revision keeps its version": {rev: rolledBack,
			want: Server{Name: "m", Version: "0.9", Features: m.Spec.Features, MaxBatchSize: 64, MaxBatchDelay: 2 * time.Millisecond}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, ModelServer(m, tc.rev)); diff != "" {
				t.Errorf("ModelServer (-want +got):\n%s", diff)
			}
		})
	}
}

// A model whose inputs declare features renders them into the pipeline config, each with its
// datatype when declared; inputs without features stay out.
func TestPipelineFeedsEveryDeclaredInput(t *testing.T) {
	t.Parallel()
	m := testModel()
	m.Spec.Features = nil
	m.Spec.Inputs = []freightcastv1alpha1.InputSpec{
		{Name: "numeric", Shape: []int64{-1, 2}, Features: []string{"distance_km", "weather_severity"}},
		{Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}},
	}
	got := Pipeline(testPipeline(), m, "nats://nats:4222", 1)
	want := []pipelineconfig.Input{
		{Name: "numeric", Features: []string{"distance_km", "weather_severity"}},
		{Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}},
	}
	if diff := cmp.Diff(want, got.Model.Inputs); diff != "" || got.Model.Features != nil {
		t.Errorf("inputs (-want +got):\n%s\nfeatures %v", diff, got.Model.Features)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("rendered config does not validate: %v", err)
	}
	m.Spec.Inputs = []freightcastv1alpha1.InputSpec{{Name: "features", DataType: "FP32"}}
	if got := Pipeline(testPipeline(), m, "nats://nats:4222", 1); got.Model.Inputs != nil {
		t.Errorf("inputs without features rendered as %+v", got.Model.Inputs)
	}
}
