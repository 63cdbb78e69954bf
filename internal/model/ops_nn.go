package model

// Normalizations: Softmax, LogSoftmax, Hardmax, BatchNormalization (inference),
// LayerNormalization.

import (
	"errors"
	"fmt"
	"math"
)

func init() {
	for name, kind := range map[string]softmaxKind{"Softmax": softmaxPlain, "LogSoftmax": softmaxLog, "Hardmax": softmaxHard} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 1, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileSoftmax(n, kind) }})
	}
	register(
		opImpl{domain: domainONNX, name: "BatchNormalization", minOpset: 6, maxOpset: maxOpsetONNX, compile: compileBatchNorm},
		opImpl{domain: domainONNX, name: "LayerNormalization", minOpset: 17, maxOpset: maxOpsetONNX, compile: compileLayerNorm},
	)
}

type softmaxKind uint8

const (
	softmaxPlain softmaxKind = iota
	softmaxLog
	softmaxHard
)

// compileSoftmax: from opset 13 the normalisation runs along one axis; before, the input is
// flattened at the axis into rows that are normalised whole.
func compileSoftmax(n *nodeCtx, kind softmaxKind) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	in := n.shape(0)
	def := int64(-1)
	if n.opset < 13 {
		def = 1
	}
	axisAttr, err := n.attrInt("axis", def)
	if err != nil {
		return nil, err
	}
	rank := max(len(in), 1)
	if n.opset < 13 && axisAttr == int64(len(in)) {
		rank++ // before 13, axis may equal the rank (one element per row)
	}
	axis, err := normAxis(axisAttr, rank)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, n.dtype(0), in)
	return &softmaxKernel{kind: kind, axis: axis, flatten: n.opset < 13}, nil
}

type softmaxKernel struct {
	kind    softmaxKind
	axis    int
	flatten bool
}

func (k *softmaxKernel) run(x *exec, in, out []*Tensor) error {
	t, o := in[0], out[0]
	if err := o.reset(t.DType, t.Shape...); err != nil {
		return err
	}
	s := t.Shape
	var outer, size, stride int
	switch {
	case len(s) == 0:
		outer, size, stride = 1, 1, 1
	case k.flatten:
		a := min(k.axis, len(s))
		outer, size, stride = product(s[:a]), product(s[a:]), 1
	default:
		outer, size, stride = product(s[:k.axis]), s[k.axis], product(s[k.axis+1:])
	}
	if size == 0 {
		return nil
	}
	switch t.DType {
	case Float32:
		softmaxT(k.kind, data[float32](o), data[float32](t), outer, size, stride)
	case Float64:
		softmaxT(k.kind, data[float64](o), data[float64](t), outer, size, stride)
	}
	return nil
}

func softmaxT[T float32 | float64](kind softmaxKind, o, x []T, outer, n, stride int) {
	for b := range outer {
		for s := range stride {
			base := b*n*stride + s
			m := math.Inf(-1)
			at := 0
			for i := range n {
				if v := float64(x[base+i*stride]); v > m {
					m, at = v, i
				}
			}
			switch kind {
			case softmaxHard:
				for i := range n {
					o[base+i*stride] = 0
				}
				o[base+at*stride] = 1
			case softmaxLog:
				var sum float64
				for i := range n {
					sum += math.Exp(float64(x[base+i*stride]) - m)
				}
				lse := m + math.Log(sum)
				for i := range n {
					o[base+i*stride] = T(float64(x[base+i*stride]) - lse)
				}
			default:
				var sum float64
				for i := range n {
					e := math.Exp(float64(x[base+i*stride]) - m)
					o[base+i*stride] = T(e)
					sum += e
				}
				inv := 1 / sum
				for i := range n {
					o[base+i*stride] = T(float64(o[base+i*stride]) * inv)
				}
			}
		}
	}
}

