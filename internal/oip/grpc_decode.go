package oip

import (
	"encoding/binary"
	"math"
	"slices"

	"github.com/freightcast/freightcast/internal/datatype"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oippb"
)

// This file turns a gRPC ModelInferRequest into the same decoded request (inferRequest) as a
// JSON body, so both protocols share the matching against the model, the batcher and the typed
// path. Values come either typed (InferTensorContents, the field that matches the datatype) or
// raw (raw_input_contents, little-endian, one entry per input); both are checked here against
// the datatype and the shape the request declares.

// rawSize is the bytes of one element of each datatype in raw_input_contents (BYTES has its own
// length-prefixed layout).
var rawSize = map[string]int{
	"BOOL": 1, "INT8": 1, "UINT8": 1,
	"INT16": 2, "UINT16": 2, "FP16": 2,
	"INT32": 4, "UINT32": 4, "FP32": 4,
	"INT64": 8, "UINT64": 8, "FP64": 8,
}

// contentsField is the InferTensorContents field that carries each datatype (FP16 has none:
// it travels raw only).
var contentsField = map[string]string{
	"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
	"INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
	"UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}

// decodeGRPCRequest fills r from req, for a model of modelInputs inputs; r.typed says whether
// the values go to a typed model.
func decodeGRPCRequest(req *oippb.ModelInferRequest, r *inferRequest, modelInputs []model.TensorInfo) error {
	r.reset()
	if len(req.Inputs) == 0 {
		return errorf("the request has no inputs")
	}
	// More inputs than the model has are names it does not know or names given twice; refused
	// before any is decoded, as a message may carry many thousands.
	if len(req.Inputs) > len(modelInputs) {
		return errorf("the request has %d inputs; the model takes %d: %s", len(req.Inputs), len(modelInputs), inputNames(modelInputs))
	}
	raw := req.RawInputContents
	if len(raw) > 0 && len(raw) != len(req.Inputs) {
		return errorf("raw_input_contents has %d entries for %d inputs: give one per input, in the order of inputs", len(raw), len(req.Inputs))
	}
	for i, in := range req.Inputs {
		name := in.GetName()
		if name == "" {
			return errorf("inputs[%d] has no name", i)
		}
		for _, prev := range req.Inputs[:i] {
			if prev.GetName() == name {
				return errorf("input %q appears twice", name)
			}
		}
		r.inputs = growInputs(r.inputs)
		t := &r.inputs[len(r.inputs)-1]
		t.name = append(t.name[:0], name...)
		dt := in.GetDatatype()
		t.datatype = append(t.datatype[:0], dt...)
		if dt == "" {
			return errorf("input %q has no datatype", name)
		}
		if _, known := rawSize[dt]; !known && dt != "BYTES" {
			return errorf("input %q: datatype %s is not supported (use FP32, FP64, FP16, an integer type, BOOL or BYTES)", name, dt)
		}
		n, err := gRPCShape(t, in.GetShape())
		if err != nil {
			return err
		}
		if len(raw) > 0 {
			if field := filledContents(in.GetContents()); field != "" {
				return errorf("input %q has both contents (%s) and raw_input_contents[%d]: give one", name, field, i)
			}
			err = decodeRaw(t, dt, raw[i], n, i, r.typed)
		} else {
			err = decodeContents(t, dt, in.GetContents(), n, r.typed)
		}
		if err != nil {
			return err
		}
	}
	for j, o := range req.Outputs {
		if o.GetName() == "" {
			return errorf("outputs[%d] has no name", j)
		}
		r.outputs = append(r.outputs, []byte(o.GetName()))
	}
	return nil
}

// gRPCShape copies the shape into t and returns the number of values it holds.
func gRPCShape(t *inputTensor, shape []int64) (int, error) {
	if len(shape) == 0 {
		return 0, errorf("input %q has no shape", t.name)
	}
	if len(shape) > maxRank {
		return 0, errorf("input %q: shape has more than %d dimensions", t.name, maxRank)
	}
	n := int64(1)
	for _, d := range shape {
		if d < 0 || d > math.MaxInt32 {
			return 0, errorf("input %q: shape %v: %d is not a valid dimension", t.name, shape, d)
		}
		n *= d
		if n > math.MaxInt32 {
			return 0, errorf("input %q: shape %v holds too many values", t.name, shape)
		}
		t.shape = append(t.shape, d)
	}
	return int(n), nil
}

// filledContents names the first field of c that holds values, "" when none does.
func filledContents(c *oippb.InferTensorContents) string {
	switch {
	case c == nil:
		return ""
	case len(c.BoolContents) > 0:
		return "bool_contents"
	case len(c.IntContents) > 0:
		return "int_contents"
	case len(c.Int64Contents) > 0:
		return "int64_contents"
	case len(c.UintContents) > 0:
		return "uint_contents"
	case len(c.Uint64Contents) > 0:
		return "uint64_contents"
	case len(c.Fp32Contents) > 0:
		return "fp32_contents"
	case len(c.Fp64Contents) > 0:
		return "fp64_contents"
	case len(c.BytesContents) > 0:
		return "bytes_contents"
	}
	return ""
}

// contentsCounts is how many values each field of c holds, by field name.
func contentsCounts(c *oippb.InferTensorContents) map[string]int {
	return map[string]int{
		"bool_contents": len(c.BoolContents), "int_contents": len(c.IntContents), "int64_contents": len(c.Int64Contents),
		"uint_contents": len(c.UintContents), "uint64_contents": len(c.Uint64Contents), "fp32_contents": len(c.Fp32Contents),
		"fp64_contents": len(c.Fp64Contents), "bytes_contents": len(c.BytesContents),
	}
}

// decodeContents reads the typed contents of an input of datatype dt and n values.
func decodeContents(t *inputTensor, dt string, c *oippb.InferTensorContents, n int, typed bool) error {
	field, ok := contentsField[dt]
	if !ok {
		return errorf("input %q is %s, which has no contents field: send it in raw_input_contents", t.name, dt)
	}
	if c == nil {
		c = &oippb.InferTensorContents{}
	}
	counts := contentsCounts(c)
	for f, k := range counts {
		if f != field && k > 0 {
			return errorf("input %q is %s, whose values go in contents.%s, but contents.%s holds %d values", t.name, dt, field, f, k)
		}
	}
	if got := counts[field]; got != n {
		return errorf("input %q: shape %s needs %d values, contents.%s has %d", t.name, shapeString(t.shape), n, field, got)
	}
	d := newValueSink(t, dt, typed, true)
	var err error
	switch field {
	case "bool_contents":
		for i := 0; i < len(c.BoolContents) && err == nil; i++ {
			err = d.boolean(c.BoolContents[i])
		}
	case "int_contents":
		for i := 0; i < len(c.IntContents) && err == nil; i++ {
			err = d.integer(int64(c.IntContents[i]))
		}
	case "int64_contents":
		for i := 0; i < len(c.Int64Contents) && err == nil; i++ {
			err = d.integer(c.Int64Contents[i])
		}
	case "uint_contents":
		for i := 0; i < len(c.UintContents) && err == nil; i++ {
			err = d.integer(int64(c.UintContents[i]))
		}
	case "uint64_contents":
		for i := 0; i < len(c.Uint64Contents) && err == nil; i++ {
			err = d.unsigned(c.Uint64Contents[i])
		}
	case "fp32_contents":
		for i := 0; i < len(c.Fp32Contents) && err == nil; i++ {
			err = d.float(float64(c.Fp32Contents[i]))
		}
	case "fp64_contents":
		for i := 0; i < len(c.Fp64Contents) && err == nil; i++ {
			err = d.float(c.Fp64Contents[i])
		}
	case "bytes_contents":
		for _, v := range c.BytesContents {
			t.strs = append(t.strs, v)
		}
	}
	return err
}

// decodeRaw reads the little-endian raw contents b of input number i.
func decodeRaw(t *inputTensor, dt string, b []byte, n, i int, typed bool) error {
	if dt == "BYTES" {
		return decodeRawBytes(t, b, n, i)
	}
	size := rawSize[dt]
	if len(b) != n*size {
		return errorf("input %q: raw_input_contents[%d] has %d bytes; shape %s of %s needs %d (%d values of %d bytes)",
			t.name, i, len(b), shapeString(t.shape), dt, n*size, n, size)
	}
	if dt == "FP32" && !typed {
		return rawFP32Rows(t, b)
	}
	d := newValueSink(t, dt, typed, false)
	var err error
	for k := 0; k < n && err == nil; k++ {
		e := b[k*size : (k+1)*size]
		switch dt {
		case "BOOL":
			if e[0] > 1 {
				return errorf("input %q: raw_input_contents[%d] byte %d is %d; BOOL is 0 or 1", t.name, i, k, e[0])
			}
			err = d.boolean(e[0] == 1)
		case "INT8":
			err = d.integer(int64(int8(e[0])))
		case "UINT8":
			err = d.integer(int64(e[0]))
		case "INT16":
			err = d.integer(int64(int16(binary.LittleEndian.Uint16(e))))
		case "UINT16":
			err = d.integer(int64(binary.LittleEndian.Uint16(e)))
		case "INT32":
			err = d.integer(int64(int32(binary.LittleEndian.Uint32(e))))
		case "UINT32":
			err = d.integer(int64(binary.LittleEndian.Uint32(e)))
		case "INT64":
			err = d.integer(int64(binary.LittleEndian.Uint64(e)))
		case "UINT64":
			err = d.unsigned(binary.LittleEndian.Uint64(e))
		case "FP16":
			err = d.float(float64(halfToFloat(binary.LittleEndian.Uint16(e))))
		case "FP32":
			err = d.float(float64(math.Float32frombits(binary.LittleEndian.Uint32(e))))
		case "FP64":
			err = d.float(math.Float64frombits(binary.LittleEndian.Uint64(e)))
		}
	}
	return err
}

// rawFP32Rows appends FP32 raw contents, of the length the shape needs, to the rows of t: what
// a model served by Run takes as it is, so the one check is finiteness (an exponent of all ones
// is an infinity or a NaN), and the rows grow once, not once per value. It is the path of
// tritonclient's requests to such a model: through a valueSink value by value, decoding was
// 13 % of the CPU of 64-row calls (client and server, pprof), this way 3 %.
func rawFP32Rows(t *inputTensor, b []byte) error {
	t.data = slices.Grow(t.data, len(b)/4)
	for k := 0; k+4 <= len(b); k += 4 {
		u := binary.LittleEndian.Uint32(b[k:])
		if u&0x7f800000 == 0x7f800000 {
			return notFinite(t, float64(math.Float32frombits(u)))
		}
		t.data = append(t.data, math.Float32frombits(u))
	}
	return nil
}

// decodeRawBytes reads BYTES raw contents: each element a 4-byte little-endian length, then
// that many bytes.
func decodeRawBytes(t *inputTensor, b []byte, n, i int) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return errorf("input %q: raw_input_contents[%d] ends inside the length of element %d", t.name, i, len(t.strs))
		}
		l := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(l) > uint64(len(b)) {
			return errorf("input %q: raw_input_contents[%d] element %d claims %d bytes, %d are left", t.name, i, len(t.strs), l, len(b))
		}
		if len(t.strs) == n {
			return errorf("input %q: raw_input_contents[%d] holds more than the %d elements of shape %s", t.name, i, n, shapeString(t.shape))
		}
		t.strs = append(t.strs, b[:l])
		b = b[l:]
	}
	if len(t.strs) != n {
		return errorf("input %q: shape %s needs %d values, raw_input_contents[%d] has %d", t.name, shapeString(t.shape), n, i, len(t.strs))
	}
	return nil
}

