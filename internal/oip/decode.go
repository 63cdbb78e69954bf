package oip

import (
	"fmt"
	"math"
	"strconv"

	"github.com/freightcast/freightcast/internal/datatype"
	"github.com/freightcast/freightcast/internal/jsonenc"
	"github.com/freightcast/freightcast/internal/jsonscan"
)

// This file decodes infer requests by hand, on internal/jsonscan. encoding/json would reflect
// over []any for the nested numeric arrays in data, allocating for every number; here numbers go
// straight into reused float32 buffers, and names stay slices of the request body (or of the
// scanner's buffer, when they had escapes).

// maxDepth bounds the nesting of skipped JSON values and of data arrays, so a hostile body
// cannot exhaust the stack.
const maxDepth = 64

// maxRank bounds the rank of an input tensor.
const maxRank = 8

// inferRequest is a decoded infer body. Its buffers are reused between requests.
type inferRequest struct {
	id      []byte // the id as a JSON string token, ready to echo
	inputs  []inputTensor
	outputs [][]byte // requested output names; nil means all
	// scan holds the unescaped names until the next request.
	scan scanner
	// typed is set for a model served by Eval (typed tensors): numbers are kept as float64,
	// with their exact integer value, instead of float32, whose range and precision the
	// model's inputs need not share.
	typed bool
}

type inputTensor struct {
	name     []byte
	datatype []byte
	shape    []int64
	data     []float32
	// num holds the numbers (and booleans as 0 and 1) of a typed request instead of data;
	// ints[i] is num[i] as an integer, exact when the JSON wrote it as one (float64 is not
	// for integers beyond 2^53), and intOK[i] tells whether it is one.
	num   []float64
	ints  []int64
	intOK []bool
	// strs holds the strings of BYTES data, valid until the next request.
	strs [][]byte
	// values sums up what data held, for the datatype's check.
	values dataSummary
	// dims is the nesting of data: one entry for flat data, the full shape for nested data.
	dims []int
	// leaf is the depth at which data holds numbers, -1 until the first number.
	leaf int
}

func (r *inferRequest) reset() {
	r.id = r.id[:0]
	r.inputs = r.inputs[:0]
	r.outputs = r.outputs[:0]
}

// decodeError is a client error in the request body.
type decodeError struct{ msg string }

func (e *decodeError) Error() string { return e.msg }

func errorf(format string, args ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, args...)}
}

// scanner reads an infer body with jsonscan and words its errors as the OIP server always has:
// "invalid JSON at byte N: expected X, found Y".
type scanner struct {
	jsonscan.Scanner
}

// peek moves past whitespace and returns the byte there, 0 at the end.
func (s *scanner) peek() byte {
	s.SkipSpace()
	return s.Peek()
}

func (s *scanner) syntax(what string) error {
	return syntaxAt(s.EOF(), s.Pos(), s.Peek(), what)
}

func syntaxAt(eof bool, pos int, found byte, what string) error {
	if eof {
		return errorf("invalid JSON: %s, found the end of the body", what)
	}
	return errorf("invalid JSON at byte %d: %s, found %q", pos, what, found)
}

// expected is what the OIP server's errors say it wanted, by the scanner's kind of error.
var expected = [...]string{
	jsonscan.WantObject:         "expected '{'",
	jsonscan.WantArray:          "expected '['",
	jsonscan.WantString:         "expected a string",
	jsonscan.WantColon:          "expected ':'",
	jsonscan.WantCommaOrBrace:   "expected ',' or '}'",
	jsonscan.WantCommaOrBracket: "expected ',' or ']'",
}

