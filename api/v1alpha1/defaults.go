package v1alpha1

import (
	"cmp"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The defaults below are the ones the CRD schema applies (the +kubebuilder:default markers).
// Go code that builds objects without an API server (local mode, unit tests) applies them with
// Default; a test checks that both agree.

// Default fills every unset field of the PredictionModel with its schema default.
func (m *PredictionModel) Default() {
	s := &m.Spec
	if s.Format == "" {
		s.Format = ModelFormatONNX
	}
	if s.Version == "" {
		s.Version = "1"
	}
	if s.Source.ConfigMap != nil && s.Source.ConfigMap.Key == "" {
		s.Source.ConfigMap.Key = "model.onnx"
	}
	if s.Replicas == nil {
		s.Replicas = ptr.To[int32](1)
	}
	if s.Batching.MaxBatchSize == 0 {
		s.Batching.MaxBatchSize = 64
	}
	if s.Batching.MaxQueueDelay == nil {
		s.Batching.MaxQueueDelay = &metav1.Duration{Duration: 2 * time.Millisecond}
	}
	if s.ProgressDeadlineSeconds == 0 {
		s.ProgressDeadlineSeconds = DefaultProgressDeadlineSeconds
	}
	if s.Auth != nil && s.Auth.SecretRef.Key == "" {
		s.Auth.SecretRef.Key = "tokens"
	}
	defaultNetworkPolicy(&s.NetworkPolicy)
	if r := s.Runtime; r != nil {
		r.Protocol = cmp.Or(r.Protocol, RuntimeProtocolREST)
		r.Port = cmp.Or(r.Port, DefaultRuntimePort)
		r.ModelDir = cmp.Or(r.ModelDir, DefaultRuntimeModelDir)
	}
}

// The defaults of spec.runtime.port and spec.runtime.modelDir.
const (
	DefaultRuntimePort     = 8080
	DefaultRuntimeModelDir = "/mnt/models"
)

// DefaultProgressDeadlineSeconds is spec.progressDeadlineSeconds' default.
const DefaultProgressDeadlineSeconds = 300

// Default fills every unset field of the FreightPipeline with its schema default.
func (p *FreightPipeline) Default() {
	q := &p.Spec.Queue
	if q.MaxMessages == 0 {
		q.MaxMessages = 1_000_000
	}
	if q.MaxBytes == nil {
		q.MaxBytes = ptr.To(resource.MustParse("256Mi"))
	}
	if q.DeletionPolicy == "" {
		q.DeletionPolicy = QueueDelete
	}
	if q.PendingEventsOnDelete == "" {
		q.PendingEventsOnDelete = PendingEventsWait
	}
	if q.Credentials != nil && q.Credentials.Type == "" {
		q.Credentials.Type = NATSCreds
	}
	defaultDuration(&q.MaxAge, 24*time.Hour)
	defaultDuration(&q.DuplicateWindow, 2*time.Minute)
	defaultDuration(&q.AckWait, 30*time.Second)
	if q.MaxDeliver == 0 {
		q.MaxDeliver = 5
	}

	in := &p.Spec.Ingestion
	if in.Replicas == nil {
		in.Replicas = ptr.To[int32](2)
	}
	if in.MaxBodyBytes == nil {
		in.MaxBodyBytes = ptr.To(resource.MustParse("4Mi"))
	}
	if in.Auth != nil && in.Auth.SecretRef.Key == "" {
		in.Auth.SecretRef.Key = "tokens"
	}

	inf := &p.Spec.Inference
	if inf.MinReplicas == nil {
		inf.MinReplicas = ptr.To[int32](1)
	}
	if inf.MaxReplicas == 0 {
		inf.MaxReplicas = 10
	}
	if inf.TargetQueueDepthPerReplica == 0 {
		inf.TargetQueueDepthPerReplica = 100
	}
	defaultDuration(&inf.PollInterval, 2*time.Second)
	for _, rules := range []*ScalingRules{inf.ScaleUp, inf.ScaleDown} {
		if rules != nil && rules.SelectPolicy == "" {
			rules.SelectPolicy = SelectMax
		}
	}
	if inf.TolerancePercent == 0 {
		inf.TolerancePercent = 10
	}
	if inf.Fallback != nil && inf.Fallback.FailureThreshold == 0 {
		inf.Fallback.FailureThreshold = 3
	}
	if inf.BatchSize == 0 {
		inf.BatchSize = 64
	}

	defaultDuration(&p.Spec.Output.PredictionRetention, 24*time.Hour)
	defaultNetworkPolicy(&p.Spec.NetworkPolicy)
	if r := p.Spec.Reporting; r != nil {
		r.Threshold = cmp.Or(r.Threshold, DefaultReportingThreshold)
		if len(r.Buckets) == 0 {
			r.Buckets = DefaultReportBuckets()
		}
		r.MaxValues = cmp.Or(r.MaxValues, 1000)
		r.TopShipments = cmp.Or(r.TopShipments, 20)
		if r.Credentials != nil && r.Credentials.Type == "" {
			r.Credentials.Type = NATSCreds
		}
	}
}

// DefaultReportingThreshold is spec.reporting.threshold's default.
const DefaultReportingThreshold = "0.5"

// DefaultReportBuckets are spec.reporting.buckets' default: 5-minute buckets for two days,
// hourly ones for 90 days. A list the user gives replaces it whole, in the schema as here.
func DefaultReportBuckets() []ReportBucket {
	return []ReportBucket{
		{Width: metav1.Duration{Duration: 5 * time.Minute}, Retention: metav1.Duration{Duration: 48 * time.Hour}},
		{Width: metav1.Duration{Duration: time.Hour}, Retention: metav1.Duration{Duration: 90 * 24 * time.Hour}},
	}
}

func defaultNetworkPolicy(np *NetworkPolicySpec) {
	if np.Mode == "" {
		np.Mode = NetworkPolicyEnabled
	}
}

func defaultDuration(d **metav1.Duration, v time.Duration) {
	if *d == nil {
		*d = &metav1.Duration{Duration: v}
	}
}
