package worker

import (
	"fmt"
	"math"

	"github.com/freightcast/freightcast/internal/datatype"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/model"
)

// typedBatch runs a batch through Eval, for models Run does not serve: several inputs, inputs
// of INT64, BOOL or strings, outputs such as a class label or ZipMap's maps. Each input is a
// tensor of one row per event, [events] or [events, features]; each output must have the
// events on axis 0, and each event's record keeps its row of every output.
type typedBatch struct {
	inputs []typedInput
	in     []*model.Tensor
	out    []*model.Tensor
	// rows is the events of the last run; values and labels are its non-FP32 outputs and its
	// map outputs' keys as record values, converted once per batch.
	rows   int
	values [][]event.Value
	labels [][]event.Value
}

// typedInput is one model input and where its features sit in an event.
type typedInput struct {
	model.FeatureInput
	dtype  model.DType
	bounds datatype.Bounds
	offset int
	rank   int
}

func newTypedBatch(meta *model.Metadata, inputs []model.FeatureInput) (*typedBatch, error) {
	b := &typedBatch{in: make([]*model.Tensor, len(inputs)), out: make([]*model.Tensor, len(meta.Outputs)),
		values: make([][]event.Value, len(meta.Outputs)), labels: make([][]event.Value, len(meta.Outputs))}
	offset := 0
	for k, in := range inputs {
		mi := meta.Inputs[k]
		if in.Name != mi.Name || in.DataType != mi.DataType {
			return nil, fmt.Errorf("input %d is fed as %s %s, the model's is %s %s", k, in.Name, in.DataType, mi.Name, mi.DataType)
		}
		bounds, _ := datatype.Of(in.DataType)
		b.inputs = append(b.inputs, typedInput{FeatureInput: in, dtype: mi.DType, bounds: bounds, offset: offset, rank: len(mi.Shape)})
		offset += len(in.Features)
		b.in[k] = &model.Tensor{}
	}
	for j := range b.out {
		b.out[j] = &model.Tensor{}
	}
	return b, nil
}

// valueAt is feature i of ev, whichever form its message had.
func valueAt(ev *event.Event, i int) event.Value {
	if ev.Values != nil {
		return ev.Values[i]
	}
	return event.NumberValue(ev.Features[i])
}

// checkTypes says why a feature of ev is not a value its model input takes, nil when all are:
// ingestion checked them against the same inputs, so only a message queued for another model
// (a pipeline changed under a backlog) or written by something else fails here.
func (w *Worker) checkTypes(ev *event.Event) error {
	if w.typed == nil {
		for i, v := range ev.Values {
			if v.Kind != event.Number && v.Kind != event.Integer || math.Abs(v.Num) > math.MaxFloat32 {
				return fmt.Errorf("feature %d is not a number the model's FP32 input holds", i)
			}
		}
		return nil
	}
	for _, in := range w.typed.inputs {
		for j := range in.Features {
			if problem := in.check(valueAt(ev, in.offset+j)); problem != "" {
				return fmt.Errorf("feature %d (of input %q): %s", in.offset+j, in.Name, problem)
			}
		}
	}
	return nil
}

// check says why v cannot be a value of the input, "" when it can.
func (in *typedInput) check(v event.Value) string {
	switch in.DataType {
	case "BYTES":
		if v.Kind != event.String {
			return "not a string, which BYTES holds"
		}
	case "BOOL":
		if v.Kind != event.Bool {
			return "not true or false, which BOOL holds"
		}
	default:
		if v.Kind != event.Number && v.Kind != event.Integer {
			return "not a number, which " + in.DataType + " holds"
		}
		if v.Kind == event.Integer && in.DataType == "INT64" {
			return ""
		}
		return in.bounds.Problem(v.Num)
	}
	return ""
}

