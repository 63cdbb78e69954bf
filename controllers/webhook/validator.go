// Package webhook is the operator's validating admission webhook for FreightPipeline and the
// serving certificate it manages for itself. The webhook refuses, when the YAML is applied, the
// feature transforms and reporting dimensions the FreightPipeline controller would refuse later
// with FeaturesValid=False or ReportingValid=False: both call spec.CheckTransforms and
// spec.CheckReporting, so the two never disagree, and the condition stays the fallback
// when the webhook is not installed or not reachable (failurePolicy Ignore).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/spec"
	"github.com/freightcast/freightcast/internal/transform"
)

// ValidatePath is where the API server sends FreightPipeline admission reviews; the
// ValidatingWebhookConfiguration in config/webhook and the chart name it.
const ValidatePath = "/validate-freightcast-io-v1alpha1-freightpipeline"

// +kubebuilder:rbac:groups=freightcast.io,resources=predictionmodels,verbs=get

// PipelineValidator checks a FreightPipeline's feature transforms against the PredictionModel
// it references, as the controller does.
type PipelineValidator struct {
	// Models reads the referenced PredictionModel. An uncached reader (the manager's APIReader):
	// one GET per admission, never a stale model.
	Models client.Reader
}

var _ admission.Validator[*freightcastv1alpha1.FreightPipeline] = (*PipelineValidator)(nil)

// SetupWithManager registers the validator on the manager's webhook server at ValidatePath.
func (v *PipelineValidator) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &freightcastv1alpha1.FreightPipeline{}).
		WithValidator(v).
		WithValidatorCustomPath(ValidatePath).
		Complete()
}

func (v *PipelineValidator) ValidateCreate(ctx context.Context, p *freightcastv1alpha1.FreightPipeline) (admission.Warnings, error) {
	return v.validate(ctx, p)
}

// ValidateUpdate checks the whole new object, not only what changed: a transform that compiled
// against the model it was written for may not against the model referenced now.
func (v *PipelineValidator) ValidateUpdate(ctx context.Context, _, p *freightcastv1alpha1.FreightPipeline) (admission.Warnings, error) {
	return v.validate(ctx, p)
}

// ValidateDelete lets every deletion through: there is nothing left to run.
func (v *PipelineValidator) ValidateDelete(context.Context, *freightcastv1alpha1.FreightPipeline) (admission.Warnings, error) {
	return nil, nil
}

func (v *PipelineValidator) validate(ctx context.Context, p *freightcastv1alpha1.FreightPipeline) (admission.Warnings, error) {
	// The reporting dimensions need no model: they read the raw event.
	reportErrs := reportingErrors(p, spec.CheckReporting(p))
	if len(p.Spec.Features) == 0 && len(p.Spec.LookupTables) == 0 {
		return nil, invalid(p, reportErrs)
	}
	var warnings admission.Warnings
	model := &freightcastv1alpha1.PredictionModel{}
	switch err := v.Models.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Spec.ModelRef.Name}, model); {
	case apierrors.IsNotFound(err):
		model = nil
		warnings = append(warnings, fmt.Sprintf("PredictionModel %s not found in namespace %s: the feature transforms were checked without the model's feature names and types; the controller checks them again when it appears (condition FeaturesValid)", p.Spec.ModelRef.Name, p.Namespace))
	case err != nil:
		// Not the pipeline's fault: the API server retries nothing, so let it in and leave the
		// check to the controller rather than refuse a valid object.
		return admission.Warnings{fmt.Sprintf("the feature transforms were not checked (reading PredictionModel %s: %v); the controller checks them (condition FeaturesValid)", p.Spec.ModelRef.Name, err)}, invalid(p, reportErrs)
	}
	var errs field.ErrorList
	if err := spec.CheckTransforms(p, model); err != nil {
		errs = fieldErrors(p, err)
	}
	return warnings, invalid(p, append(errs, reportErrs...))
}

// invalid is the admission error of errs, nil when there are none.
func invalid(p *freightcastv1alpha1.FreightPipeline, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(freightcastv1alpha1.GroupVersion.WithKind("FreightPipeline").GroupKind(), p.Name, errs)
}

// reportingErrors places each problem CheckReporting found: a dimension's at
// spec.reporting.dimensions[i].expression, the threshold's at spec.reporting.threshold.
func reportingErrors(p *freightcastv1alpha1.FreightPipeline, err error) field.ErrorList {
	if err == nil {
		return nil
	}
	index := map[string]int{}
	for i, d := range p.Spec.Reporting.Dimensions {
		if _, dup := index[d.Name]; !dup {
			index[d.Name] = i
		}
	}
	reporting := field.NewPath("spec", "reporting")
	var out field.ErrorList
	for _, e := range leaves(err) {
		var de *spec.DimensionError
		if errors.As(e, &de) {
			out = append(out, field.Invalid(reporting.Child("dimensions").Index(index[de.Dimension]).Child("expression"), de.Expression, e.Error()))
			continue
		}
		out = append(out, field.Invalid(reporting.Child("threshold"), p.Spec.Reporting.Threshold, e.Error()))
	}
	return out
}

// fieldErrors places each problem CheckTransforms found at the field it is about: a transform's
// at spec.features[i].expression, the rest (a feature the model lacks, a lookup table) at
// spec.features or spec.lookupTables with its message as CheckTransforms wrote it.
func fieldErrors(p *freightcastv1alpha1.FreightPipeline, err error) field.ErrorList {
	index := map[string]int{}
	for i, f := range p.Spec.Features {
		if _, dup := index[f.Name]; !dup {
			index[f.Name] = i
		}
	}
	features := field.NewPath("spec", "features")
	var out field.ErrorList
	for _, e := range leaves(err) {
		var te *transform.Error
		if errors.As(e, &te) {
			if i, ok := index[te.Feature]; ok {
				out = append(out, field.Invalid(features.Index(i).Child("expression"), te.Expression, e.Error()))
				continue
			}
		}
		path := features
		if strings.HasPrefix(e.Error(), "table") { // transform's errors about spec.lookupTables
			path = field.NewPath("spec", "lookupTables")
		}
		out = append(out, field.Invalid(path, field.OmitValueType{}, e.Error()))
	}
	return out
}

// leaves flattens errors.Join trees into the errors they join.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
