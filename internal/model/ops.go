package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/freightcast/freightcast/internal/onnxpb"
	onnx "github.com/owulveryck/onnx-go"
)

// broadcastShape applies numpy broadcasting to full shapes in which -1 is the batch.
func broadcastShape(shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := rank - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			default:
				return nil, fmt.Errorf("shapes %v cannot be broadcast together", shapesString(shapes))
			}
		}
	}
	return out, nil
}

func shapesString(shapes [][]int) string {
	s := ""
	for i, sh := range shapes {
		if i > 0 {
			s += " and "
		}
		s += fmt.Sprint(sh)
	}
	return s
}

// broadcastIndex maps every element of one output row to the element of an input row that
// feeds it. The input's row shape is right-aligned with the output's; a batched input of a lower
// rank than the output would put the batch elsewhere than axis 0, so callers refuse it.
func broadcastIndex(outRow []int, in *value, outBatched bool) ([]int32, error) {
	inRow := in.shape
	if outBatched {
		if in.batched {
			if len(in.shape) != len(outRow)+1 {
				return nil, fmt.Errorf("operand of shape %v would broadcast the batch away from axis 0", in.shape)
			}
			inRow = in.shape[1:]
		} else if len(in.shape) == len(outRow)+1 {
			if in.shape[0] != 1 {
				return nil, fmt.Errorf("constant of shape %v has a fixed size on the batch axis", in.shape)
			}
			inRow = in.shape[1:]
		}
	}
	strides := make([]int, len(outRow))
	off := len(outRow) - len(inRow)
	st := 1
	for i := len(inRow) - 1; i >= 0; i-- {
		if inRow[i] != 1 {
			strides[off+i] = st
		}
		st *= inRow[i]
	}
	idx := make([]int32, product(outRow))
	pos := make([]int, len(outRow))
	for j := range idx {
		o := 0
		for d, p := range pos {
			o += p * strides[d]
		}
		idx[j] = int32(o)
		for d := len(pos) - 1; d >= 0; d-- {
			pos[d]++
			if pos[d] < outRow[d] {
				break
			}
			pos[d] = 0
		}
	}
	return idx, nil
}

func isIdentity(idx []int32) bool {
	for i, v := range idx {
		if int(v) != i {
			return false
		}
	}
	return true
}

type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
)

func (c *compiler) binary(n *onnxpb.Node) error {
	ins, err := c.inputs(n, 2, 2)
	if err != nil {
		return err
	}
	a, b := ins[0], ins[1]
	shape, err := broadcastShape(a.shape, b.shape)
	if err != nil {
		return err
	}
	if err := checkSize("output", shape); err != nil {
		return err
	}
	batched := a.batched || b.batched
	outRow := shape
	if batched {
		if shape[0] != -1 {
			return fmt.Errorf("shapes %v and %v move the batch off axis 0", a.shape, b.shape)
		}
		outRow = shape[1:]
	}
	ia, err := broadcastIndex(outRow, a, batched)
	if err != nil {
		return err
	}
	ib, err := broadcastIndex(outRow, b, batched)
	if err != nil {
		return err
	}
	op := map[string]binOp{"Add": opAdd, "Sub": opSub, "Mul": opMul, "Div": opDiv}[n.OpType]
	return c.emit(n, shape, binaryKernel(op, a, b, ia, ib), a, b)
}

func binaryKernel(op binOp, a, b *value, ia, ib []int32) kernel {
	row := len(ia)
	strideA, strideB := 0, 0 // a constant feeds every row from the start of its data
	if a.batched {
		strideA = product(a.rowShape())
	}
	if b.batched {
		strideB = product(b.rowShape())
	}
	if isIdentity(ia) && isIdentity(ib) {
		return func(rows int, in [][]float32, out []float32) {
			for r := range rows {
				o := out[r*row : (r+1)*row]
				binaryFlat(op, o, in[0][r*strideA:r*strideA+row], in[1][r*strideB:r*strideB+row])
			}
		}
	}
	return func(rows int, in [][]float32, out []float32) {
		for r := range rows {
			binaryIndexed(op, out[r*row:(r+1)*row], in[0][r*strideA:], in[1][r*strideB:], ia, ib)
		}
	}
}