// fail words an error of the scanner; errors the decoder worded itself pass as they are.
func (s *scanner) fail(err error) error {
	se, ok := err.(*jsonscan.Error)
	if !ok {
		return err
	}
	text := s.Text()
	switch se.Kind {
	case jsonscan.WantValue:
		// What is neither a string, an array, an object nor a literal's first letter was
		// meant as a number, as far as the client can tell.
		if se.Found == 't' || se.Found == 'f' || se.Found == 'n' {
			return syntaxAt(se.EOF, se.Offset, se.Found, "expected a value")
		}
		return syntaxAt(se.EOF, se.Offset, se.Found, "expected a number")
	case jsonscan.BadNumber, jsonscan.NoFractionDigit, jsonscan.NoExponentDigit:
		// Said where the number starts; a body that ends there has none.
		if se.Start == len(text) {
			return syntaxAt(true, se.Start, 0, "expected a number")
		}
		return syntaxAt(false, se.Start, text[se.Start], "expected a number")
	case jsonscan.OutOfRange:
		return errorf("number %s at byte %d is out of range", text[se.Start:se.Offset], se.Start)
	case jsonscan.TooDeep:
		return errorf("JSON nested deeper than %d levels", maxDepth)
	case jsonscan.ControlCharacter:
		return errorf("invalid JSON at byte %d: control character in string", se.Offset)
	case jsonscan.BadEscape:
		return errorf("invalid JSON string at byte %d: invalid character %s in string escape code", se.Start, quoteChar(se.Found))
	case jsonscan.BadUnicodeEscape:
		// Named as encoding/json names it: the first byte of the four that is not a hex digit.
		for _, c := range text[se.Offset:min(se.Offset+4, len(text))] {
			if !isHex(c) {
				return errorf("invalid JSON string at byte %d: invalid character %s in \\u hexadecimal character escape", se.Start, quoteChar(c))
			}
		}
		// The body ends within the four.
		return errorf("invalid JSON: unterminated string at byte %d", se.Start)
	case jsonscan.UnterminatedString:
		return errorf("invalid JSON: unterminated string at byte %d", se.Start)
	case jsonscan.InvalidUTF8:
		return errorf("invalid JSON at byte %d: %s in a string is not UTF-8", se.Offset, jsonscan.QuoteByte(se.Found))
	}
	return syntaxAt(se.EOF, se.Offset, se.Found, expected[se.Kind])
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// quoteChar writes a byte in an error as encoding/json does.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// The wrappers below call fail only on an error: a call on every success costs the decoder a
// tenth of its time.

// str reads a JSON string; its contents stay valid until the next request.
func (s *scanner) str() ([]byte, error) {
	s.SkipSpace()
	v, err := s.String()
	if err != nil {
		return nil, s.fail(err)
	}
	return v, nil
}

// number reads a JSON number.
func (s *scanner) number() (float64, error) {
	s.SkipSpace()
	v, err := s.Number()
	if err != nil {
		return 0, s.fail(err)
	}
	return v, nil
}

// skip reads and discards any JSON value.
func (s *scanner) skip() error {
	s.SkipSpace()
	if err := s.Skip(maxDepth-1, jsonscan.FiniteNumbers); err != nil {
		return s.fail(err)
	}
	return nil
}

// object reads an object, handing each key to field, which must consume the value.
func (s *scanner) object(field func(key []byte) error) error {
	s.SkipSpace()
	if err := s.Object(field); err != nil {
		return s.fail(err)
	}
	return nil
}

// array reads an array, calling elem for each element.
func (s *scanner) array(elem func() error) error {
	s.SkipSpace()
	if err := s.Array(elem); err != nil {
		return s.fail(err)
	}
	return nil
}

// keySet records which of an object's keys were given, so that a key given twice is refused:
// JSON leaves duplicates to the reader, and joining them ("shape":[1],"shape":[12] read as
// [1,12]) or keeping either would answer something else than the client meant.
type keySet uint8

// once marks the key of bit as given, or says that it was already.
func (k *keySet) once(bit keySet, key string) error {
	if *k&bit != 0 {
		return errorf("%q is given twice", key)
	}
	*k |= bit
	return nil
}

// The keys of the request, of an input and of an output entry that the server reads.
const (
	keyID keySet = 1 << iota
	keyInputs
	keyOutputs
	keyParameters
	keyName
	keyDatatype
	keyShape
	keyData
)

// decodeInferRequest parses body into r.
func decodeInferRequest(body []byte, r *inferRequest) error {
	r.reset()
	s := &r.scan
	s.KeepStrings = true
	s.Reset(body)
	var given keySet
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			if err := given.once(keyID, "id"); err != nil {
				return err
			}
			v, err := s.str()
			if err != nil {
				return errorf("id: %v", err)
			}
			// Re-encoded rather than echoed raw: the scanner let no invalid UTF-8 through, but a
			// quote or control character must be escaped again.
			r.id = jsonenc.AppendString(r.id, string(v))
			return nil
		case "inputs":
			if err := given.once(keyInputs, "inputs"); err != nil {
				return err
			}
			return s.array(func() error {
				r.inputs = growInputs(r.inputs)
				return s.input(&r.inputs[len(r.inputs)-1], r.typed)
			})
		case "outputs":
			if err := given.once(keyOutputs, "outputs"); err != nil {
				return err
			}
			if s.peek() == 'n' && s.Literal("null") {
				return nil
			}
			return s.array(func() error { return s.output(&r.outputs) })
		case "parameters":
			if err := given.once(keyParameters, "parameters"); err != nil {
				return err
			}
			return s.parameters()
		default:
			return s.skip()
		}
	})
	if err != nil {
		return err
	}
	if s.SkipSpace(); !s.EOF() {
		return s.syntax("expected the end of the body")
	}
	if len(r.inputs) == 0 {
		return errorf("the request has no inputs")
	}
	return nil
}