// run evaluates the model (eval: a Runtime's Eval, or a remote request) on the batch's events.
func (b *typedBatch) run(eval func(inputs, outputs []*model.Tensor) error, good []pending) error {
	n := len(good)
	b.rows = n
	for k := range b.inputs {
		b.fill(k, good)
	}
	if err := eval(b.in, b.out); err != nil {
		return err
	}
	for j, o := range b.out {
		if len(o.Shape) == 0 || o.Shape[0] != n {
			return fmt.Errorf("output %d has shape %v, not one row per event of the %d", j, o.Shape, n)
		}
		b.values[j] = b.values[j][:0]
		if o.DType != model.Float32 {
			b.values[j] = appendValues(b.values[j], o)
		}
		b.labels[j] = nil
		if o.Keys != nil {
			b.labels[j] = appendValues(nil, o.Keys)
		}
	}
	return nil
}

// fill writes input k's features of every event into its tensor.
func (b *typedBatch) fill(k int, good []pending) {
	in := &b.inputs[k]
	t := b.in[k]
	width := len(in.Features)
	n := len(good)
	t.DType, t.Keys = in.dtype, nil
	if in.rank == 1 {
		t.Shape = append(t.Shape[:0], n)
	} else {
		t.Shape = append(t.Shape[:0], n, width)
	}
	switch in.dtype {
	case model.Float32:
		t.Float32 = fillValues(t.Float32, good, in, func(v event.Value) float32 { return float32(v.Num) })
	case model.Float64:
		t.Float64 = fillValues(t.Float64, good, in, func(v event.Value) float64 { return v.Num })
	case model.Int64:
		t.Int64 = fillValues(t.Int64, good, in, intOf)
	case model.Int32:
		t.Int32 = fillValues(t.Int32, good, in, func(v event.Value) int32 { return int32(intOf(v)) })
	case model.Bool:
		t.Bool = fillValues(t.Bool, good, in, func(v event.Value) bool { return v.Num != 0 })
	case model.String:
		t.String = fillValues(t.String, good, in, func(v event.Value) string { return v.Str })
	}
}

// intOf is an integer feature's value: exact when the message wrote an integer.
func intOf(v event.Value) int64 {
	if v.Kind == event.Integer {
		return v.Int
	}
	return int64(v.Num)
}

func fillValues[T any](dst []T, good []pending, in *typedInput, conv func(event.Value) T) []T {
	dst = dst[:0]
	for i := range good {
		for j := range in.Features {
			dst = append(dst, conv(valueAt(&good[i].ev, in.offset+j)))
		}
	}
	return dst
}

// appendValues appends a tensor's values as record values.
func appendValues(dst []event.Value, t *model.Tensor) []event.Value {
	n := t.Len()
	for i := range n {
		var v event.Value
		switch t.DType {
		case model.Float32:
			v = event.NumberValue(float64(t.Float32[i]))
		case model.Float64:
			v = event.NumberValue(t.Float64[i])
		case model.Int64:
			v = event.IntValue(t.Int64[i])
		case model.Int32:
			v = event.IntValue(int64(t.Int32[i]))
		case model.Int16:
			v = event.IntValue(int64(t.Int16[i]))
		case model.Int8:
			v = event.IntValue(int64(t.Int8[i]))
		case model.Uint32:
			v = event.IntValue(int64(t.Uint32[i]))
		case model.Uint16:
			v = event.IntValue(int64(t.Uint16[i]))
		case model.Uint8:
			v = event.IntValue(int64(t.Uint8[i]))
		case model.Bool:
			v = event.BoolValue(t.Bool[i])
		case model.String:
			v = event.StringValue(t.String[i])
		default:
			// UINT64 beyond int64 and the 16-bit floats: as a number, which the record holds.
			v = event.NumberValue(math.NaN())
			if t.DType == model.Uint64 {
				v = event.NumberValue(float64(t.Uint64[i]))
			}
		}
		dst = append(dst, v)
	}
	return dst
}

// output is output j's row of event i in the last run.
func (b *typedBatch) output(j, i int) event.Output {
	o := b.out[j]
	size := o.Len() / b.rows
	out := event.Output{Labels: b.labels[j]}
	if o.DType == model.Float32 {
		out.Values = o.Float32[i*size : (i+1)*size]
	} else {
		out.Typed = b.values[j][i*size : (i+1)*size]
	}
	return out
}