func binaryFlat(op binOp, o, a, b []float32) {
	a, b = a[:len(o)], b[:len(o)]
	switch op {
	case opAdd:
		for i := range o {
			o[i] = a[i] + b[i]
		}
	case opSub:
		for i := range o {
			o[i] = a[i] - b[i]
		}
	case opMul:
		for i := range o {
			o[i] = a[i] * b[i]
		}
	case opDiv:
		for i := range o {
			o[i] = a[i] / b[i]
		}
	}
}

func binaryIndexed(op binOp, o, a, b []float32, ia, ib []int32) {
	ia, ib = ia[:len(o)], ib[:len(o)]
	switch op {
	case opAdd:
		for i := range o {
			o[i] = a[ia[i]] + b[ib[i]]
		}
	case opSub:
		for i := range o {
			o[i] = a[ia[i]] - b[ib[i]]
		}
	case opMul:
		for i := range o {
			o[i] = a[ia[i]] * b[ib[i]]
		}
	case opDiv:
		for i := range o {
			o[i] = a[ia[i]] / b[ib[i]]
		}
	}
}

type activation uint8

const (
	actNone activation = iota
	actRelu
	actLeakyRelu
	actSigmoid
	actTanh
)

func (c *compiler) unary(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 1, 1)
	if err != nil {
		return err
	}
	act := map[string]activation{"Relu": actRelu, "LeakyRelu": actLeakyRelu, "Sigmoid": actSigmoid, "Tanh": actTanh}[n.OpType]
	alpha, err := attrFloat(op, "alpha", 0.01)
	if err != nil {
		return err
	}
	x := ins[0]
	// A dense layer whose only reader is this activation applies it itself, while its output
	// is still in cache.
	if x.batched && c.uses[n.Inputs[0]] == 1 {
		if i, ok := c.producer[x.slot]; ok && c.made[x.slot] == x {
			if d := c.p.steps[i].dense; d != nil && d.act == actNone {
				d.act, d.alpha = act, alpha
				return c.alias(n, x, x.shape)
			}
		}
	}
	size := product(x.rowShape())
	return c.emit(n, x.shape, func(rows int, in [][]float32, out []float32) {
		o := out[:rows*size]
		applyActivation(act, alpha, o, in[0][:len(o)])
	}, x)
}

func applyActivation(act activation, alpha float32, o, x []float32) {
	x = x[:len(o)]
	switch act {
	case actNone:
		copy(o, x)
	case actRelu:
		for i, v := range x {
			o[i] = max(v, 0)
		}
	case actLeakyRelu:
		for i, v := range x {
			if v < 0 {
				v *= alpha
			}
			o[i] = v
		}
	case actSigmoid:
		for i, v := range x {
			o[i] = sigmoid(v)
		}
	case actTanh:
		for i, v := range x {
			o[i] = float32(math.Tanh(float64(v)))
		}
	}
}

// sigmoid is 1/(1+e^-v) in float32 with exp32; its absolute error is below 1e-7.
func sigmoid(v float32) float32 {
	return 1 / (1 + exp32(-v))
}

// exp32 is e^x in float32 arithmetic: x = k·ln2 + r with |r| ≤ ln2/2, then a degree-6 Taylor
// polynomial for e^r (relative error about 1.2e-7 from truncation, plus a few float32
// roundings) scaled by 2^k through the exponent bits. math.Exp in float64 costs three times as
// much, and the sigmoid of a model's last layer is the hottest loop after the dense kernels.
func exp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 88.72:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0 // below the smallest normal float32; sigmoid and softmax need no subnormals
	}
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.693359375 // ln2 split so that k·ln2Hi is exact for the k that occur
		ln2Lo = -2.12194440e-4
	)
	k := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - k*ln2Hi - k*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}

