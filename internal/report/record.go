package report

import (
	"fmt"
	"strconv"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/transform"
)

// maxValueBytes bounds a dimension value; a longer result is ValueUnknown.
const maxValueBytes = 256

// Decoder turns prediction records into Records: the configured outputs' values and the
// dimensions computed with the feature transforms' CEL engine over `event` = {id, shipment}. It
// is not safe for concurrent use (it reuses one transform.Event).
type Decoder struct {
	cfg  pipelineconfig.Reporting
	dims []*transform.Feature
	ev   transform.Event
	p    event.Prediction
	// slow decodes with DecodePrediction only: BenchmarkDecode's anchor.
	slow bool
}

// NewDecoder compiles the dimensions' expressions; the error names each that does not compile.
func NewDecoder(cfg pipelineconfig.Reporting) (*Decoder, error) {
	t := pipelineconfig.Transforms{}
	for _, d := range cfg.Dimensions {
		t.Features = append(t.Features, pipelineconfig.FeatureTransform{Name: d.Name, Expression: d.Expression})
	}
	set, err := transform.Compile(t, nil)
	if err != nil {
		return nil, fmt.Errorf("reporting dimensions: %w", err)
	}
	return &Decoder{cfg: cfg, dims: set.Features()}, nil
}

// Decode reads the record data sent by client. The error says why the record cannot be counted
// (the caller counts it as malformed); a dimension whose expression fails is ValueUnknown, and
// dimErrors says how many did.
func (d *Decoder) Decode(client string, data []byte) (r Record, dimErrors int, err error) {
	// The strict scanner reads the records the workers write; what it does not answer for,
	// DecodePrediction accepts or refuses.
	p := &d.p
	if d.slow || !event.ScanPrediction(data, p) {
		if *p, err = event.DecodePrediction(data); err != nil {
			return Record{}, 0, err
		}
	}
	if p.PredictedAt.IsZero() {
		return Record{}, 0, fmt.Errorf("record %s has no predictedAt", p.ID)
	}
	r = Record{Client: client, ID: p.ID, PredictedAt: p.PredictedAt, Shipment: p.Shipment,
		Outputs: make([]float64, len(d.cfg.Outputs)), Dims: make([]string, len(d.dims))}
	for i, o := range d.cfg.Outputs {
		vs := p.Outputs[o.Name]
		if o.Index >= len(vs) {
			return Record{}, 0, fmt.Errorf("record %s has no output %s", p.ID, o.Label())
		}
		v := vs[o.Index]
		if v.Kind == event.String || !finite(v.Num) {
			return Record{}, 0, fmt.Errorf("record %s: output %s is not a finite number", p.ID, o.Label())
		}
		r.Outputs[i] = v.Num
	}
	if err := d.ev.Bind(p.ID, p.Shipment); err != nil {
		// Unreachable for a record DecodePrediction accepted; count it all the same.
		return Record{}, 0, fmt.Errorf("record %s: %w", p.ID, err)
	}
	for i, f := range d.dims {
		v, err := f.Eval(&d.ev)
		s := format(v)
		if err != nil || len(s) > maxValueBytes {
			s = ValueUnknown
			dimErrors++
		}
		r.Dims[i] = s
	}
	return r, dimErrors, nil
}

func format(v event.Value) string {
	switch v.Kind {
	case event.String:
		return v.Str
	case event.Integer:
		return strconv.FormatInt(v.Int, 10)
	case event.Bool:
		return strconv.FormatBool(v.Num != 0)
	default:
		return strconv.FormatFloat(v.Num, 'g', -1, 64)
	}
}
