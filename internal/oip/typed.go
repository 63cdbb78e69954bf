package oip

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/freightcast/freightcast/internal/datatype"
	"github.com/freightcast/freightcast/internal/jsonenc"
	"github.com/freightcast/freightcast/internal/model"
)

// This file serves models that Run (batches of FP32 rows) cannot: several inputs of any
// datatype, outputs of any type, ZipMap's maps. Each request is one Eval on typed tensors; the
// runtime's own pool of execution states lets requests run side by side.

// typedCall holds the tensors of one typed request, reused with its call.
type typedCall struct {
	in, out []*model.Tensor
	// outBufs keeps every output's tensor, requested or not, so that Eval's buffers are reused.
	outBufs []*model.Tensor
}

// prepareTyped matches a decoded request to the model's inputs and converts each into the
// tensor of the input's type, checking every value against it.
func prepareTyped(c *call, lm *loadedModel) error {
	meta := lm.meta
	req := &c.req
	tc := &c.typed
	if len(tc.in) != len(meta.Inputs) {
		tc.in = make([]*model.Tensor, len(meta.Inputs))
		tc.out = make([]*model.Tensor, len(meta.Outputs))
		tc.outBufs = make([]*model.Tensor, len(meta.Outputs))
		for j := range tc.outBufs {
			tc.outBufs[j] = &model.Tensor{}
		}
	}
	given := make([]bool, len(meta.Inputs))
	c.rows = 0
	for i := range req.inputs {
		t := &req.inputs[i]
		idx := inputIndex(meta.Inputs, t.name)
		if idx < 0 {
			return fmt.Errorf("unknown input %q; the model takes %s", t.name, inputNames(meta.Inputs))
		}
		if given[idx] {
			return fmt.Errorf("input %q appears twice", t.name)
		}
		given[idx] = true
		if tc.in[idx] == nil {
			tc.in[idx] = &model.Tensor{}
		}
		if err := fillTensor(tc.in[idx], t, meta.Inputs[idx]); err != nil {
			return err
		}
		if i == 0 && len(t.shape) > 0 {
			c.rows = int(t.shape[0])
		}
	}
	for j, mi := range meta.Inputs {
		if !given[j] {
			return fmt.Errorf("missing input %q (%s %s)", mi.Name, mi.DataType, shapeString(mi.Shape))
		}
	}
	if err := checkOutputNames(req.outputs, meta.Outputs); err != nil {
		return err
	}
	for j, mo := range meta.Outputs {
		tc.out[j] = nil
		if wanted(req.outputs, mo.Name) {
			tc.out[j] = tc.outBufs[j]
		}
	}
	return nil
}

func inputIndex(inputs []model.TensorInfo, name []byte) int {
	for j, mi := range inputs {
		if string(name) == mi.Name {
			return j
		}
	}
	return -1
}

func checkOutputNames(names [][]byte, outputs []model.TensorInfo) error {
	for _, name := range names {
		if inputIndex(outputs, name) < 0 {
			return fmt.Errorf("unknown output %q; the model has %s", name, inputNames(outputs))
		}
	}
	return nil
}