func (c *compiler) gemm(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 2, 3)
	if err != nil {
		return err
	}
	a, b := ins[0], ins[1]
	var cv *value
	if len(ins) == 3 {
		cv = ins[2]
	}
	alpha, err := attrFloat(op, "alpha", 1)
	if err != nil {
		return err
	}
	beta, err := attrFloat(op, "beta", 1)
	if err != nil {
		return err
	}
	transA, err := attrInt(op, "transA", 0)
	if err != nil {
		return err
	}
	transB, err := attrInt(op, "transB", 0)
	if err != nil {
		return err
	}
	if len(a.shape) != 2 || len(b.shape) != 2 {
		return fmt.Errorf("A %v and B %v must both have rank 2", a.shape, b.shape)
	}
	if b.batched {
		return errors.New("B depends on the batch; this runtime needs B to be a constant")
	}
	if a.batched && transA != 0 {
		return errors.New("transA=1 would put the batch on axis 1")
	}
	m, k := a.shape[0], a.shape[1]
	if transA != 0 {
		m, k = k, m
	}
	kb, nn := b.shape[0], b.shape[1]
	if transB != 0 {
		kb, nn = nn, kb
	}
	if k != kb {
		return fmt.Errorf("A %v and B %v (transA=%d, transB=%d) disagree on the inner dimension", a.shape, b.shape, transA, transB)
	}
	w := make([]float32, k*nn) // w[kk*nn+j] = alpha * B'[kk][j]
	for kk := range k {
		for j := range nn {
			if transB != 0 {
				w[kk*nn+j] = alpha * b.konst[j*k+kk]
			} else {
				w[kk*nn+j] = alpha * b.konst[kk*nn+j]
			}
		}
	}
	bias := make([]float32, nn)
	if cv != nil {
		if cv.batched {
			return errors.New("C depends on the batch; this runtime needs C to be a constant")
		}
		switch size := len(cv.konst); {
		case size == 1:
			for j := range bias {
				bias[j] = beta * cv.konst[0]
			}
		case size == nn && (len(cv.shape) == 1 || cv.shape[len(cv.shape)-1] == nn):
			for j := range bias {
				bias[j] = beta * cv.konst[j]
			}
		default:
			return fmt.Errorf("C of shape %v must be a scalar or a row of %d", cv.shape, nn)
		}
	}
	d := newDense(k, nn, w, bias)
	if err := checkSize("output", []int{m, nn}); err != nil {
		return err
	}
	if !a.batched {
		if err := checkFoldWork(m, k, nn); err != nil {
			return err
		}
	}
	if a.batched {
		return c.emitDense(n, []int{-1, nn}, d, a)
	}
	at := a.konst
	if transA != 0 {
		at = make([]float32, m*k)
		for i := range m {
			for kk := range k {
				at[i*k+kk] = a.konst[kk*m+i]
			}
		}
	}
	out := &value{shape: []int{m, nn}, slot: -1, konst: make([]float32, m*nn)}
	d.run(m, at, out.konst)
	return c.define(n, out)
}

func (c *compiler) matmul(n *onnxpb.Node) error {
	ins, err := c.inputs(n, 2, 2)
	if err != nil {
		return err
	}
	a, b := ins[0], ins[1]
	if b.batched {
		return errors.New("the right operand depends on the batch; this runtime needs it to be a constant")
	}
	if len(b.shape) != 1 && len(b.shape) != 2 {
		return fmt.Errorf("the right operand has shape %v; this runtime supports rank 1 or 2", b.shape)
	}
	if len(a.shape) < 2 {
		return fmt.Errorf("the left operand has shape %v; this runtime needs rank 2 or more", a.shape)
	}
	k := a.shape[len(a.shape)-1]
	nn := 1
	if len(b.shape) == 2 {
		nn = b.shape[1]
	}
	if b.shape[0] != k {
		return fmt.Errorf("shapes %v and %v disagree on the inner dimension", a.shape, b.shape)
	}
	shape := append([]int(nil), a.shape[:len(a.shape)-1]...)
	if len(b.shape) == 2 {
		shape = append(shape, nn)
	}
	d := newDense(k, nn, b.konst, make([]float32, nn))
	if err := checkSize("output", shape); err != nil {
		return err
	}
	if !a.batched {
		if err := checkFoldWork(product(a.shape)/max(k, 1), k, nn); err != nil {
			return err
		}
	}
	if a.batched {
		return c.emitDense(n, shape, d, a)
	}
	out := &value{shape: shape, slot: -1, konst: make([]float32, product(shape))}
	d.run(product(a.shape)/k, a.konst, out.konst)
	return c.define(n, out)
}

// emitDense adds a dense step over a batched left operand; every row of it holds one or more
// vectors of length d.k.
func (c *compiler) emitDense(n *onnxpb.Node, shape []int, d *dense, a *value) error {
	perRow := product(a.shape[1:]) / d.k
	if err := c.emit(n, shape, func(rows int, in [][]float32, out []float32) {
		d.run(rows*perRow, in[0], out)
	}, a); err != nil {
		return err
	}
	c.p.steps[len(c.p.steps)-1].dense = d
	return nil
}

