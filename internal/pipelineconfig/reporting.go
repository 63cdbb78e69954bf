package pipelineconfig

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// Reporting configures the reporting role (`freightcast report`): the aggregates it keeps of the
// pipeline's predictions for its clients. Nil in Config means no reporting.
type Reporting struct {
	// Dimensions are what the aggregates are broken down by: each a CEL expression over the
	// `event` the feature transforms see ({id, shipment}), its result formatted as a string.
	Dimensions []ReportDimension `json:"dimensions"`
	// Outputs are the model outputs summarized; the first is "the risk" (threshold, riskiest).
	Outputs []ReportOutput `json:"outputs"`
	// Threshold is what "above threshold" counts, on the first output.
	Threshold float64 `json:"threshold"`
	// Buckets are the time tiers kept, finest first (e.g. 5m kept 48h, 1h kept 2160h).
	Buckets []ReportBucket `json:"buckets"`
	// MaxValues bounds the distinct values kept per client and dimension; the values beyond are
	// folded into the value "other", and answers say how many were.
	MaxValues int `json:"maxValues"`
	// TopShipments is how many riskiest shipments are kept per client and finest bucket.
	TopShipments int `json:"topShipments"`
}

// ReportDimension is one breakdown of the aggregates.
type ReportDimension struct {
	// Name is the dimension's name in the API: [a-z][a-z0-9_]{0,62}.
	Name string `json:"name"`
	// Expression is CEL over `event`; a missing field gives the value "unknown".
	Expression string `json:"expression"`
}

// ReportOutput is one element of one model output.
type ReportOutput struct {
	// Name is the model output's name.
	Name string `json:"name"`
	// Index is the element of it (0 for a model with one value per output).
	Index int `json:"index"`
}

// Label is how the API names the output: name[index].
func (o ReportOutput) Label() string { return fmt.Sprintf("%s[%d]", o.Name, o.Index) }

// ReportBucket is one time tier: buckets of Width, kept for Retention. Durations are Go
// durations as strings ("5m", "48h"), as the API writes them.
type ReportBucket struct {
	Width     string `json:"width"`
	Retention string `json:"retention"`
}

// Bounds of Reporting, the API's too.
const (
	MaxReportDimensions   = 8
	MaxReportOutputs      = 4
	MaxReportTiers        = 4
	MaxReportValues       = 100_000
	MaxReportTopShipments = 1000
	// MaxReportBucketsPerTier bounds retention/width: 90 days of hours is 2160, 2 days of 5
	// minutes 576.
	MaxReportBucketsPerTier = 10_000
	// MaxReportExpressionLength is internal/transform's MaxExpressionLength (which imports this
	// package, so the number is repeated; a test keeps them equal).
	MaxReportExpressionLength = 4096
	maxReportOutputName       = 128
	maxReportOutputIndex      = 1 << 20
)

var reportNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Tier is a ReportBucket with its durations parsed.
type Tier struct {
	Width, Retention time.Duration
}

// Tiers parses the buckets; call it on a validated Reporting.
func (r Reporting) Tiers() []Tier {
	out := make([]Tier, 0, len(r.Buckets))
	for _, b := range r.Buckets {
		w, _ := time.ParseDuration(b.Width)
		ret, _ := time.ParseDuration(b.Retention)
		out = append(out, Tier{Width: w, Retention: ret})
	}
	return out
}

// Validate reports every field the reporting role could not run with, each named by its path
// under "reporting".
func (r Reporting) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("reporting."+format, args...)) }
	if n := len(r.Dimensions); n < 1 || n > MaxReportDimensions {
		add("dimensions: give 1 to %d, got %d", MaxReportDimensions, n)
	}
	names := map[string]bool{}
	for i, d := range r.Dimensions {
		switch {
		case !reportNameRE.MatchString(d.Name):
			add("dimensions[%d].name %q must match %s", i, d.Name, reportNameRE)
		case names[d.Name]:
			add("dimensions[%d].name %q is declared twice", i, d.Name)
		}
		names[d.Name] = true
		switch {
		case d.Expression == "":
			add("dimensions[%d].expression is empty", i)
		case len(d.Expression) > MaxReportExpressionLength:
			add("dimensions[%d].expression is %d bytes, more than %d", i, len(d.Expression), MaxReportExpressionLength)
		}
	}
	if n := len(r.Outputs); n < 1 || n > MaxReportOutputs {
		add("outputs: give 1 to %d, got %d", MaxReportOutputs, n)
	}
	labels := map[string]bool{}
	for i, o := range r.Outputs {
		switch {
		case o.Name == "" || len(o.Name) > maxReportOutputName:
			add("outputs[%d].name must be 1 to %d bytes, got %d", i, maxReportOutputName, len(o.Name))
		case o.Index < 0 || o.Index > maxReportOutputIndex:
			add("outputs[%d].index must be 0 to %d, got %d", i, maxReportOutputIndex, o.Index)
		case labels[o.Label()]:
			add("outputs[%d]: %s is declared twice", i, o.Label())
		}
		labels[o.Label()] = true
	}
	if math.IsNaN(r.Threshold) || math.IsInf(r.Threshold, 0) {
		add("threshold must be a finite number, got %v", r.Threshold)
	}
	errs = append(errs, r.validateBuckets()...)
	if r.MaxValues < 1 || r.MaxValues > MaxReportValues {
		add("maxValues must be 1 to %d, got %d", MaxReportValues, r.MaxValues)
	}
	if r.TopShipments < 0 || r.TopShipments > MaxReportTopShipments {
		add("topShipments must be 0 to %d, got %d", MaxReportTopShipments, r.TopShipments)
	}
	return errors.Join(errs...)
}

// validateBuckets checks the tiers: widths that divide a day (so that buckets start at the same
// UTC times whoever computes them), finest first, each kept at least one bucket and at most
// MaxReportBucketsPerTier.
func (r Reporting) validateBuckets() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("reporting."+format, args...)) }
	if n := len(r.Buckets); n < 1 || n > MaxReportTiers {
		add("buckets: give 1 to %d, got %d", MaxReportTiers, n)
	}
	var prev time.Duration
	for i, b := range r.Buckets {
		w, err := time.ParseDuration(b.Width)
		switch {
		case err != nil:
			add("buckets[%d].width %q is not a duration like 5m or 1h", i, b.Width)
			continue
		case w < time.Minute || w > 24*time.Hour || w%time.Minute != 0 || (24*time.Hour)%w != 0:
			add("buckets[%d].width %s must be whole minutes from 1m to 24h that divide a day", i, b.Width)
			continue
		case w <= prev:
			add("buckets[%d].width %s must be wider than the tier before (%s): finest first", i, b.Width, prev)
		}
		prev = w
		ret, err := time.ParseDuration(b.Retention)
		switch {
		case err != nil:
			add("buckets[%d].retention %q is not a duration like 48h", i, b.Retention)
		case ret < w:
			add("buckets[%d].retention %s is shorter than its width %s", i, b.Retention, b.Width)
		case ret/w > MaxReportBucketsPerTier:
			add("buckets[%d]: retention %s / width %s is %d buckets, more than %d", i, b.Retention, b.Width, ret/w, MaxReportBucketsPerTier)
		}
	}
	return errs
}
