package event

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/freightcast/freightcast/internal/jsonenc"
	"github.com/freightcast/freightcast/internal/jsonscan"
)

// Kind is what a Value holds.
type Kind uint8

// The kinds of values, each for the model input datatypes it feeds.
const (
	// Number is a float64: FP32 and FP64 inputs; numeric outputs.
	Number Kind = iota
	// Integer is an int64, exact: INT64 and INT32 inputs; integer outputs (class labels).
	Integer
	// Bool is true or false: BOOL inputs and outputs.
	Bool
	// String is text: BYTES (ONNX string) inputs and outputs.
	String
)

// Value is one feature value of a typed event, or one value of a model output in a prediction
// record. Its JSON is the plain literal: a number, an integer, true or false, a string.
type Value struct {
	Kind Kind
	// Num is a Number; an Integer's value too, rounded where float64 cannot hold it; a Bool's
	// 0 or 1.
	Num float64
	// Int is an Integer's exact value.
	Int int64
	// Str is a String's text.
	Str string
}

// NumberValue, IntValue, BoolValue and StringValue make Values.
func NumberValue(f float64) Value { return Value{Kind: Number, Num: f} }
func IntValue(i int64) Value      { return Value{Kind: Integer, Num: float64(i), Int: i} }
func StringValue(s string) Value  { return Value{Kind: String, Str: s} }
func BoolValue(b bool) Value {
	if b {
		return Value{Kind: Bool, Num: 1}
	}
	return Value{Kind: Bool}
}

// AppendJSON appends v's JSON literal, a Number as encoding/json writes a float64 (12, not
// 12.0). A Number must be finite.
func (v Value) AppendJSON(dst []byte) []byte {
	switch v.Kind {
	case Integer:
		return strconv.AppendInt(dst, v.Int, 10)
	case Bool:
		return strconv.AppendBool(dst, v.Num != 0)
	case String:
		return jsonenc.AppendString(dst, v.Str)
	}
	return appendFloat(dst, v.Num)
}

// appendFeature appends v as a v2 message writes it: an integral Number as 12.0, not 12, so
// that it reads back as a Number and a message survives decoding and encoding unchanged.
func (v Value) appendFeature(dst []byte) []byte {
	n := len(dst)
	dst = v.AppendJSON(dst)
	if v.Kind == Number && !slices.ContainsFunc(dst[n:], func(c byte) bool { return c == '.' || c == 'e' }) {
		dst = append(dst, ".0"...)
	}
	return dst
}

// MarshalJSON writes the literal; a non-finite Number is an error.
func (v Value) MarshalJSON() ([]byte, error) {
	if v.Kind == Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
		return nil, fmt.Errorf("%v is not a finite number", v.Num)
	}
	return v.AppendJSON(nil), nil
}

// UnmarshalJSON reads a literal: an integer written without fraction or exponent that int64
// holds is an Integer, any other number a Number.
func (v *Value) UnmarshalJSON(data []byte) error {
	var s jsonscan.Scanner
	s.Reset(data)
	s.SkipSpace()
	got, err := scanValue(&s)
	if err != nil {
		return err
	}
	if s.SkipSpace(); !s.EOF() {
		return errors.New("data after the value")
	}
	*v = got
	return nil
}

// scanValue reads one value at s.
func scanValue(s *jsonscan.Scanner) (Value, error) {
	switch s.Peek() {
	case '"':
		str, err := s.String()
		if err != nil {
			return Value{}, err
		}
		return StringValue(string(str)), nil
	case 't', 'f':
		if s.Literal("true") {
			return BoolValue(true), nil
		}
		if s.Literal("false") {
			return BoolValue(false), nil
		}
	}
	start := s.Pos()
	f, err := s.Number()
	if err != nil {
		return Value{}, err
	}
	if i, ok := jsonscan.ExactInt(s.Text()[start:s.Pos()]); ok {
		return IntValue(i), nil
	}
	return NumberValue(f), nil
}
