package model

// Operators over the last two axes as matrices, or along one axis: Trilu, EyeLike, Det, CumSum.

import (
	"errors"
	"fmt"
	"math"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Trilu", minOpset: 14, maxOpset: maxOpsetONNX, compile: compileTrilu},
		opImpl{domain: domainONNX, name: "EyeLike", minOpset: 9, maxOpset: maxOpsetONNX, compile: compileEyeLike},
		opImpl{domain: domainONNX, name: "Det", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileDet},
		opImpl{domain: domainONNX, name: "CumSum", minOpset: 11, maxOpset: maxOpsetONNX, compile: compileCumSum},
	)
}

// compileTrilu keeps the elements on and above (upper=1) or on and below (upper=0) the k-th
// diagonal of each matrix, zeroing the others.
func compileTrilu(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 2, 1, 1); err != nil {
		return nil, err
	}
	if n.has(1) {
		if err := n.needTypes(1, Int64); err != nil {
			return nil, err
		}
	}
	upper, err := n.attrInt("upper", 1)
	if err != nil {
		return nil, err
	}
	in := n.shape(0)
	if len(in) < 2 {
		return nil, fmt.Errorf("input of shape %s is not a stack of matrices", shapeString(in))
	}
	n.setOutTensor(0, n.dtype(0), in)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		k := int64(0)
		if len(in) > 1 && in[1] != nil {
			if in[1].Len() != 1 {
				return fmt.Errorf("k has %d values, want 1", in[1].Len())
			}
			k = in[1].Int64[0]
		}
		if err := o.copyFrom(t); err != nil {
			return err
		}
		s := t.Shape
		rows, cols := s[len(s)-2], s[len(s)-1]
		zero := x.scratch(0)
		if err := zero.reset(t.DType, 1); err != nil {
			return err
		}
		clearElems(zero)
		for m := range product(s[:len(s)-2]) {
			for i := range rows {
				for j := range cols {
					d := int64(j) - int64(i)
					if (upper != 0 && d < k) || (upper == 0 && d > k) {
						copyElems(o, (m*rows+i)*cols+j, zero, 0, 1)
					}
				}
			}
		}
		return nil
	}), nil
}

// clearElems sets every element of t to its type's zero.
func clearElems(t *Tensor) {
	clearFns[t.DType](t)
}

var clearFns = everyType(clearOf[float32], clearOf[float64], clearOf[int8], clearOf[int16], clearOf[int32],
	clearOf[int64], clearOf[uint8], clearOf[uint16], clearOf[uint32], clearOf[uint64], clearOf[bool], clearOf[string])

func clearOf[T elem](t *Tensor) { clear(data[T](t)) }

// compileEyeLike makes a matrix of the input's shape with ones on the k-th diagonal, of the
// input's type or the one dtype names.
func compileEyeLike(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	in := n.shape(0)
	if len(in) != 2 {
		return nil, fmt.Errorf("input of shape %s is not a matrix", shapeString(in))
	}
	dt := n.dtype(0)
	if n.hasAttr("dtype") {
		v, err := n.attrInt("dtype", 0)
		if err != nil {
			return nil, err
		}
		d, ok := dtypeOf(int32(v))
		if !ok {
			return nil, unsupported("dtype %d", v)
		}
		dt = d
	}
	if dt == String {
		return nil, unsupported("EyeLike of strings")
	}
	k, err := n.attrInt("k", 0)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, dt, in)
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		o := out[0]
		rows, cols := in[0].Shape[0], in[0].Shape[1]
		if err := o.reset(dt, rows, cols); err != nil {
			return err
		}
		clearElems(o)
		one, src := x.scratch(0), x.scratch(1)
		if err := src.reset(Float32, 1); err != nil {
			return err
		}
		src.Float32[0] = 1
		if err := castInto(one, src, dt); err != nil {
			return err
		}
		for i := range rows {
			if j := int64(i) + k; j >= 0 && j < int64(cols) {
				copyElems(o, i*cols+int(j), one, 0, 1)
			}
		}
		return nil
	}), nil
}