// valueSink checks each value against the datatype the request declares and stores it as the
// model path needs: FP32 for rows, float64 with the exact integer for a typed model. Only what
// can be out of range is checked: raw values are of their datatype by construction, and so are
// the contents fields but for the narrow integers that travel in 32-bit fields.
type valueSink struct {
	t     *inputTensor
	dt    string
	typed bool
	// bounds, when set, are the declared datatype's, which values must be within.
	bounds *datatype.Bounds
}

// fp32 bounds a value bound for the FP32 rows of a model served by Run.
var fp32, _ = datatype.Of("FP32")

// narrowInContents are the datatypes whose contents field is wider than they are.
var narrowInContents = map[string]bool{"INT8": true, "INT16": true, "UINT8": true, "UINT16": true}

func newValueSink(t *inputTensor, dt string, typed, contents bool) valueSink {
	d := valueSink{t: t, dt: dt, typed: typed}
	if contents && narrowInContents[dt] {
		b, _ := datatype.Of(dt)
		d.bounds = &b
	}
	return d
}

func (d *valueSink) add(v float64, i int64, isInt bool) error {
	if d.bounds != nil {
		if problem := d.bounds.Problem(v); problem != "" {
			return d.refuse(v, problem, "")
		}
	}
	if d.typed {
		d.t.addTyped(v, i, isInt)
		return nil
	}
	// Only FP64 holds finite values beyond FP32's (integers all fit, if rounded).
	if d.dt == "FP64" {
		if problem := fp32.Problem(v); problem != "" {
			return d.refuse(v, problem, ", the type of the model's input")
		}
	}
	d.t.data = append(d.t.data, float32(v))
	return nil
}

func (d *valueSink) refuse(v float64, problem, why string) error {
	return errorf("input %q: value %d is %s, %s%s", d.t.name, d.t.count(), formatNumber(v), problem, why)
}

func (d *valueSink) boolean(v bool) error {
	if v {
		return d.add(1, 1, true)
	}
	return d.add(0, 0, true)
}

func (d *valueSink) integer(v int64) error { return d.add(float64(v), v, true) }

func (d *valueSink) unsigned(v uint64) error {
	if v > math.MaxInt64 {
		return d.add(float64(v), 0, false)
	}
	return d.add(float64(v), int64(v), true)
}

func (d *valueSink) float(v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return notFinite(d.t, v)
	}
	return d.add(v, 0, false)
}

// notFinite refuses v, the next value of t.
func notFinite(t *inputTensor, v float64) error {
	return errorf("input %q: value %d is %v; inputs must be finite", t.name, t.count(), v)
}

// halfToFloat converts an IEEE 754 half-precision value to float32.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: the value is frac × 2^-24
		v := float32(frac) / (1 << 24)
		if sign != 0 {
			return -v
		}
		return v
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}
