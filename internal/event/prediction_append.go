package event

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/freightcast/freightcast/internal/jsonenc"
)

// AppendPrediction appends the record of p to dst, the same JSON that EncodePrediction writes
// (version set, outputs in name order), without reflection: a worker writes one record per
// event, and encoding/json's map and reflection costs showed in its profile. It checks what
// the model produced (finite outputs) and trusts the rest, which the worker took from an event
// that Decode validated.
func AppendPrediction(dst []byte, p *Prediction) ([]byte, error) {
	names := make([]string, 0, len(p.Outputs))
	for name := range p.Outputs {
		names = append(names, name)
	}
	slices.Sort(names)
	dst = appendPredictionHead(dst, p)
	for i, name := range names {
		var err error
		if dst, err = appendValues(dst, i, "outputs.", name, p.Outputs[name]); err != nil {
			return dst, err
		}
	}
	dst = append(dst, '}')
	if len(p.Labels) > 0 {
		dst = append(dst, `,"labels":{`...)
		k := 0
		for _, name := range names {
			if labels, ok := p.Labels[name]; ok {
				var err error
				if dst, err = appendValues(dst, k, "labels.", name, labels); err != nil {
					return dst, err
				}
				k++
			}
		}
		dst = append(dst, '}')
	}
	return appendPredictionTail(dst, p), nil
}

// Output is one model output's values for one event: Values for an FP32 output (what the model
// produced, uncopied), Typed for any other type; Labels, for a map output, its keys.
type Output struct {
	Name   string
	Values []float32
	Typed  []Value
	Labels []Value
}

// AppendPredictionOutputs is AppendPrediction with the outputs given apart, ignoring
// p.Outputs: as the model produced them (float32), and already in name order, which the
// record needs. A worker then sorts the names once for all its records and copies no values.
func AppendPredictionOutputs(dst []byte, p *Prediction, outputs []Output) ([]byte, error) {
	dst = appendPredictionHead(dst, p)
	labels := 0
	for i, o := range outputs {
		var err error
		if o.Typed != nil {
			dst, err = appendValues(dst, i, "outputs.", o.Name, o.Typed)
		} else {
			dst, err = appendOutput(dst, i, o.Name, o.Values)
		}
		if err != nil {
			return dst, err
		}
		if o.Labels != nil {
			labels++
		}
	}
	dst = append(dst, '}')
	if labels > 0 {
		dst = append(dst, `,"labels":{`...)
		k := 0
		for _, o := range outputs {
			if o.Labels != nil {
				var err error
				if dst, err = appendValues(dst, k, "labels.", o.Name, o.Labels); err != nil {
					return dst, err
				}
				k++
			}
		}
		dst = append(dst, '}')
	}
	return appendPredictionTail(dst, p), nil
}

// appendValues appends the i-th member of an object of value arrays (outputs or labels).
func appendValues(dst []byte, i int, field, name string, values []Value) ([]byte, error) {
	if i > 0 {
		dst = append(dst, ',')
	}
	dst = jsonenc.AppendString(dst, name)
	dst = append(dst, ":["...)
	for j, v := range values {
		if v.Kind == Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			return dst, fmt.Errorf("prediction: %s%s[%d] is %v, not a finite number", field, name, j, v.Num)
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = v.AppendJSON(dst)
	}
	return append(dst, ']'), nil
}

// appendPredictionHead appends the record up to the opening brace of its outputs.
func appendPredictionHead(dst []byte, p *Prediction) []byte {
	dst = append(dst, `{"v":1,"id":"`...)
	dst = append(dst, p.ID...) // ValidID's charset needs no escaping.
	dst = append(dst, `","model":`...)
	dst = jsonenc.AppendString(dst, p.Model)
	dst = append(dst, `,"modelVersion":`...)
	dst = jsonenc.AppendString(dst, p.ModelVersion)
	return append(dst, `,"outputs":{`...)
}

// appendOutput appends the i-th member of the outputs object, an FP32 output.
func appendOutput(dst []byte, i int, name string, values []float32) ([]byte, error) {
	if i > 0 {
		dst = append(dst, ',')
	}
	dst = jsonenc.AppendString(dst, name)
	dst = append(dst, ":["...)
	for j, v := range values {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, fmt.Errorf("prediction: outputs.%s[%d] is %v, not a finite number", name, j, f)
		}
		if j > 0 {
			dst = append(dst, ',')
		}
		dst = appendFloat(dst, f)
	}
	return append(dst, ']'), nil
}

// appendPredictionTail appends the rest of the record after the outputs and labels.
func appendPredictionTail(dst []byte, p *Prediction) []byte {
	if len(p.Shipment) > 0 {
		dst = append(dst, `,"shipment":`...)
		// Ingestion refuses text that is not UTF-8; an event queued before it did still gets a
		// record every client can decode.
		dst = jsonenc.AppendValidUTF8(dst, p.Shipment)
	}
	if p.Features != nil {
		dst = append(dst, `,"features":`...)
		dst = p.Features.appendJSON(dst)
	}
	dst = append(dst, `,"receivedAt":"`...)
	dst = p.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","predictedAt":"`...)
	dst = p.PredictedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}
