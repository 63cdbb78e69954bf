package autoscale

import (
	"strconv"
)

// text builds a Reason with appends instead of fmt, so that a warm Recommend call does not
// allocate; the methods chain to keep each reason on one readable line.
type text struct{ b []byte }

func (t *text) reset() *text { t.b = t.b[:0]; return t }

func (t *text) s(s string) *text { t.b = append(t.b, s...); return t }

func (t *text) i(n int64) *text { t.b = strconv.AppendInt(t.b, n, 10); return t }

// n writes a replica count: "1 replica", "3 replicas".
func (t *text) n(replicas int32) *text {
	t.i(int64(replicas)).s(" replica")
	if replicas != 1 {
		t.s("s")
	}
	return t
}

// f writes x with digits significant digits, all of them when -1, and no exponent above 1000,
// where a measured rate reads better whole: 0.1, 19.9, 12345.
func (t *text) f(x float64, digits int) *text {
	if x >= 1000 {
		t.b = strconv.AppendFloat(t.b, x, 'f', 0, 64)
	} else {
		t.b = strconv.AppendFloat(t.b, x, 'g', digits, 64)
	}
	return t
}

// readFailure says why the depth of in is unknown.
func (t *text) readFailure(in Input) *text {
	if in.LagErr != nil {
		return t.s(in.LagErr.Error())
	}
	return t.s("queue depth ").i(in.Lag).s(" is negative")
}

// String returns the text, reusing *last when it says the same, which the compiler checks without
// allocating; a pool in a steady state then explains itself for free.
func (t *text) String(last *string) string {
	if string(t.b) != *last {
		*last = string(t.b)
	}
	return *last
}