// fillTensor checks a request tensor against the model input it names (datatype, shape, count)
// and writes its values into dst as the input's type.
func fillTensor(dst *model.Tensor, t *inputTensor, want model.TensorInfo) error {
	got := string(t.datatype)
	if err := compatible(got, want.DataType); err != nil {
		return fmt.Errorf("input %q is %s; %v", t.name, got, err)
	}
	if len(t.shape) != len(want.Shape) {
		return fmt.Errorf("input %q has shape %s; the model takes %s", t.name, shapeString(t.shape), shapeString(want.Shape))
	}
	n := int64(1)
	shape := dst.Shape[:0]
	for d, v := range t.shape {
		if want.Shape[d] >= 0 && v != want.Shape[d] {
			return fmt.Errorf("input %q has shape %s; the model takes %s", t.name, shapeString(t.shape), shapeString(want.Shape))
		}
		n *= v
		if n > math.MaxInt32 {
			return fmt.Errorf("input %q: shape %s holds too many values", t.name, shapeString(t.shape))
		}
		shape = append(shape, int(v))
	}
	count := len(t.num)
	if got == "BYTES" {
		count = len(t.strs)
	}
	if int64(count) != n {
		return fmt.Errorf("input %q: shape %s needs %d values, data has %d", t.name, shapeString(t.shape), n, count)
	}
	if len(t.dims) > 1 {
		for d, v := range t.dims {
			if d >= len(t.shape) || int64(v) != t.shape[d] {
				return fmt.Errorf("input %q: nested data of shape %v does not match shape %s", t.name, t.dims, shapeString(t.shape))
			}
		}
	}
	dst.DType, dst.Shape, dst.Keys = want.DType, shape, nil
	switch want.DType {
	case model.String:
		dst.String = dst.String[:0]
		for _, s := range t.strs {
			dst.String = append(dst.String, string(s))
		}
		return nil
	case model.Bool:
		dst.Bool = dst.Bool[:0]
		for _, v := range t.num {
			dst.Bool = append(dst.Bool, v != 0)
		}
		return nil
	case model.Float32:
		return fillFloats(&dst.Float32, t, want.DataType)
	case model.Float64:
		return fillFloats(&dst.Float64, t, want.DataType)
	case model.Int64:
		return fillInts(&dst.Int64, t, want.DataType)
	case model.Int32:
		return fillInts(&dst.Int32, t, want.DataType)
	case model.Int16:
		return fillInts(&dst.Int16, t, want.DataType)
	case model.Int8:
		return fillInts(&dst.Int8, t, want.DataType)
	case model.Uint64:
		return fillInts(&dst.Uint64, t, want.DataType)
	case model.Uint32:
		return fillInts(&dst.Uint32, t, want.DataType)
	case model.Uint16:
		return fillInts(&dst.Uint16, t, want.DataType)
	case model.Uint8:
		return fillInts(&dst.Uint8, t, want.DataType)
	}
	return fmt.Errorf("input %q: the model takes %s, which this server does not take over JSON", t.name, want.DataType)
}

// compatible says why a request datatype cannot feed a model input's, nil when it can: numbers
// feed any numeric input whose type holds each value (checked per value), strings only BYTES,
// true and false only BOOL.
func compatible(got, want string) error {
	gotBytes, wantBytes := got == "BYTES", want == "BYTES"
	gotBool, wantBool := got == "BOOL", want == "BOOL"
	if gotBytes != wantBytes || gotBool != wantBool {
		return fmt.Errorf("the model takes %s", want)
	}
	return nil
}

func fillFloats[F float32 | float64](dst *[]F, t *inputTensor, dt string) error {
	b, _ := datatype.Of(dt)
	out := (*dst)[:0]
	for i, v := range t.num {
		if problem := b.Problem(v); problem != "" {
			return valueError(t, i, v, problem, dt)
		}
		out = append(out, F(v))
	}
	*dst = out
	return nil
}

func fillInts[I int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64](dst *[]I, t *inputTensor, dt string) error {
	b, _ := datatype.Of(dt)
	out := (*dst)[:0]
	for i, v := range t.num {
		exact := t.intOK[i]
		if exact {
			v = float64(t.ints[i])
		}
		// An integer literal INT64 holds is exact, even where float64 rounds it past the range.
		if !(exact && dt == "INT64") {
			if problem := b.Problem(v); problem != "" {
				return valueError(t, i, t.num[i], problem, dt)
			}
		}
		if exact {
			out = append(out, I(t.ints[i]))
		} else {
			out = append(out, I(uint64(v)))
		}
	}
	*dst = out
	return nil
}

func valueError(t *inputTensor, i int, v float64, problem, dt string) error {
	return fmt.Errorf("input %q: value %d of data is %s, %s, the type of the model's input %s", t.name, i, formatNumber(v), problem, dt)
}

