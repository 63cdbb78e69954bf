package datatype

import (
	"math"
	"testing"
)

func TestBounds(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		datatype string
		holds    []float64
		refuses  map[float64]string
	}{
		"FP32": {datatype: "FP32",
			holds: []float64{0, -1.5, math.MaxFloat32, -math.MaxFloat32, 3.4028235e38, 3.40282356e38, 1e-50},
			refuses: map[float64]string{
				1e300:   "beyond the range of FP32 (±3.4028235e+38)",
				3.5e38:  "beyond the range of FP32 (±3.4028235e+38)",
				-3.5e38: "beyond the range of FP32 (±3.4028235e+38)",
				// Half an ulp past the largest float32 rounds to infinity.
				3.4028235677973366e38: "beyond the range of FP32 (±3.4028235e+38)",
			}},
		"FP16": {datatype: "FP16", holds: []float64{65504, 65519.99, -65504},
			refuses: map[float64]string{65520: "beyond the range of FP16 (±65504)"}},
		"FP64": {datatype: "FP64", holds: []float64{1e300, -math.MaxFloat64}},
		"INT8": {datatype: "INT8", holds: []float64{-128, 127, 0},
			refuses: map[float64]string{1000: "beyond INT8's -128 to 127", -129: "beyond INT8's -128 to 127",
				1.5: "not an integer, which INT8 holds"}},
		"UINT8": {datatype: "UINT8", holds: []float64{0, 255},
			refuses: map[float64]string{-1: "beyond UINT8's 0 to 255", 256: "beyond UINT8's 0 to 255"}},
		"INT64": {datatype: "INT64", holds: []float64{-1 << 63, math.Nextafter(1<<63, 0)},
			refuses: map[float64]string{1 << 63: "beyond INT64's -9223372036854775808 to 9223372036854775807"}},
		"UINT64": {datatype: "UINT64", holds: []float64{0, math.Nextafter(1<<64, 0)},
			refuses: map[float64]string{1 << 64: "beyond UINT64's 0 to 18446744073709551615"}},
		"BOOL": {datatype: "BOOL", holds: []float64{0, 1},
			refuses: map[float64]string{5: "BOOL holds true or false", 0.5: "BOOL holds true or false"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, ok := Of(c.datatype)
			if !ok {
				t.Fatalf("no bounds for %s", c.datatype)
			}
			for _, v := range c.holds {
				if p := b.Problem(v); p != "" {
					t.Errorf("%s refuses %v: %s", c.datatype, v, p)
				}
			}
			for v, want := range c.refuses {
				if got := b.Problem(v); got != want {
					t.Errorf("%s, %v: got %q, want %q", c.datatype, v, got, want)
				}
			}
		})
	}
	if _, ok := Of("BYTES"); ok {
		t.Error("BYTES has numeric bounds")
	}
}

// The bounds of the floating-point types are exactly where the conversion starts to overflow.
func TestFloatBoundsAreWhereConversionOverflows(t *testing.T) {
	t.Parallel()
	b, _ := Of("FP32")
	for _, v := range []float64{b.Max, math.Nextafter(b.Max, math.Inf(1)), b.Min, math.Nextafter(b.Min, math.Inf(-1))} {
		if finite := !math.IsInf(float64(float32(v)), 0); finite != b.Holds(v) {
			t.Errorf("FP32 %v: float32 finite %v, Holds %v", v, finite, b.Holds(v))
		}
	}
}