// output reads one entry of outputs and appends its name to names.
func (s *scanner) output(names *[][]byte) error {
	var name []byte
	var given keySet
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "name":
			if err := given.once(keyName, "name"); err != nil {
				return err
			}
			v, err := s.str()
			name = v
			return err
		case "parameters":
			if err := given.once(keyParameters, "parameters"); err != nil {
				return err
			}
			return s.parameters()
		}
		return s.skip()
	})
	if err != nil {
		if name != nil {
			return errorf("output %q: %v", name, err)
		}
		return err
	}
	if name == nil {
		return errorf("an entry of outputs has no name")
	}
	*names = append(*names, name)
	return nil
}

// parameters reads a parameters object, which is opaque to this server but for the keys of
// KServe's binary tensor extension: the server speaks JSON only, and a client that asked for
// binary tensors, or sent some, must hear so rather than get something else than it expects.
func (s *scanner) parameters() error {
	if s.peek() == 'n' && s.Literal("null") {
		return nil
	}
	return s.object(func(key []byte) error {
		switch string(key) {
		case "binary_data", "binary_data_output", "binary_data_size":
			if string(key) != "binary_data_size" && s.peek() == 'f' && s.Literal("false") {
				return nil
			}
			return errorf("parameters.%s: the binary tensor extension is not supported; send and receive tensors as JSON data", key)
		}
		return s.skip()
	})
}

// growInputs extends the slice by one, reusing the buffers of an earlier request.
func growInputs(in []inputTensor) []inputTensor {
	if len(in) < cap(in) {
		in = in[:len(in)+1]
		t := &in[len(in)-1]
		t.name, t.datatype = nil, nil
		t.shape, t.data, t.dims = t.shape[:0], t.data[:0], t.dims[:0]
		t.num, t.ints, t.intOK = t.num[:0], t.ints[:0], t.intOK[:0]
		clear(t.strs)
		t.strs = t.strs[:0]
		t.values = dataSummary{}
		return in
	}
	return append(in, inputTensor{})
}

