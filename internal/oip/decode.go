package oip

import (
	"fmt"
	"math"
	"strconv"

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
}

type inputTensor struct {
	name     []byte
	datatype []byte
	shape    []int64
	hasShape bool
	data     []float32
	// dims is the nesting of data: one entry for flat data, the full shape for nested data.
	dims    []int
	hasData bool
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

// decodeInferRequest parses body into r.
func decodeInferRequest(body []byte, r *inferRequest) error {
	r.reset()
	s := &r.scan
	s.KeepStrings = true
	s.Reset(body)
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			v, err := s.str()
			if err != nil {
				return errorf("id: %v", err)
			}
			// Re-encoded rather than echoed raw, so invalid UTF-8 cannot reach the response.
			r.id = jsonenc.AppendString(r.id, string(v))
			return nil
		case "inputs":
			return s.array(func() error {
				r.inputs = growInputs(r.inputs)
				return s.input(&r.inputs[len(r.inputs)-1])
			})
		case "outputs":
			if s.peek() == 'n' && s.Literal("null") {
				return nil
			}
			return s.array(func() error {
				var name []byte
				err := s.object(func(key []byte) error {
					if string(key) == "name" {
						v, err := s.str()
						name = v
						return err
					}
					return s.skip()
				})
				if err != nil {
					return err
				}
				if name == nil {
					return errorf("an entry of outputs has no name")
				}
				r.outputs = append(r.outputs, name)
				return nil
			})
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

// growInputs extends the slice by one, reusing the buffers of an earlier request.
func growInputs(in []inputTensor) []inputTensor {
	if len(in) < cap(in) {
		in = in[:len(in)+1]
		t := &in[len(in)-1]
		t.name, t.datatype, t.hasShape, t.hasData = nil, nil, false, false
		t.shape, t.data, t.dims = t.shape[:0], t.data[:0], t.dims[:0]
		return in
	}
	return append(in, inputTensor{})
}

func (s *scanner) input(t *inputTensor) error {
	// data may come before datatype; numbers are validated against the datatype afterwards.
	ints := true
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "name":
			t.name, err = s.str()
		case "datatype":
			t.datatype, err = s.str()
		case "shape":
			t.hasShape = true
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
			t.hasData = true
			t.leaf = -1
			err = s.data(t, 0, &ints)
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
	if t.name == nil {
		return errorf("an input has no name")
	}
	if !t.hasShape {
		return errorf("input %q has no shape", t.name)
	}
	if !t.hasData {
		return errorf("input %q has no data", t.name)
	}
	switch string(t.datatype) {
	case "FP32", "FP64", "FP16":
	case "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64":
		if !ints {
			return errorf("input %q: datatype %s holds a value that is not an integer", t.name, t.datatype)
		}
	case "BOOL":
		// true/false were read as 1/0
	case "":
		return errorf("input %q has no datatype", t.name)
	default:
		return errorf("input %q: datatype %s is not supported (use FP32, FP64, an integer type or BOOL)", t.name, t.datatype)
	}
	return nil
}

// data reads a flat or nested array of numbers (or booleans), appending to t.data and recording
// the nesting in t.dims; nested arrays must be rectangular.
func (s *scanner) data(t *inputTensor, depth int, ints *bool) error {
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
			return s.data(t, depth+1, ints)
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
			t.data = append(t.data, v)
			return nil
		default:
			v, err := s.number()
			if err != nil {
				return err
			}
			if v != math.Trunc(v) {
				*ints = false
			}
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
