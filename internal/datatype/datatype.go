// Package datatype says what values each numeric datatype of the Open Inference Protocol can
// hold, so that a value a model input cannot take is refused where it enters, with its name,
// instead of turning into an infinity or a wrapped integer on the way to the model. Ingestion
// checks each feature against the type of the model input it feeds; the OIP decoder checks each
// element of a tensor against the datatype the request declares.
package datatype

import (
	"fmt"
	"math"
	"strconv"
)

// Bounds are the values one datatype holds.
type Bounds struct {
	// Name is the datatype's OIP name: FP32, INT8, BOOL, ...
	Name string
	// Min and Max are the least and greatest values it holds, as float64: for the
	// floating-point types the last ones that do not round to an infinity, for INT64 and
	// UINT64 the last float64 below 2^63 and 2^64.
	Min, Max float64
	// Integer is set for the integer types (and BOOL): a value with a fraction does not fit.
	Integer bool
	// Bool is set for BOOL, whose JSON values are true and false, not numbers.
	Bool bool
}

// The largest magnitudes that still round to a finite value: half an ulp past the largest finite
// value (a tie, whose even neighbour is the infinity) rounds up.
var (
	maxFP32 = math.Nextafter(math.MaxFloat32+(math.MaxFloat32-float64(math.Nextafter32(math.MaxFloat32, 0)))/2, 0)
	maxFP16 = math.Nextafter(65504+16, 0) // the largest half is 65504, its ulp 32
	maxI64  = math.Nextafter(1<<63, 0)
	maxU64  = math.Nextafter(1<<64, 0)
)

var table = map[string]Bounds{
	"BOOL":   {Name: "BOOL", Min: 0, Max: 1, Integer: true, Bool: true},
	"INT8":   {Name: "INT8", Min: math.MinInt8, Max: math.MaxInt8, Integer: true},
	"INT16":  {Name: "INT16", Min: math.MinInt16, Max: math.MaxInt16, Integer: true},
	"INT32":  {Name: "INT32", Min: math.MinInt32, Max: math.MaxInt32, Integer: true},
	"INT64":  {Name: "INT64", Min: math.MinInt64, Max: maxI64, Integer: true},
	"UINT8":  {Name: "UINT8", Min: 0, Max: math.MaxUint8, Integer: true},
	"UINT16": {Name: "UINT16", Min: 0, Max: math.MaxUint16, Integer: true},
	"UINT32": {Name: "UINT32", Min: 0, Max: math.MaxUint32, Integer: true},
	"UINT64": {Name: "UINT64", Min: 0, Max: maxU64, Integer: true},
	"FP16":   {Name: "FP16", Min: -maxFP16, Max: maxFP16},
	"FP32":   {Name: "FP32", Min: -maxFP32, Max: maxFP32},
	"FP64":   {Name: "FP64", Min: -math.MaxFloat64, Max: math.MaxFloat64},
}

// Of returns the bounds of the numeric datatype name (BYTES and unknown names have none).
func Of(name string) (Bounds, bool) {
	b, ok := table[name]
	return b, ok
}

// Holds tells whether v is a value of the type.
func (b Bounds) Holds(v float64) bool {
	return v >= b.Min && v <= b.Max && (!b.Integer || v == math.Trunc(v))
}

// Problem says why v is not a value of the type, in words an API error puts after the value
// ("1000 is beyond INT8's -128 to 127"); "" when it is one.
func (b Bounds) Problem(v float64) string {
	switch {
	case b.Holds(v):
		return ""
	case b.Bool:
		return "BOOL holds true or false"
	case b.Integer && v >= b.Min && v <= b.Max:
		return "not an integer, which " + b.Name + " holds"
	}
	return "beyond " + b.rangeText()
}

func (b Bounds) rangeText() string {
	if b.Integer {
		return fmt.Sprintf("%s's %d to %s", b.Name, int64(b.Min), intMax(b))
	}
	largest := map[string]string{"FP16": "65504", "FP32": "3.4028235e+38", "FP64": "1.7976931348623157e+308"}[b.Name]
	return fmt.Sprintf("the range of %s (±%s)", b.Name, largest)
}

// intMax writes an integer type's largest value exactly, which float64 cannot for the 64-bit ones.
func intMax(b Bounds) string {
	switch b.Name {
	case "INT64":
		return strconv.FormatInt(math.MaxInt64, 10)
	case "UINT64":
		return strconv.FormatUint(math.MaxUint64, 10)
	}
	return strconv.FormatInt(int64(b.Max), 10)
}
