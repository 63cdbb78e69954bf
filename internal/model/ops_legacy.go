package model

// The arithmetic operators as opsets 1 to 6 defined them, before numpy broadcasting (opset 7;
// 8 for the variadic ones). Add, Sub, Mul, Div and Pow took equal shapes unless broadcast=1,
// which stretches B over A with B's axes aligned to A's from axis on (by default, A's last
// axes): B [3] against A [2, 3, 4] at axis 1 is B [3, 1] in numpy's terms. Sum, Mean, Max and
// Min took inputs of one shape. PRelu's slope was one value, or one per channel (axis 1).
// consumed_inputs (opsets 1–5) was a hint for in-place memory reuse and changes no value.

import (
	"fmt"
	"slices"
)

func init() {
	for name, op := range map[string]binOp{"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 1, maxOpset: 6,
			compile: func(n *nodeCtx) (kernel, error) {
				return compileLegacyBroadcast(n, func(n *nodeCtx) (kernel, error) { return compileBinary(n, op) })
			}})
	}
	register(
		opImpl{domain: domainONNX, name: "Pow", minOpset: 1, maxOpset: 6,
			compile: func(n *nodeCtx) (kernel, error) { return compileLegacyBroadcast(n, compilePow) }},
		opImpl{domain: domainONNX, name: "PRelu", minOpset: 1, maxOpset: 6, compile: compileLegacyPRelu},
	)
	for name, op := range map[string]binOp{"Sum": opAdd, "Mean": opAdd, "Min": opMin, "Max": opMax} {
		mean := name == "Mean"
		register(opImpl{domain: domainONNX, name: name, minOpset: 1, maxOpset: 7,
			compile: func(n *nodeCtx) (kernel, error) {
				for i := 1; i < n.numIn(); i++ {
					if n.has(0) && n.has(i) && !sameDims(n.shape(0), n.shape(i)) {
						return nil, fmt.Errorf("input %d of shape %s differs from input 0's %s; %s takes one shape before opset 8",
							i, shapeString(n.shape(i)), shapeString(n.shape(0)), n.opType())
					}
				}
				return compileVariadic(n, op, mean)
			}})
	}
}

// sameDims tells shapes that may be equal: the same rank, and equal sizes where both are known.
func sameDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] >= 0 && b[i] >= 0 && a[i] != b[i] {
			return false
		}
	}
	return true
}

// compileLegacyBroadcast reads broadcast and axis and compiles the numpy-broadcasting operator
// with B's shape padded by trailing ones to line up with A from axis on.
func compileLegacyBroadcast(n *nodeCtx, compile func(*nodeCtx) (kernel, error)) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	bc, err := n.attrInt("broadcast", 0)
	if err != nil {
		return nil, err
	}
	a, b := n.shape(0), n.shape(1)
	if bc == 0 {
		if !sameDims(a, b) {
			return nil, fmt.Errorf("shapes %s and %s differ and broadcast is 0", shapeString(a), shapeString(b))
		}
		return compile(n)
	}
	axis, err := n.attrInt("axis", int64(len(a)-len(b)))
	if err != nil {
		return nil, err
	}
	if axis < 0 || axis > int64(len(a)-len(b)) {
		return nil, fmt.Errorf("axis %d does not place B of shape %s within A of shape %s", axis, shapeString(b), shapeString(a))
	}
	return compilePadded(n, len(a)-int(axis)-len(b), compile)
}

// compilePadded compiles with input 1 seen as if it had trailing more axes of size one, and
// wraps the kernel so that it sees it so at run time too.
func compilePadded(n *nodeCtx, trailing int, compile func(*nodeCtx) (kernel, error)) (kernel, error) {
	if trailing == 0 {
		return compile(n)
	}
	orig := n.in[1]
	padded := *orig
	padded.typ.shape = padOnes(orig.typ.shape, trailing)
	padded.sym = nil
	if orig.konst != nil {
		padded.konst = &Tensor{}
		padded.konst.view(orig.konst, padded.typ.shape)
	}
	n.in[1] = &padded
	k, err := compile(n)
	n.in[1] = orig
	if err != nil {
		return nil, err
	}
	return kernelFunc(func(x *exec, in, out []*Tensor) error {
		var b Tensor
		b.view(in[1], padOnes(in[1].Shape, trailing))
		return k.run(x, []*Tensor{in[0], &b}, out)
	}), nil
}

func padOnes(shape []int, trailing int) []int {
	s := slices.Clone(shape)
	for range trailing {
		s = append(s, 1)
	}
	return s
}

// compileLegacyPRelu: a slope of one value per channel (axis 1) applies along that axis.
func compileLegacyPRelu(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	x, slope := n.shape(0), n.shape(1)
	compile := func(n *nodeCtx) (kernel, error) { return compileBinary(n, opPRelu) }
	if len(slope) == 1 && len(x) > 2 && slope[0] != 1 {
		if x[1] >= 0 && slope[0] >= 0 && x[1] != slope[0] {
			return nil, fmt.Errorf("slope of shape %s is neither one value nor one per channel of X of shape %s", shapeString(slope), shapeString(x))
		}
		return compilePadded(n, len(x)-2, compile)
	}
	return compile(n)
}