func (c *compiler) softmax(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 1, 1)
	if err != nil {
		return err
	}
	x := ins[0]
	def := int64(-1)
	if c.opset < 13 {
		def = 1
	}
	axisAttr, err := attrInt(op, "axis", def)
	if err != nil {
		return err
	}
	axis, err := normAxis(axisAttr, len(x.shape))
	if err != nil {
		return err
	}
	if x.batched {
		if axis == 0 {
			return errors.New("softmax over axis 0 would mix the rows of a batch")
		}
		axis--
	}
	row := x.rowShape()
	outer := product(row[:axis])
	size, stride := row[axis], product(row[axis+1:])
	if c.opset < 13 {
		// Before opset 13 Softmax flattens the input at axis and normalises whole trailing blocks.
		size, stride = product(row[axis:]), 1
	}
	return c.emit(n, x.shape, func(rows int, in [][]float32, out []float32) {
		for o := range rows * outer {
			base := o * size * stride
			for s := range stride {
				softmaxStrided(out[base+s:], in[0][base+s:], size, stride)
			}
		}
	}, x)
}

func softmaxStrided(o, x []float32, n, stride int) {
	m := float32(math.Inf(-1))
	for i := range n {
		m = max(m, x[i*stride])
	}
	var sum float64
	for i := range n {
		e := math.Exp(float64(x[i*stride] - m))
		o[i*stride] = float32(e)
		sum += e
	}
	inv := 1 / sum
	for i := range n {
		o[i*stride] = float32(float64(o[i*stride]) * inv)
	}
}

func (c *compiler) flatten(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 1, 1)
	if err != nil {
		return err
	}
	x := ins[0]
	axisAttr, err := attrInt(op, "axis", 1)
	if err != nil {
		return err
	}
	axis := int(axisAttr)
	if axis < 0 {
		axis += len(x.shape)
	}
	if axis < 0 || axis > len(x.shape) {
		return fmt.Errorf("axis %d is out of range for shape %v", axisAttr, x.shape)
	}
	if !x.batched {
		return c.alias(n, x, []int{product(x.shape[:axis]), product(x.shape[axis:])})
	}
	if axis == 0 || product(x.shape[1:axis]) != 1 {
		return fmt.Errorf("flattening shape %v at axis %d would change the batch", x.shape, axisAttr)
	}
	return c.alias(n, x, []int{-1, product(x.shape[axis:])})
}

func (c *compiler) reshape(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 2, 2)
	if err != nil {
		return err
	}
	x, s := ins[0], ins[1]
	if s.batched || s.ints == nil {
		return errors.New("the shape must be a constant INT64 tensor")
	}
	allowZero, err := attrInt(op, "allowzero", 0)
	if err != nil {
		return err
	}
	if allowZero != 0 {
		return errors.New("allowzero=1 is not supported")
	}
	target := make([]int, len(s.ints))
	infer := -1
	for i, d := range s.ints {
		switch {
		case d == 0 && i < len(x.shape):
			target[i] = x.shape[i]
		case d == 0:
			return fmt.Errorf("shape %v copies axis %d, which input %v does not have", s.ints, i, x.shape)
		case d == -1 && infer >= 0:
			return fmt.Errorf("shape %v has more than one -1", s.ints)
		case d == -1:
			infer = i
		case d < -1 || d > onnxpb.DefaultLimits.MaxTensorElements:
			return fmt.Errorf("shape %v has an invalid dimension %d", s.ints, d)
		default:
			target[i] = int(d)
		}
	}
	if x.batched {
		// The batch must stay on axis 0: either copied (0) or inferred (-1) with the rest of the
		// row fully given.
		if len(target) == 0 || (target[0] != -1 && infer != 0) {
			return fmt.Errorf("shape %v would not keep the batch on axis 0 of %v", s.ints, x.shape)
		}
		row := product(x.shape[1:])
		if infer > 0 {
			// The batch is copied (0), so the -1 is inferred within a row, as in [0, -1].
			target[infer] = 1
			known := product(target[1:])
			if known == 0 || row%known != 0 {
				return fmt.Errorf("cannot reshape rows of %v into %v", x.shape, s.ints)
			}
			target[infer] = row / known
		}
		target[0] = -1
		if product(target[1:]) != row {
			return fmt.Errorf("shape %v does not keep rows of %v intact", s.ints, x.shape)
		}
		return c.alias(n, x, target)
	}
	total := product(x.shape)
	if infer >= 0 {
		target[infer] = 1
		known := product(target)
		if known == 0 || total%known != 0 {
			return fmt.Errorf("cannot reshape %v into %v", x.shape, s.ints)
		}
		target[infer] = total / known
	}
	if product(target) != total {
		return fmt.Errorf("cannot reshape %v into %v", x.shape, s.ints)
	}
	return c.alias(n, x, target)
}