func compileBatchNorm(n *nodeCtx) (kernel, error) {
	if err := n.arity(5, 5, 1, 5); err != nil {
		return nil, err
	}
	training := false
	if n.opset >= 14 {
		mode, err := n.attrInt("training_mode", 0)
		if err != nil {
			return nil, err
		}
		training = mode != 0
	}
	for i, o := range n.node.Outputs[1:] {
		if o != "" && (!training || i >= 2) {
			return nil, unsupported("BatchNormalization's training outputs (mean, variance) before opset 14")
		}
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	for i := 1; i < 5; i++ {
		if err := n.needTypes(i, Float32, Float64); err != nil {
			return nil, err
		}
	}
	eps, err := n.attrFiniteFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	if n.opset < 7 {
		if t, err := n.attrInt("is_test", 0); err != nil || t == 0 {
			return nil, unsupported("BatchNormalization in training mode (is_test=0)")
		}
	}
	if n.opset < 9 {
		if s, err := n.attrInt("spatial", 1); err != nil || s != 1 {
			return nil, unsupported("BatchNormalization with spatial=0")
		}
	}
	in := n.shape(0)
	if len(in) < 2 {
		return nil, fmt.Errorf("input of shape %s has no channel axis", shapeString(in))
	}
	for i := 1; i < 5; i++ {
		if s := n.shape(i); len(s) != 1 || (s[0] >= 0 && in[1] >= 0 && s[0] != in[1]) {
			return nil, fmt.Errorf("input %d has shape %s; want one value per channel (%d)", i, shapeString(s), in[1])
		}
	}
	n.setOutTensor(0, n.dtype(0), in)
	if training {
		momentum, err := n.attrFiniteFloat("momentum", 0.9)
		if err != nil {
			return nil, err
		}
		if n.dtype(3) != n.dtype(0) || n.dtype(4) != n.dtype(0) {
			return nil, unsupported("BatchNormalization training with statistics of another type than the input's")
		}
		n.setOutTensor(1, n.dtype(0), n.shape(3))
		n.setOutTensor(2, n.dtype(0), n.shape(4))
		return &batchNormKernel{eps: float64(eps), training: true, momentum: float64(momentum)}, nil
	}
	return &batchNormKernel{eps: float64(eps)}, nil
}

// batchNormKernel normalizes with the given mean and variance, or in training mode with the
// batch's own (population variance) and outputs the running statistics updated by momentum.
type batchNormKernel struct {
	eps      float64
	training bool
	momentum float64
}

func (k *batchNormKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	ch := t.Shape[1]
	params := x.scratch(0)
	if err := params.reset(Float64, 2*ch); err != nil {
		return err
	}
	scale, shift := params.Float64[:ch], params.Float64[ch:2*ch]
	vals := [4][]float64{}
	for i := range vals {
		p := x.scratch(i + 1)
		if err := castInto(p, in[i+1], Float64); err != nil {
			return err
		}
		if p.Len() != ch {
			return fmt.Errorf("input %d has %d values for %d channels", i+1, p.Len(), ch)
		}
		vals[i] = p.Float64
	}
	if k.training {
		if err := k.batchStats(x, t, vals[2], vals[3], out); err != nil {
			return err
		}
	}
	for c := range ch {
		v := vals[3][c] + k.eps
		if v < 0 {
			return fmt.Errorf("var+epsilon of channel %d is %v", c, v)
		}
		s := vals[0][c] / math.Sqrt(v)
		scale[c], shift[c] = s, vals[1][c]-vals[2][c]*s
	}
	o := out[0]
	if err := o.reset(t.DType, t.Shape...); err != nil {
		return err
	}
	inner := product(t.Shape[2:])
	switch t.DType {
	case Float32:
		affineT(data[float32](o), data[float32](t), scale, shift, inner)
	case Float64:
		affineT(data[float64](o), data[float64](t), scale, shift, inner)
	}
	return nil
}

// batchStats replaces mean and variance (float64 copies of the inputs) with the batch's and
// writes the running statistics, input·momentum + batch·(1 − momentum), to outputs 1 and 2.
func (k *batchNormKernel) batchStats(x *exec, t *Tensor, mean, variance []float64, out []*Tensor) error {
	ch := t.Shape[1]
	inner := product(t.Shape[2:])
	f := x.scratch(5)
	if err := castInto(f, t, Float64); err != nil {
		return err
	}
	count := float64(t.Shape[0] * inner)
	if count == 0 {
		return fmt.Errorf("input of shape %v has no values to take statistics of", t.Shape)
	}
	for i := 1; i < min(len(out), 3); i++ {
		if err := out[i].reset(t.DType, ch); err != nil {
			return err
		}
	}
	for c := range ch {
		var sum, sq float64
		for img := range t.Shape[0] {
			for _, v := range f.Float64[(img*ch+c)*inner : (img*ch+c+1)*inner] {
				sum += v
			}
		}
		mu := sum / count
		for img := range t.Shape[0] {
			for _, v := range f.Float64[(img*ch+c)*inner : (img*ch+c+1)*inner] {
				sq += (v - mu) * (v - mu)
			}
		}
		running := [2]float64{mean[c]*k.momentum + mu*(1-k.momentum), variance[c]*k.momentum + sq/count*(1-k.momentum)}
		mean[c], variance[c] = mu, sq/count
		for i := 1; i < min(len(out), 3); i++ {
			if t.DType == Float32 {
				out[i].Float32[c] = float32(running[i-1])
			} else {
				out[i].Float64[c] = running[i-1]
			}
		}
	}
	return nil
}

// affineT computes o = x·scale[c] + shift[c] for channel c of blocks of inner elements.
func affineT[T float32 | float64](o, x []T, scale, shift []float64, inner int) {
	ch := len(scale)
	pos := 0
	for pos < len(x) {
		for c := range ch {
			a, b := T(scale[c]), T(shift[c])
			xs, os := x[pos:pos+inner], o[pos:pos+inner]
			for i, v := range xs {
				os[i] = v*a + b
			}
			pos += inner
		}
	}
}

func compileLayerNorm(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 3, 1, 3); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2); err != nil {
		return nil, err
	}
	in := n.shape(0)
	axis, err := n.axis("axis", -1, len(in))
	if err != nil {
		return nil, err
	}
	eps, err := n.attrFiniteFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	if eps < 0 {
		return nil, errors.New("epsilon is negative")
	}
	stash, err := n.attrInt("stash_type", 1)
	if err != nil {
		return nil, err
	}
	stashType, ok := dtypeOf(int32(stash))
	if !ok || (stashType != Float32 && stashType != Float64) {
		return nil, unsupported("stash_type %d", stash)
	}
	for i := 1; i < 3; i++ {
		if !n.has(i) {
			continue
		}
		if _, err := broadcastDims(n, in[axis:], n.shape(i)); err != nil || len(n.shape(i)) > len(in)-axis {
			return nil, fmt.Errorf("input %d of shape %s does not broadcast to the normalized shape %s", i, shapeString(n.shape(i)), shapeString(in[axis:]))
		}
	}
	n.setOutTensor(0, n.dtype(0), in)
	stat := make([]int, len(in))
	copy(stat, in[:axis])
	for d := axis; d < len(in); d++ {
		stat[d] = 1
	}
	for i := 1; i < n.numOut(); i++ {
		n.setOutTensor(i, stashType, stat)
	}
	return &layerNormKernel{axis: axis, eps: float64(eps), stash: stashType}, nil
}

