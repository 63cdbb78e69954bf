package oip

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/freightcast/freightcast/internal/jsonenc"
)

// This file decodes infer requests by hand. encoding/json would reflect over []any for the
// nested numeric arrays in data, allocating for every number; here numbers go straight into
// reused float32 buffers, and names stay slices of the request body.

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

type scanner struct {
	b   []byte
	pos int
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.b) {
		switch s.b[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.b) {
		return 0
	}
	return s.b[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax(fmt.Sprintf("expected %q", c))
	}
	s.pos++
	return nil
}

func (s *scanner) syntax(what string) error {
	if s.pos >= len(s.b) {
		return errorf("invalid JSON: %s, found the end of the body", what)
	}
	return errorf("invalid JSON at byte %d: %s, found %q", s.pos, what, s.b[s.pos])
}

// str reads a JSON string and returns its raw token, quotes included, and its contents. Contents
// without escapes are a slice of the body; with escapes they are decoded into a new slice.
func (s *scanner) str() (raw, val []byte, err error) {
	if s.peek() != '"' {
		return nil, nil, s.syntax("expected a string")
	}
	start := s.pos
	s.pos++
	escaped := false
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		switch {
		case c == '"':
			s.pos++
			raw = s.b[start:s.pos]
			if !escaped {
				return raw, raw[1 : len(raw)-1], nil
			}
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, nil, errorf("invalid JSON string at byte %d: %v", start, err)
			}
			return raw, []byte(v), nil
		case c == '\\':
			escaped = true
			s.pos += 2
		case c < 0x20:
			return nil, nil, errorf("invalid JSON at byte %d: control character in string", s.pos)
		default:
			s.pos++
		}
	}
	return nil, nil, errorf("invalid JSON: unterminated string at byte %d", start)
}

// number reads a JSON number.
func (s *scanner) number() (float64, error) {
	s.skipSpace()
	start := s.pos
	for s.pos < len(s.b) {
		c := s.b[s.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.pos++
			continue
		}
		break
	}
	tok := s.b[start:s.pos]
	if len(tok) == 0 || !validNumber(tok) {
		s.pos = start
		return 0, s.syntax("expected a number")
	}
	v, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return 0, errorf("number %s at byte %d is out of range", tok, start)
	}
	return v, nil
}

// validNumber checks the JSON number grammar, which is stricter than ParseFloat's (no "+1",
// "0x1p3", ".5", "Inf").
func validNumber(b []byte) bool {
	i := 0
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.pos >= len(word) && string(s.b[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return true
	}
	return false
}

// skip reads and discards any JSON value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errorf("JSON nested deeper than %d levels", maxDepth)
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '{':
		return s.object(func(_ []byte) error { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() error { return s.skip(depth + 1) })
	case c == 't':
		if s.literal("true") {
			return nil
		}
	case c == 'f':
		if s.literal("false") {
			return nil
		}
	case c == 'n':
		if s.literal("null") {
			return nil
		}
	default:
		_, err := s.number()
		return err
	}
	return s.syntax("expected a value")
}

// object reads an object, handing each key to field, which must consume the value.
func (s *scanner) object(field func(key []byte) error) error {
	return s.sequence('{', '}', func() error {
		_, key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		return field(key)
	})
}

// array reads an array, calling elem for each element.
func (s *scanner) array(elem func() error) error { return s.sequence('[', ']', elem) }

// sequence reads open, comma-separated elements, and close.
func (s *scanner) sequence(open, close byte, elem func() error) error {
	if err := s.expect(open); err != nil {
		return err
	}
	if s.peek() == close {
		s.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case close:
			s.pos++
			return nil
		default:
			return s.syntax(fmt.Sprintf("expected ',' or '%c'", close))
		}
	}
}

// decodeInferRequest parses body into r.
func decodeInferRequest(body []byte, r *inferRequest) error {
	r.reset()
	s := &scanner{b: body}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			_, v, err := s.str()
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
			if s.peek() == 'n' && s.literal("null") {
				return nil
			}
			return s.array(func() error {
				var name []byte
				err := s.object(func(key []byte) error {
					if string(key) == "name" {
						_, v, err := s.str()
						name = v
						return err
					}
					return s.skip(1)
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
			return s.skip(1)
		}
	})
	if err != nil {
		return err
	}
	if s.peek() != 0 {
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
			_, t.name, err = s.str()
		case "datatype":
			_, t.datatype, err = s.str()
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
			err = s.skip(1)
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
			if s.literal("true") {
				v = 1
			} else if !s.literal("false") {
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