func (s *scanner) input(t *inputTensor, typed bool) error {
	// data may come before datatype: what it held is summed up in t.values, and checked
	// against the datatype afterwards.
	var given keySet
	t.values.reset()
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "name":
			if err := given.once(keyName, "name"); err != nil {
				return err
			}
			t.name, err = s.str()
		case "datatype":
			if err := given.once(keyDatatype, "datatype"); err != nil {
				return err
			}
			t.datatype, err = s.str()
		case "shape":
			if err := given.once(keyShape, "shape"); err != nil {
				return err
			}
			err = s.array(func() error {
				v, err := s.number()
				if err != nil {
					return err
				}
				if v != math.Trunc(v) || v < 0 || v > math.MaxInt32 {
					return errorf("shape: %v is not a valid dimension", v)
				}
				if len(t.shape) >= maxRank {
					return errorf("shape: more than %d dimensions", maxRank)
				}
				t.shape = append(t.shape, int64(v))
				return nil
			})
		case "data":
			if err := given.once(keyData, "data"); err != nil {
				return err
			}
			t.leaf = -1
			err = s.data(t, 0, typed)
		case "parameters":
			if err := given.once(keyParameters, "parameters"); err != nil {
				return err
			}
			err = s.parameters()
		default:
			err = s.skip()
		}
		return err
	})
	if err != nil {
		if t.name != nil {
			return errorf("input %q: %v", t.name, err)
		}
		return err
	}
	switch {
	case t.name == nil:
		return errorf("an input has no name")
	case given&keyShape == 0:
		return errorf("input %q has no shape", t.name)
	case given&keyData == 0:
		return errorf("input %q has no data", t.name)
	case len(t.datatype) == 0:
		return errorf("input %q has no datatype", t.name)
	}
	if string(t.datatype) == "BYTES" {
		if problem := t.values.checkBytes(); problem != "" {
			return errorf("input %q: %s", t.name, problem)
		}
		return nil
	}
	bounds, ok := datatype.Of(string(t.datatype))
	if !ok {
		return errorf("input %q: datatype %s is not supported (use FP32, FP64, FP16, an integer type, BOOL or BYTES)", t.name, t.datatype)
	}
	if problem := t.values.check(bounds); problem != "" {
		return errorf("input %q: %s", t.name, problem)
	}
	return nil
}

// dataSummary is what a tensor's data held, enough to check it against a datatype that may be
// read after it: the least and the greatest number, the first with a fraction, the first
// boolean. Positions count values in row-major order, -1 for none.
type dataSummary struct {
	numbers             int
	least, greatest     float64
	leastAt, greatestAt int
	fraction            float64
	fractionAt          int
	firstBoolAt         int
	firstBool           bool
	firstStringAt       int
	firstNumberAt       int
}

func (d *dataSummary) reset() {
	*d = dataSummary{leastAt: -1, greatestAt: -1, fractionAt: -1, firstBoolAt: -1, firstStringAt: -1, firstNumberAt: -1}
}

func (d *dataSummary) str(at int) {
	if d.firstStringAt < 0 {
		d.firstStringAt = at
	}
}

// checkBytes says what in the data BYTES cannot hold (anything but strings), "" when nothing.
func (d *dataSummary) checkBytes() string {
	first := -1
	for _, at := range [...]int{d.firstNumberAt, d.firstBoolAt} {
		if at >= 0 && (first < 0 || at < first) {
			first = at
		}
	}
	if first >= 0 {
		return fmt.Sprintf("value %d of data is not a string; BYTES holds strings", first)
	}
	return ""
}

func (d *dataSummary) number(at int, v float64) {
	if d.numbers == 0 {
		d.firstNumberAt = at
	}
	if d.numbers == 0 || v < d.least {
		d.least, d.leastAt = v, at
	}
	if d.numbers == 0 || v > d.greatest {
		d.greatest, d.greatestAt = v, at
	}
	if d.fractionAt < 0 && v != math.Trunc(v) {
		d.fraction, d.fractionAt = v, at
	}
	d.numbers++
}

func (d *dataSummary) boolean(at int, v bool) {
	if d.firstBoolAt < 0 {
		d.firstBool, d.firstBoolAt = v, at
	}
}