// runTyped evaluates one typed request.
func (s *Server) runTyped(c *call, lm *loadedModel) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("model run panicked: %v", r)
		}
	}()
	err = lm.rt.Eval(c.typed.in, c.typed.out)
	s.cfg.Metrics.BatchSize.Observe(float64(c.rows))
	if err == nil {
		s.cfg.Metrics.RowsPredicted.Add(float64(c.rows))
	}
	return err
}

// inputError tells a run error caused by the request's values (an index out of range, a shape
// the graph refuses) from a failure of the server.
func inputError(err error) bool { return errors.Is(err, model.ErrInvalidInput) }

// encodeTyped appends the infer response of a typed request to b.
func (s *Server) encodeTyped(b []byte, c *call, lm *loadedModel) ([]byte, error) {
	b = s.appendResponseHead(b, c)
	first := true
	for j, mo := range lm.meta.Outputs {
		o := c.typed.out[j]
		if o == nil {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		var err error
		if b, err = appendTensor(b, mo.Name, o); err != nil {
			return b, err
		}
	}
	return append(b, "]}"...), nil
}

// appendTensor appends one output: its datatype is its element type's (a ZipMap's maps are
// their FP32 values, with the labels in parameters), BYTES as JSON strings.
func appendTensor(b []byte, name string, o *model.Tensor) ([]byte, error) {
	b = append(b, `{"name":`...)
	b = jsonenc.AppendString(b, name)
	b = append(b, `,"datatype":"`...)
	b = append(b, o.DType.OIP()...)
	b = append(b, `","shape":`...)
	b = appendInts(b, o.Shape)
	b = append(b, `,"data":`...)
	var err error
	if b, err = appendData(b, name, o); err != nil {
		return b, err
	}
	if o.Keys != nil {
		b = append(b, `,"parameters":{"labels":`...)
		if b, err = appendData(b, name+" labels", o.Keys); err != nil {
			return b, err
		}
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendInts(b []byte, vs []int) []byte {
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return append(b, ']')
}

// appendData appends a tensor's values as a flat JSON array.
func appendData(b []byte, name string, o *model.Tensor) ([]byte, error) {
	n := o.Len()
	b = append(b, '[')
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		switch o.DType {
		case model.Float32:
			v := o.Float32[i]
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return b, nonFinite(name, i, float64(v))
			}
			b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
		case model.Float64:
			v := o.Float64[i]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return b, nonFinite(name, i, v)
			}
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		case model.Int64:
			b = strconv.AppendInt(b, o.Int64[i], 10)
		case model.Int32:
			b = strconv.AppendInt(b, int64(o.Int32[i]), 10)
		case model.Int16:
			b = strconv.AppendInt(b, int64(o.Int16[i]), 10)
		case model.Int8:
			b = strconv.AppendInt(b, int64(o.Int8[i]), 10)
		case model.Uint64:
			b = strconv.AppendUint(b, o.Uint64[i], 10)
		case model.Uint32:
			b = strconv.AppendUint(b, uint64(o.Uint32[i]), 10)
		case model.Uint16:
			b = strconv.AppendUint(b, uint64(o.Uint16[i]), 10)
		case model.Uint8:
			b = strconv.AppendUint(b, uint64(o.Uint8[i]), 10)
		case model.Bool:
			b = strconv.AppendBool(b, o.Bool[i])
		case model.String:
			b = jsonenc.AppendString(b, o.String[i])
		default:
			return b, fmt.Errorf("output %q is %s, which this server cannot write as JSON", name, o.DType)
		}
	}
	return append(b, ']'), nil
}

func nonFinite(name string, i int, v float64) error {
	return fmt.Errorf("output %q value %d is %v: the inputs are outside what the model can compute", name, i, v)
}

// outputParameters is the parameters of a map output in the model metadata: ONNX's type and
// the keys, which an infer response repeats as labels.
func outputParameters(t model.TensorInfo) map[string]any {
	if t.Keys == nil {
		return nil
	}
	p := map[string]any{"onnx_type": t.Type}
	switch t.Keys.DType {
	case model.Int64:
		p["labels"] = t.Keys.Int64[:t.Keys.Len()]
	case model.String:
		p["labels"] = t.Keys.String[:t.Keys.Len()]
	}
	return p
}
