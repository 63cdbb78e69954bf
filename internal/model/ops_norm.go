package model

// The normalizations over spatial data: InstanceNormalization, GroupNormalization and LRN.
// Statistics accumulate in float64; the variance is the population variance, as ONNX defines.

import (
	"fmt"
	"math"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "InstanceNormalization", minOpset: 6, maxOpset: maxOpsetONNX, compile: compileInstanceNorm},
		opImpl{domain: domainONNX, name: "GroupNormalization", minOpset: 18, maxOpset: maxOpsetONNX, compile: compileGroupNorm},
		opImpl{domain: domainONNX, name: "LRN", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileLRN},
	)
}

func compileInstanceNorm(n *nodeCtx) (kernel, error) {
	return compileBlockNorm(n, 0)
}

// compileGroupNorm: before opset 21 scale and bias hold one value per group, from 21 one per
// channel.
func compileGroupNorm(n *nodeCtx) (kernel, error) {
	g, err := n.attrInt("num_groups", 0)
	if err != nil {
		return nil, err
	}
	if g < 1 || g > maxElements {
		return nil, fmt.Errorf("num_groups %d", g)
	}
	return compileBlockNorm(n, int(g))
}

// compileBlockNorm normalizes blocks of consecutive channels of each image: one channel each
// (instance normalization, groups 0) or channels/groups each.
func compileBlockNorm(n *nodeCtx, groups int) (kernel, error) {
	if err := n.arity(3, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2); err != nil {
		return nil, err
	}
	eps, err := n.attrFiniteFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	if eps < 0 {
		return nil, fmt.Errorf("epsilon %v is negative", eps)
	}
	if stash, err := n.attrInt("stash_type", 1); err != nil || stash != 1 {
		return nil, unsupported("stash_type other than float")
	}
	in := n.shape(0)
	if len(in) < 2 {
		return nil, fmt.Errorf("input of shape %s has no channel axis", shapeString(in))
	}
	perGroup := groups > 0 && n.opset < 21
	for i := 1; i < 3; i++ {
		s := n.shape(i)
		want := in[1]
		if perGroup {
			want = groups
		}
		if len(s) != 1 || (s[0] >= 0 && want >= 0 && s[0] != want) {
			return nil, fmt.Errorf("input %d has shape %s; want [%d]", i, shapeString(s), want)
		}
	}
	if groups > 0 && in[1] >= 0 && in[1]%groups != 0 {
		return nil, fmt.Errorf("%d channels do not split into %d groups", in[1], groups)
	}
	n.setOutTensor(0, n.dtype(0), in)
	return &blockNormKernel{groups: groups, perGroup: perGroup, eps: float64(eps)}, nil
}

type blockNormKernel struct {
	groups   int // 0: one block per channel
	perGroup bool
	eps      float64
}

func (k *blockNormKernel) run(x *exec, in, out []*Tensor) error {
	t := in[0]
	if len(t.Shape) < 2 {
		return fmt.Errorf("input of shape %v has no channel axis", t.Shape)
	}
	ch := t.Shape[1]
	groups := k.groups
	if groups == 0 {
		groups = ch
	}
	if groups == 0 || ch%groups != 0 {
		return fmt.Errorf("%d channels do not split into %d groups", ch, groups)
	}
	// scale and bias, one per channel, in float64
	params := x.scratch(0)
	if err := params.reset(Float64, 2*ch); err != nil {
		return err
	}
	for i := range 2 {
		p := x.scratch(1 + i)
		if err := castInto(p, in[1+i], Float64); err != nil {
			return err
		}
		want := ch
		if k.perGroup {
			want = groups
		}
		if p.Len() != want {
			return fmt.Errorf("input %d has %d values, want %d", 1+i, p.Len(), want)
		}
		for c := range ch {
			v := c
			if k.perGroup {
				v = c / (ch / groups)
			}
			params.Float64[i*ch+c] = p.Float64[v]
		}
	}
	o := out[0]
	if err := o.reset(t.DType, t.Shape...); err != nil {
		return err
	}
	inner := product(t.Shape[2:])
	switch t.DType {
	case Float32:
		blockNormT(data[float32](o), data[float32](t), params.Float64, ch, ch/groups, inner, k.eps)
	case Float64:
		blockNormT(data[float64](o), data[float64](t), params.Float64, ch, ch/groups, inner, k.eps)
	}
	return nil
}