func (c *compiler) concat(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 1, 1<<16)
	if err != nil {
		return err
	}
	if _, ok := op.Attributes["axis"]; !ok {
		return errors.New("attribute axis is required")
	}
	axisAttr, err := attrInt(op, "axis", 0)
	if err != nil {
		return err
	}
	first := ins[0]
	axis, err := normAxis(axisAttr, len(first.shape))
	if err != nil {
		return err
	}
	shape := append([]int(nil), first.shape...)
	shape[axis] = 0
	for _, in := range ins {
		if in.batched != first.batched {
			return errors.New("mixes batched inputs with constants")
		}
		if len(in.shape) != len(first.shape) {
			return fmt.Errorf("inputs %v and %v differ in rank", first.shape, in.shape)
		}
		for d := range in.shape {
			if d != axis && in.shape[d] != first.shape[d] {
				return fmt.Errorf("inputs %v and %v differ off axis %d", first.shape, in.shape, axis)
			}
		}
		shape[axis] += in.shape[axis]
	}
	rowAxis := axis
	if first.batched {
		if axis == 0 {
			return errors.New("concatenating along axis 0 would change the batch")
		}
		shape[0] = -1
		rowAxis--
	}
	row := first.rowShape()
	outer := product(row[:rowAxis])
	chunks := make([]int, len(ins))
	for i, in := range ins {
		chunks[i] = product(in.rowShape()[rowAxis:])
	}
	return c.emit(n, shape, func(rows int, in [][]float32, out []float32) {
		pos := 0
		for o := range rows * outer {
			for i, ch := range chunks {
				pos += copy(out[pos:pos+ch], in[i][o*ch:(o+1)*ch])
			}
		}
	}, ins...)
}

func (c *compiler) batchNorm(n *onnxpb.Node, op onnx.Operation) error {
	ins, err := c.inputs(n, 5, 5)
	if err != nil {
		return err
	}
	eps, err := attrFloat(op, "epsilon", 1e-5)
	if err != nil {
		return err
	}
	if mode, err := attrInt(op, "training_mode", 0); err != nil || mode != 0 {
		return errors.New("training_mode is not supported")
	}
	x := ins[0]
	if len(x.shape) < 2 {
		return fmt.Errorf("input of shape %v has no channel axis", x.shape)
	}
	ch := x.shape[1]
	for i, name := range []string{"scale", "B", "mean", "var"} {
		p := ins[i+1]
		if p.batched || len(p.konst) != ch {
			return fmt.Errorf("%s must be a constant of %d values, one per channel", name, ch)
		}
	}
	scale, shift := make([]float32, ch), make([]float32, ch)
	for i := range ch {
		v := float64(ins[4].konst[i]) + float64(eps)
		if v <= 0 {
			return fmt.Errorf("var+epsilon of channel %d is %v", i, v)
		}
		s := float64(ins[1].konst[i]) / math.Sqrt(v)
		scale[i] = float32(s)
		shift[i] = float32(float64(ins[2].konst[i]) - float64(ins[3].konst[i])*s)
	}
	inner := product(x.shape[2:])
	perRow := 1
	if !x.batched {
		perRow = x.shape[0]
	}
	return c.emit(n, x.shape, func(rows int, in [][]float32, out []float32) {
		pos := 0
		for range rows * perRow {
			for c := range ch {
				a, b := scale[c], shift[c]
				o := out[pos : pos+inner]
				for i, v := range in[0][pos : pos+inner] {
					o[i] = v*a + b
				}
				pos += inner
			}
		}
	}, x)
}

// checkFoldWork refuses to fold a constant product that would keep Load busy for long: a model
// file must not be able to stall the server at start-up.
func checkFoldWork(m, k, n int) error {
	const maxMACs = 1 << 28
	if m > 0 && k > 0 && n > 0 && (m > maxMACs/k || m*k > maxMACs/n) {
		return fmt.Errorf("folding a constant %dx%d by %dx%d product would take too long", m, k, k, n)
	}
	return nil
}
