package spec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/transform"
)

// DimensionError is what is wrong with one reporting dimension's expression.
type DimensionError struct {
	Dimension, Expression string
	Err                   error
}

func (e *DimensionError) Error() string {
	return fmt.Sprintf("dimension %q: expression %q: %v", e.Dimension, e.Expression, e.Err)
}

func (e *DimensionError) Unwrap() error { return e.Err }

// CheckReporting compiles pipeline p's reporting dimensions with the feature transforms' compiler
// (internal/transform: parsed, type-checked, cost-bounded, lookups only in spec.lookupTables),
// each as a feature whose result may be a string, a number or a bool, which reporting formats
// as the dimension's value; and parses the threshold. nil without spec.reporting.
func CheckReporting(p *freightcastv1alpha1.FreightPipeline) error {
	r := p.Spec.Reporting
	if r == nil {
		return nil
	}
	var errs []error
	if _, err := parseThreshold(r.Threshold); err != nil {
		errs = append(errs, err)
	}
	t := Transforms(p)
	t.Features = nil
	for _, d := range r.Dimensions {
		t.Features = append(t.Features, pipelineconfig.FeatureTransform{Name: d.Name, Expression: d.Expression})
	}
	// Each dimension alone, so that an error names the dimension and not a feature; the
	// tables' own errors are the feature transforms' to report.
	for _, f := range t.Features {
		one := pipelineconfig.Transforms{Features: []pipelineconfig.FeatureTransform{f}, Tables: t.Tables}
		_, err := transform.Compile(one, nil)
		var te *transform.Error
		if errors.As(err, &te) {
			errs = append(errs, &DimensionError{Dimension: f.Name, Expression: f.Expression, Err: te.Err})
		}
	}
	return errors.Join(errs...)
}

// parseThreshold reads spec.reporting.threshold, a number written as a string.
func parseThreshold(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("threshold %q is not a finite number", s)
	}
	return f, nil
}

// ReportingServiceName is the Service of pipeline name's reporting pod.
func ReportingServiceName(pipeline string) string { return pipeline + "-reporting" }

// ReportingPort is the reporting pod's one HTTP port, as every data-plane pod's.
const ReportingPort = 8080

// Reporting is pipeline p's reporting configuration, nil without spec.reporting. The threshold
// must parse (CheckReporting); an unparsable one renders as 0.
func Reporting(p *freightcastv1alpha1.FreightPipeline) *pipelineconfig.Reporting {
	p = defaultedPipeline(p)
	r := p.Spec.Reporting
	if r == nil {
		return nil
	}
	threshold, _ := parseThreshold(r.Threshold)
	out := &pipelineconfig.Reporting{Threshold: threshold, MaxValues: int(r.MaxValues), TopShipments: int(r.TopShipments)}
	for _, d := range r.Dimensions {
		out.Dimensions = append(out.Dimensions, pipelineconfig.ReportDimension{Name: d.Name, Expression: d.Expression})
	}
	for _, o := range r.Outputs {
		out.Outputs = append(out.Outputs, pipelineconfig.ReportOutput{Name: o.Name, Index: int(o.Index)})
	}
	for _, b := range r.Buckets {
		out.Buckets = append(out.Buckets, pipelineconfig.ReportBucket{Width: shortDuration(b.Width.Duration), Retention: shortDuration(b.Retention.Duration)})
	}
	return out
}

// ReportingConfig is what the reporting pod reads: the pipeline's config with its reporting
// section, connecting to NATS as spec.reporting.credentials when set (mounted where the queue's
// credentials would be).
func ReportingConfig(p *freightcastv1alpha1.FreightPipeline, cfg pipelineconfig.Config) pipelineconfig.Config {
	p = defaultedPipeline(p)
	if cr := p.Spec.Reporting.Credentials; cr != nil {
		q := p.Spec.Queue.DeepCopy()
		q.Credentials = cr
		withReportingUser := p.DeepCopy()
		withReportingUser.Spec.Queue = *q
		cfg.NATSCredentials = NATSCredentials(withReportingUser)
	}
	return cfg
}

// shortDuration writes d as the API's users do: "5m", "48h", "1h30m".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