// blockNormT normalizes blocks of per channels × inner elements, then scales and shifts each
// channel (params: ch scales, then ch biases).
func blockNormT[T float32 | float64](o, x []T, params []float64, ch, per, inner int, eps float64) {
	block := per * inner
	if block == 0 {
		return
	}
	for b := range len(x) / block {
		xs, os := x[b*block:(b+1)*block], o[b*block:(b+1)*block]
		mean, inv := meanInvStd(xs, eps)
		for j := range per {
			c := (b*per + j) % ch
			s, sh := params[c]*inv, params[ch+c]
			for i, v := range xs[j*inner : (j+1)*inner] {
				os[j*inner+i] = T((float64(v)-mean)*s + sh)
			}
		}
	}
}

func compileLRN(n *nodeCtx) (kernel, error) {
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	size, err := n.attrInt("size", 0)
	if err != nil {
		return nil, err
	}
	if size < 1 || size > maxWindowAttr {
		return nil, fmt.Errorf("size %d", size)
	}
	k := &lrnKernel{size: int(size)}
	for _, a := range []struct {
		name string
		def  float32
		dst  *float64
	}{{"alpha", 1e-4, &k.alpha}, {"beta", 0.75, &k.beta}, {"bias", 1, &k.bias}} {
		v, err := n.attrFiniteFloat(a.name, a.def)
		if err != nil {
			return nil, err
		}
		*a.dst = float64(v)
	}
	in := n.shape(0)
	if len(in) < 3 {
		return nil, fmt.Errorf("input of shape %s has no spatial axis", shapeString(in))
	}
	n.setOutTensor(0, n.dtype(0), in)
	return k, nil
}

type lrnKernel struct {
	size              int
	alpha, beta, bias float64
}

// run: each element is divided by (bias + alpha/size · the sum of squares over the size
// channels around it)^beta, the window reaching (size−1)/2 channels down, rounded down, and
// the rest up.
func (k *lrnKernel) run(x *exec, in, out []*Tensor) error {
	t, o := in[0], out[0]
	if len(t.Shape) < 3 {
		return fmt.Errorf("input of shape %v has no spatial axis", t.Shape)
	}
	if err := o.reset(t.DType, t.Shape...); err != nil {
		return err
	}
	ch, inner := t.Shape[1], product(t.Shape[2:])
	down, up := (k.size-1)/2, k.size/2
	switch t.DType {
	case Float32:
		lrnT(k, data[float32](o), data[float32](t), ch, inner, down, up)
	case Float64:
		lrnT(k, data[float64](o), data[float64](t), ch, inner, down, up)
	}
	return nil
}

func lrnT[T float32 | float64](k *lrnKernel, o, x []T, ch, inner, down, up int) {
	if ch == 0 || inner == 0 {
		return
	}
	for img := range len(x) / (ch * inner) {
		xs, os := x[img*ch*inner:(img+1)*ch*inner], o[img*ch*inner:(img+1)*ch*inner]
		for c := range ch {
			lo, hi := max(0, c-down), min(ch-1, c+up)
			for i := range inner {
				var sq float64
				for cc := lo; cc <= hi; cc++ {
					v := float64(xs[cc*inner+i])
					sq += v * v
				}
				os[c*inner+i] = T(float64(xs[c*inner+i]) / math.Pow(k.bias+k.alpha/float64(k.size)*sq, k.beta))
			}
		}
	}
}