// compileDet computes the determinant of each square matrix of [..., M, M], by LU
// decomposition with partial pivoting in float64.
func compileDet(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	in := n.shape(0)
	if len(in) < 2 || (in[len(in)-1] >= 0 && in[len(in)-2] >= 0 && in[len(in)-1] != in[len(in)-2]) {
		return nil, fmt.Errorf("input of shape %s is not a stack of square matrices", shapeString(in))
	}
	n.setOutTensor(0, n.dtype(0), in[:len(in)-2])
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		s := t.Shape
		m := s[len(s)-1]
		if s[len(s)-2] != m {
			return fmt.Errorf("input of shape %v is not a stack of square matrices", s)
		}
		vals := x.scratch(0)
		if err := castInto(vals, t, Float64); err != nil {
			return err
		}
		dets := x.scratch(1)
		if err := dets.reset(Float64, s[:len(s)-2]...); err != nil {
			return err
		}
		for b := range dets.Float64 {
			dets.Float64[b] = det(vals.Float64[b*m*m:(b+1)*m*m], m)
		}
		return castInto(o, dets, t.DType)
	}), nil
}

// det is the determinant of the m×m matrix a (row-major), which it overwrites.
func det(a []float64, m int) float64 {
	d := 1.0
	for c := range m {
		p := c
		for r := c + 1; r < m; r++ {
			if math.Abs(a[r*m+c]) > math.Abs(a[p*m+c]) {
				p = r
			}
		}
		if a[p*m+c] == 0 {
			return 0
		}
		if p != c {
			for j := range m {
				a[c*m+j], a[p*m+j] = a[p*m+j], a[c*m+j]
			}
			d = -d
		}
		d *= a[c*m+c]
		for r := c + 1; r < m; r++ {
			f := a[r*m+c] / a[c*m+c]
			for j := c; j < m; j++ {
				a[r*m+j] -= f * a[c*m+j]
			}
		}
	}
	return d
}

// compileCumSum sums along an axis given as a run-time scalar; exclusive leaves each element
// out of its own sum, reverse sums from the end.
func compileCumSum(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int32, Int64, Uint32, Uint64); err != nil {
		return nil, err
	}
	if err := n.needTypes(1, Int32, Int64); err != nil {
		return nil, err
	}
	exclusive, err := n.attrInt("exclusive", 0)
	if err != nil {
		return nil, err
	}
	reverse, err := n.attrInt("reverse", 0)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), n.shape(0))
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		t, o := in[0], out[0]
		axes, _ := intValues(in[1])
		if len(axes) != 1 {
			return errors.New("axis must be one value")
		}
		axis, err := normAxis(axes[0], len(t.Shape))
		if err != nil {
			return err
		}
		if err := o.reset(t.DType, t.Shape...); err != nil {
			return err
		}
		outer, size, inner := product(t.Shape[:axis]), t.Shape[axis], product(t.Shape[axis+1:])
		cumSumFns[t.DType](o, t, outer, size, inner, exclusive != 0, reverse != 0)
		return nil
	}), nil
}

var cumSumFns = numeric(cumSumOn[float32], cumSumOn[float64], cumSumOn[int8], cumSumOn[int16], cumSumOn[int32],
	cumSumOn[int64], cumSumOn[uint8], cumSumOn[uint16], cumSumOn[uint32], cumSumOn[uint64])

func cumSumOn[T number](o, t *Tensor, outer, size, inner int, exclusive, reverse bool) {
	od, td := data[T](o), data[T](t)
	for b := range outer {
		for s := range inner {
			var sum T
			for i := range size {
				if reverse {
					i = size - 1 - i
				}
				at := (b*size+i)*inner + s
				if exclusive {
					od[at] = sum
					sum += td[at]
				} else {
					sum += td[at]
					od[at] = sum
				}
			}
		}
	}
}
