package controllers

import (
	"testing"

	"github.com/freightcast/freightcast/internal/spec"
	"github.com/google/go-cmp/cmp"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

// TestDataPlaneTracingEnv checks that the operator's OTLP settings reach every data-plane
// container it builds, and that nothing is set without an endpoint.
func TestDataPlaneTracingEnv(t *testing.T) {
	t.Parallel()
	m := newModel("freight", "delay", "cm")
	p := newPipeline("freight", "lanes", "delay")
	containers := map[string]func(Options) *corev1ac.ContainerApplyConfiguration{
		"ingestion": func(o Options) *corev1ac.ContainerApplyConfiguration {
			return &desiredIngestionDeployment(p, m, "sha256:m", "sha256:c", o).Spec.Template.Spec.Containers[0]
		},
		"inference": func(o Options) *corev1ac.ContainerApplyConfiguration {
			return &desiredInferenceDeployment(p, m, "sha256:m", "sha256:c", o).Spec.Template.Spec.Containers[0]
		},
		"predictor": func(o Options) *corev1ac.ContainerApplyConfiguration {
			return &desiredPredictorDeployment(m, spec.SpecRevision(m, ""), o).Spec.Template.Spec.Containers[0]
		},
	}
	traced := testOptions
	traced.OTLPEndpoint = "http://otel-collector.observability.svc:4318"
	traced.TraceSamplingRatio = 0.25
	cases := map[string]struct {
		opts Options
		want map[string]map[string]string // container → env name → value
	}{
		"no endpoint: tracing off, no env": {
			opts: testOptions,
			want: map[string]map[string]string{"ingestion": nil, "inference": nil, "predictor": nil},
		},
		"endpoint and ratio reach every container": {
			opts: traced,
			want: map[string]map[string]string{
				"ingestion": tracedEnv("freightcast-ingest", "k8s.namespace.name=freight,k8s.pod.name=$(FREIGHTCAST_POD_NAME),freightcast.pipeline=lanes"),
				"inference": tracedEnv("freightcast-inference", "k8s.namespace.name=freight,k8s.pod.name=$(FREIGHTCAST_POD_NAME),freightcast.pipeline=lanes,freightcast.model=delay"),
				"predictor": tracedEnv("freightcast-predictor", "k8s.namespace.name=freight,k8s.pod.name=$(FREIGHTCAST_POD_NAME),freightcast.model=delay"),
			},
		},
		"ratio 1 is written as 1": {
			opts: func() Options { o := traced; o.TraceSamplingRatio = 1; return o }(),
			want: map[string]map[string]string{
				"ingestion": withEnv(tracedEnv("freightcast-ingest", "k8s.namespace.name=freight,k8s.pod.name=$(FREIGHTCAST_POD_NAME),freightcast.pipeline=lanes"), "OTEL_TRACES_SAMPLER_ARG", "1"),
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for container, want := range tc.want {
				c := containers[container](tc.opts)
				var got map[string]string
				for _, e := range c.Env {
					if got == nil {
						got = map[string]string{}
					}
					switch {
					case e.Value != nil:
						got[*e.Name] = *e.Value
					case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
						got[*e.Name] = "fieldRef:" + *e.ValueFrom.FieldRef.FieldPath
					default:
						got[*e.Name] = "?"
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s env (-want +got):\n%s", container, diff)
				}
				// The pod name must be defined before the variable that refers to it.
				if len(c.Env) > 0 && *c.Env[0].Name != envPodName {
					t.Errorf("%s: first env var %s, want %s (referenced by OTEL_RESOURCE_ATTRIBUTES)", container, *c.Env[0].Name, envPodName)
				}
			}
		})
	}
}

func tracedEnv(service, attrs string) map[string]string {
	return map[string]string{
		"FREIGHTCAST_POD_NAME":        "fieldRef:metadata.name",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability.svc:4318",
		"OTEL_SERVICE_NAME":           service,
		"OTEL_RESOURCE_ATTRIBUTES":    attrs,
		"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":     "0.25",
	}
}

func withEnv(env map[string]string, k, v string) map[string]string {
	env[k] = v
	return env
}