// check says what in the data the datatype cannot hold, "" when it holds all of it.
func (d *dataSummary) check(b datatype.Bounds) string {
	if d.firstStringAt >= 0 {
		holds := "numbers"
		if b.Bool {
			holds = "true or false"
		}
		return fmt.Sprintf("value %d of data is a string; %s holds %s", d.firstStringAt, b.Name, holds)
	}
	if b.Bool {
		if d.numbers > 0 {
			at, v := d.leastAt, d.least
			return fmt.Sprintf("value %d of data is %s; %s", at, formatNumber(v), b.Problem(v))
		}
		return ""
	}
	if d.firstBoolAt >= 0 {
		return fmt.Sprintf("value %d of data is %v; %s holds numbers, not true or false", d.firstBoolAt, d.firstBool, b.Name)
	}
	for _, at := range [...]struct {
		i int
		v float64
	}{{d.leastAt, d.least}, {d.greatestAt, d.greatest}, {d.fractionAt, d.fraction}} {
		if at.i < 0 {
			continue
		}
		if problem := b.Problem(at.v); problem != "" {
			return fmt.Sprintf("value %d of data is %s, %s", at.i, formatNumber(at.v), problem)
		}
	}
	return ""
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// data reads a flat or nested array of numbers, booleans or strings, appending numbers and
// booleans to t.data (t.num when typed) and strings to t.strs, and recording the nesting in
// t.dims; nested arrays must be rectangular.
func (s *scanner) data(t *inputTensor, depth int, typed bool) error {
	if depth >= maxRank {
		return errorf("data nested deeper than %d levels", maxRank)
	}
	if depth == len(t.dims) {
		t.dims = append(t.dims, -1)
	}
	n := 0
	err := s.array(func() error {
		n++
		c := s.peek()
		if c == '[' {
			if t.leaf >= 0 && depth+1 > t.leaf {
				return errorf("data mixes numbers and arrays at depth %d", depth+1)
			}
			return s.data(t, depth+1, typed)
		}
		if t.leaf < 0 {
			t.leaf = depth
		} else if t.leaf != depth {
			return errorf("data mixes numbers and arrays at depth %d", depth)
		}
		switch c {
		case 't', 'f':
			v := float32(0)
			if s.Literal("true") {
				v = 1
			} else if !s.Literal("false") {
				return s.syntax("expected a number")
			}
			t.values.boolean(t.count(), v == 1)
			if typed {
				t.addTyped(float64(v), int64(v), true)
				return nil
			}
			t.data = append(t.data, v)
			return nil
		case '"':
			at := t.count()
			v, err := s.str()
			if err != nil {
				return err
			}
			t.values.str(at)
			t.strs = append(t.strs, v)
			return nil
		default:
			if typed {
				return s.typedNumber(t)
			}
			v, err := s.number()
			if err != nil {
				return err
			}
			t.values.number(t.count(), v)
			f := float32(v)
			if math.IsInf(float64(f), 0) {
				return errorf("data value %v overflows FP32", v)
			}
			t.data = append(t.data, f)
			return nil
		}
	})
	if err != nil {
		return err
	}
	switch d := t.dims[depth]; {
	case d == -1:
		t.dims[depth] = n
	case d != n:
		return errorf("data is ragged: arrays of %d and %d elements at depth %d", d, n, depth)
	}
	return nil
}

// count is the number of values data held so far.
func (t *inputTensor) count() int { return len(t.data) + len(t.num) + len(t.strs) }

func (t *inputTensor) addTyped(v float64, i int64, isInt bool) {
	t.num = append(t.num, v)
	t.ints = append(t.ints, i)
	t.intOK = append(t.intOK, isInt)
}

// typedNumber reads a number of a typed request into t.num, with its exact integer value when
// it has one: an integer literal within INT64's range is parsed as one, not through float64.
func (s *scanner) typedNumber(t *inputTensor) error {
	s.SkipSpace()
	start := s.Pos()
	v, err := s.number()
	if err != nil {
		return err
	}
	lit := s.Text()[start:s.Pos()]
	if i, ok := jsonscan.ExactInt(lit); ok {
		// The datatype check reads float64s, in which INT64's largest values round up to 2^63,
		// past its range; the exact integer is within it.
		t.values.number(t.count(), min(v, math.Nextafter(1<<63, 0)))
		t.addTyped(v, i, true)
		return nil
	}
	t.values.number(t.count(), v)
	if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
		t.addTyped(v, int64(v), true)
		return nil
	}
	t.addTyped(v, 0, false)
	return nil
}
