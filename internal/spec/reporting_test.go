package spec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

func TestCheckReporting(t *testing.T) {
	cases := map[string]struct {
		dims      []freightcastv1alpha1.ReportDimension
		threshold string
		// want are the fragments of the error; none means no error.
		want []string
	}{
		"a field":               {dims: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}}},
		"a default for a field": {dims: []freightcastv1alpha1.ReportDimension{{Name: "mode", Expression: "has(event.shipment.mode) ? event.shipment.mode : 'road'"}}},
		"a number":              {dims: []freightcastv1alpha1.ReportDimension{{Name: "weight_class", Expression: "math.ceil(event.shipment.weightKg / 1000.0)"}}},
		"a lookup in a table":   {dims: []freightcastv1alpha1.ReportDimension{{Name: "congestion", Expression: "lookup('ports', event.shipment.origin, 0.0) > 0.5"}}},
		"a syntax error": {dims: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane +"}},
			want: []string{`dimension "lane": expression "event.shipment.lane +"`, "Syntax error"}},
		"a list": {dims: []freightcastv1alpha1.ReportDimension{{Name: "legs", Expression: "[1, 2]"}},
			want: []string{`dimension "legs"`, "results in list(int)"}},
		"a table not declared": {dims: []freightcastv1alpha1.ReportDimension{{Name: "c", Expression: "lookup('carriers', event.shipment.carrier, 0.0)"}},
			want: []string{`dimension "c"`, `no table "carriers"`}},
		"a threshold that is not a number": {dims: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}}, threshold: "NaN",
			want: []string{`threshold "NaN" is not a finite number`}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			p := &freightcastv1alpha1.FreightPipeline{Spec: freightcastv1alpha1.FreightPipelineSpec{
				LookupTables: []freightcastv1alpha1.LookupTable{{Name: "ports", Values: map[string]string{"CNSHA": "0.8"}}},
				Reporting: &freightcastv1alpha1.ReportingSpec{
					Dimensions: c.dims,
					Outputs:    []freightcastv1alpha1.ReportOutput{{Name: "delay_risk"}},
					Threshold:  c.threshold,
				},
			}}
			if c.threshold == "" {
				p.Spec.Reporting.Threshold = "0.7"
			}
			err := CheckReporting(p)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var de *DimensionError
			if c.threshold == "" && !errors.As(err, &de) {
				t.Errorf("error %v is no DimensionError", err)
			}
		})
	}
	if err := CheckReporting(&freightcastv1alpha1.FreightPipeline{}); err != nil {
		t.Errorf("a pipeline without reporting: %v", err)
	}
}

func TestReportingRendersTheSpec(t *testing.T) {
	p := &freightcastv1alpha1.FreightPipeline{}
	p.Namespace, p.Name = "freight", "orders"
	p.Spec.Queue.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "pipeline-nats"}}
	p.Spec.Reporting = &freightcastv1alpha1.ReportingSpec{
		Dimensions: []freightcastv1alpha1.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
		Outputs:    []freightcastv1alpha1.ReportOutput{{Name: "probabilities", Index: 1}},
		Threshold:  "0.7",
	}
	model := &freightcastv1alpha1.PredictionModel{}
	model.Name = "delay-risk"
	cfg := Pipeline(p, model, "nats://nats:4222", 1)
	want := &pipelineconfig.Reporting{
		Dimensions:   []pipelineconfig.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
		Outputs:      []pipelineconfig.ReportOutput{{Name: "probabilities", Index: 1}},
		Threshold:    0.7,
		Buckets:      []pipelineconfig.ReportBucket{{Width: "5m", Retention: "48h"}, {Width: "1h", Retention: "2160h"}},
		MaxValues:    1000,
		TopShipments: 20,
	}
	if diff := cmp.Diff(want, cfg.Reporting); diff != "" {
		t.Errorf("reporting (-want +got):\n%s", diff)
	}
	if got, want := cfg.Ingestion.ReportingURL, "http://orders-reporting.freight.svc:8080"; got != want {
		t.Errorf("ingestion forwards reports to %q, want %q", got, want)
	}
	if got := ReportingConfig(p, cfg).NATSCredentials.CredsFile; got != NATSCredentialsDir+"/creds" {
		t.Errorf("without its own user, reporting connects with %q", got)
	}
	p.Spec.Reporting.Credentials = &freightcastv1alpha1.NATSCredentials{SecretRef: freightcastv1alpha1.SecretReference{Name: "reporting-nats"}, Type: freightcastv1alpha1.NATSNKey}
	if got := ReportingConfig(p, cfg).NATSCredentials; got.NKeySeedFile != NATSCredentialsDir+"/nkey" || got.CredsFile != "" {
		t.Errorf("with its own NKey user, reporting connects with %+v", got)
	}
	p.Spec.Reporting = nil
	if cfg := Pipeline(p, model, "nats://nats:4222", 1); cfg.Reporting != nil || cfg.Ingestion.ReportingURL != "" {
		t.Errorf("without spec.reporting: %+v, %q", cfg.Reporting, cfg.Ingestion.ReportingURL)
	}
	for d, want := range map[time.Duration]string{5 * time.Minute: "5m", 2160 * time.Hour: "2160h", 90 * time.Minute: "1h30m", 30 * time.Second: "30s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