type layerNormKernel struct {
	axis  int
	eps   float64
	stash DType
}

func (k *layerNormKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	if k.axis >= len(t.Shape) {
		return fmt.Errorf("axis %d is out of range for shape %v", k.axis, t.Shape)
	}
	rows, n := product(t.Shape[:k.axis]), product(t.Shape[k.axis:])
	// Scale and bias as exactly n values of the input's type (broadcast when given smaller).
	var params [2]*Tensor
	for i := range params {
		p := x.scratch(i)
		params[i] = p
		if len(in) <= i+1 || in[i+1] == nil {
			// No bias: zeros (a layer normalisation always has a scale).
			if err := p.reset(t.DType, n); err != nil {
				return err
			}
			if t.DType == Float32 {
				clear(p.Float32)
			} else {
				clear(p.Float64)
			}
			continue
		}
		if in[i+1].Len() == n {
			if err := castInto(p, in[i+1], t.DType); err != nil {
				return err
			}
			continue
		}
		f := x.scratch(2 + i)
		if err := castInto(f, in[i+1], t.DType); err != nil {
			return err
		}
		if err := broadcastCopy(f, p, t.Shape[k.axis:]); err != nil {
			return err
		}
	}
	o := out[0]
	if err := o.reset(t.DType, t.Shape...); err != nil {
		return err
	}
	stats := x.scratch(6)
	if err := stats.reset(Float64, 2*rows); err != nil {
		return err
	}
	mean, inv := stats.Float64[:rows], stats.Float64[rows:2*rows]
	switch t.DType {
	case Float32:
		layerNormT(data[float32](o), data[float32](t), data[float32](params[0]), data[float32](params[1]), mean, inv, n, k.eps)
	case Float64:
		layerNormT(data[float64](o), data[float64](t), data[float64](params[0]), data[float64](params[1]), mean, inv, n, k.eps)
	}
	var sb [maxRank]int
	stat := append(sb[:0], t.Shape...)
	for d := k.axis; d < len(stat); d++ {
		stat[d] = 1
	}
	for i := 1; i < len(out); i++ {
		src := mean
		if i == 2 {
			src = inv
		}
		if err := out[i].reset(k.stash, stat...); err != nil {
			return err
		}
		for r, v := range src {
			if k.stash == Float32 {
				out[i].Float32[r] = float32(v)
			} else {
				out[i].Float64[r] = v
			}
		}
	}
	return nil
}

// layerNormT normalises rows of n values: the mean and variance accumulate in float64, the
// output is computed in the input's type.
func layerNormT[T float32 | float64](o, x, scale, bias []T, mean, inv []float64, n int, eps float64) {
	if n == 0 {
		return
	}
	scale, bias = scale[:n], bias[:n]
	for r := range len(x) / n {
		row, orow := x[r*n:(r+1)*n], o[r*n:(r+1)*n]
		mu, is := meanInvStd(row, eps)
		mean[r], inv[r] = mu, is
		m, s := T(mu), T(is)
		orow = orow[:n]
		for i, v := range row {
			orow[i] = (v-m)*s*scale[i] + bias[i]
		}
	}
}

// meanInvStd is the mean of xs and 1/sqrt(population variance + eps), accumulated in float64.
func meanInvStd[T float32 | float64](xs []T, eps float64) (mean, inv float64) {
	var sum float64
	for _, v := range xs {
		sum += float64(v)
	}
	mean = sum / float64(len(xs))
	var sq float64
	for _, v := range xs {
		d := float64(v) - mean
		sq += d * d
	}
	return mean, 1 / math.Sqrt(sq/float64(len(xs))+eps)
}
