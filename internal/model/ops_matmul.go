package model

// Gemm and MatMul. A float32 product by a constant matrix is a dense layer: its weights are
// packed at load for the AVX2/FMA (or Go) dense kernels of gemm.go, and an activation that
// follows can fuse into it. Every other product — a right operand computed at run time, batched
// right operands, float64 and integer types — runs the general batched kernel below.

import (
	"fmt"
	"slices"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Gemm", minOpset: 7, maxOpset: maxOpsetONNX, compile: compileGemm},
		opImpl{domain: domainONNX, name: "MatMul", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileMatMul},
	)
}

var matmulTypes = []DType{Float32, Float64, Int32, Int64, Uint32, Uint64}

func compileGemm(n *nodeCtx) (kernel, error) {
	minIn := 2
	if n.opset < 11 {
		minIn = 3
	}
	if err := n.arity(minIn, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, matmulTypes...); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2); err != nil {
		return nil, err
	}
	alpha, err := n.attrFiniteFloat("alpha", 1)
	if err != nil {
		return nil, err
	}
	beta, err := n.attrFiniteFloat("beta", 1)
	if err != nil {
		return nil, err
	}
	transA, err := n.attrInt("transA", 0)
	if err != nil {
		return nil, err
	}
	transB, err := n.attrInt("transB", 0)
	if err != nil {
		return nil, err
	}
	a, b := n.shape(0), n.shape(1)
	if len(a) != 2 || len(b) != 2 {
		return nil, fmt.Errorf("A %s and B %s must both have rank 2", shapeString(a), shapeString(b))
	}
	m, k := a[0], a[1]
	if transA != 0 {
		m, k = k, m
	}
	kb, nn := b[0], b[1]
	if transB != 0 {
		kb, nn = nn, kb
	}
	if k >= 0 && kb >= 0 && k != kb {
		return nil, fmt.Errorf("A %s and B %s (transA=%d, transB=%d) disagree on the inner dimension", shapeString(a), shapeString(b), transA, transB)
	}
	outShape := []int{m, nn}
	if n.has(2) {
		// C broadcasts to [M, N] (unidirectionally).
		if s, err := broadcastDims(n, outShape, n.shape(2)); err != nil || len(s) != 2 {
			return nil, fmt.Errorf("C of shape %s does not broadcast to [M, N] = %s", shapeString(n.shape(2)), shapeString(outShape))
		}
	}
	dt := n.dtype(0)
	n.setOutTensor(0, dt, outShape)
	if static(outShape) && k >= 0 && heavy(outShape[0], k, outShape[1]) {
		n.keepStep()
	}
	if dt == Float32 && transA == 0 && n.konst(1) != nil && (!n.has(2) || n.konst(2) != nil) {
		if bias, ok := rowBias(n.konst(2), nn, beta); ok {
			k := kb // B is a constant: its sizes are known even where A's are symbolic
			w := data[float32](n.konst(1))
			packed := make([]float32, k*nn) // packed[kk*nn+j] = alpha·B'[kk][j]
			for kk := range k {
				for j := range nn {
					if transB != 0 {
						packed[kk*nn+j] = alpha * w[j*k+kk]
					} else {
						packed[kk*nn+j] = alpha * w[kk*nn+j]
					}
				}
			}
			return &denseKernel{dense: *newDense(k, nn, packed, bias)}, nil
		}
	}
	return &gemmKernel{alpha: float64(alpha), beta: float64(beta), transA: transA != 0, transB: transB != 0, dtype: dt}, nil
}

// heavy tells a product too costly to fold at load: more than maxFoldMACs multiply-adds.
func heavy(m, k, n int) bool {
	const maxFoldMACs = 1 << 26
	return m > 0 && k > 0 && n > 0 && (m > maxFoldMACs/k || m*k > maxFoldMACs/n)
}

// rowBias turns a constant C into one bias per output column (beta applied), when it is the
// same for every row: absent, a scalar, or a row of n.
func rowBias(c *Tensor, n int, beta float32) ([]float32, bool) {
	bias := make([]float32, n)
	if c == nil {
		return bias, true
	}
	cs := data[float32](c)
	switch {
	case len(cs) == 1:
		for j := range bias {
			bias[j] = beta * cs[0]
		}
	case len(cs) == n && (len(c.Shape) == 1 || c.Shape[len(c.Shape)-1] == n):
		for j := range bias {
			bias[j] = beta * cs[j]
		}
	default:
		return nil, false
	}
	return bias, true
}

// denseKernel is a float32 product of its input's last axis by a constant matrix, plus a bias
// and an optional fused activation: Gemm with a constant B, MatMul by a constant 2-D matrix.
type denseKernel struct {
	dense
}

func (d *denseKernel) run(x *exec, in, out []*Tensor) error {
	a, o := in[0], out[0]
	rank := len(a.Shape)
	if rank == 0 || a.Shape[rank-1] != d.k {
		return fmt.Errorf("input of shape %s does not end in the %d the weights take", shapeString(a.Shape), d.k)
	}
	m := 1
	for _, v := range a.Shape[:rank-1] {
		m *= v
	}
	// The output keeps its shape from one run to the next unless the batch changes; this path
	// runs for every layer of every request, so it checks that before building a shape.
	if len(o.Shape) != rank || o.DType != Float32 || len(o.Float32) != m*d.n || !slices.Equal(o.Shape[:rank-1], a.Shape[:rank-1]) {
		var buf [maxRank]int
		shape := append(buf[:0], a.Shape...)
		shape[rank-1] = d.n
		if err := o.reset(Float32, shape...); err != nil {
			return err
		}
	}
	switch {
	case m > 0 && d.k > 0:
		d.dense.run(m, a.Float32[:m*d.k], o.Float32)
	case d.k == 0:
		// An empty inner dimension: every output is the bias (and its activation).
		od := o.Float32
		for i := range od {
			od[i] = d.bias[i%d.n]
		}
		applyActivation(d.act, d.alpha, od, od)
	}
	return nil
}

// gemmKernel is Gemm off the dense path.
type gemmKernel struct {
	alpha, beta    float64
	transA, transB bool
	dtype          DType
}

func (g *gemmKernel) run(x *exec, in, out []*Tensor) error {
	a, b := in[0], in[1]
	m, k := a.Shape[0], a.Shape[1]
	if g.transA {
		m, k = k, m
	}
	kb, n := b.Shape[0], b.Shape[1]
	if g.transB {
		kb, n = n, kb
	}
	if k != kb {
		return fmt.Errorf("A %v and B %v disagree on the inner dimension", a.Shape, b.Shape)
	}
	o := out[0]
	if err := o.reset(g.dtype, m, n); err != nil {
		return err
	}
	var c *Tensor
	if len(in) > 2 {
		c = in[2]
	}
	if c != nil {
		var buf [maxRank]int
		if s, err := runBroadcast(&buf, o.Shape, c.Shape, nil); err != nil || s[0] != m || s[1] != n || len(s) != 2 {
			return fmt.Errorf("C of shape %v does not broadcast to [%d %d]", c.Shape, m, n)
		}
	}
	gemmFns[g.dtype](g, m, k, n, a, b, c, o)
	return nil
}

var gemmFns = numeric(gemmOn[float32], gemmOn[float64], nil, nil, gemmOn[int32], gemmOn[int64], nil, nil,
	gemmOn[uint32], gemmOn[uint64])

func gemmOn[T number](g *gemmKernel, m, k, n int, a, b, c, o *Tensor) {
	gemmT(g, m, k, n, data[T](a), data[T](b), c, data[T](o))
}

func gemmT[T number](g *gemmKernel, m, k, n int, a, b []T, c *Tensor, o []T) {
	as, bs := [2]int{k, 1}, [2]int{n, 1} // strides of A'[i][kk] and B'[kk][j]
	if g.transA {
		as = [2]int{1, m}
	}
	if g.transB {
		bs = [2]int{1, k}
	}
	var cd []T
	var cs [2]int
	if c != nil {
		cd = data[T](c)
		switch len(c.Shape) {
		case 1:
			cs = [2]int{0, 1}
		case 2:
			cs = [2]int{c.Shape[1], 1}
		}
		if len(c.Shape) >= 1 && c.Shape[len(c.Shape)-1] == 1 {
			cs[1] = 0
		}
		if len(c.Shape) == 2 && c.Shape[0] == 1 {
			cs[0] = 0
		}
	}
	alpha, beta := T(g.alpha), T(g.beta)
	for i := range m {
		for j := range n {
			var s T
			for kk := range k {
				s += a[i*as[0]+kk*as[1]] * b[kk*bs[0]+j*bs[1]]
			}
			if g.alpha != 1 {
				s *= alpha
			}
			if cd != nil {
				cv := cd[i*cs[0]+j*cs[1]]
				if g.beta != 1 {
					cv *= beta
				}
				s += cv
			}
			o[i*n+j] = s
		}
	}
}

func compileMatMul(n *nodeCtx) (kernel, error) {
	if err := n.arity(2, 2, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, matmulTypes...); err != nil {
		return nil, err
	}
	if err := n.sameType(1); err != nil {
		return nil, err
	}
	a, b := n.shape(0), n.shape(1)
	shape, err := matmulShape(n, a, b)
	if err != nil {
		return nil, err
	}
	dt := n.dtype(0)
	n.setOutTensor(0, dt, shape)
	if k := a[len(a)-1]; static(shape) && k >= 0 && heavy(product(shape), k, 1) {
		n.keepStep()
	}
	if w := n.konst(1); dt == Float32 && w != nil && len(b) == 2 && len(a) >= 2 {
		return &denseKernel{dense: *newDense(b[0], b[1], data[float32](w), make([]float32, b[1]))}, nil
	}
	return &matmulKernel{dtype: dt}, nil
}

// matmulShape is numpy.matmul's output shape: 1-D operands are promoted (and the added axis
// removed again), the axes before the last two broadcast.
func matmulShape(n *nodeCtx, a, b []int) ([]int, error) {
	if len(a) == 0 || len(b) == 0 {
		return nil, fmt.Errorf("operands %s and %s: MatMul needs rank 1 or more", shapeString(a), shapeString(b))
	}
	a2, b2 := a, b
	if len(a) == 1 {
		a2 = []int{1, a[0]}
	}
	if len(b) == 1 {
		b2 = []int{b[0], 1}
	}
	k, kb := a2[len(a2)-1], b2[len(b2)-2]
	if k >= 0 && kb >= 0 && k != kb {
		return nil, fmt.Errorf("operands %s and %s disagree on the inner dimension", shapeString(a), shapeString(b))
	}
	batch, err := broadcastDims(n, a2[:len(a2)-2], b2[:len(b2)-2])
	if err != nil {
		return nil, err
	}
	shape := batch
	if len(a) > 1 {
		shape = append(shape, a2[len(a2)-2])
	}
	if len(b) > 1 {
		shape = append(shape, b2[len(b2)-1])
	}
	return shape, nil
}

// matmulKernel is numpy.matmul: batches of matrix products with broadcast batch axes.
type matmulKernel struct{ dtype DType }

func (k *matmulKernel) run(x *exec, in, out []*Tensor) error {
	a, b := in[0], in[1]
	var abuf, bbuf, obuf, batchBuf [maxRank]int
	as := append(abuf[:0], a.Shape...)
	bs := append(bbuf[:0], b.Shape...)
	if len(as) == 0 || len(bs) == 0 {
		return fmt.Errorf("operands %v and %v: MatMul needs rank 1 or more", a.Shape, b.Shape)
	}
	if len(as) == 1 {
		as = append(abuf[:0], 1, a.Shape[0])
	}
	if len(bs) == 1 {
		bs = append(bbuf[:0], b.Shape[0], 1)
	}
	m, kk, kb, n := as[len(as)-2], as[len(as)-1], bs[len(bs)-2], bs[len(bs)-1]
	if kk != kb {
		return fmt.Errorf("operands %v and %v disagree on the inner dimension", a.Shape, b.Shape)
	}
	batch, err := runBroadcast(&batchBuf, as[:len(as)-2], bs[:len(bs)-2], nil)
	if err != nil {
		return err
	}
	shape := append(obuf[:0], batch...)
	if len(a.Shape) > 1 {
		shape = append(shape, m)
	}
	if len(b.Shape) > 1 {
		shape = append(shape, n)
	}
	o := out[0]
	if err := o.reset(k.dtype, shape...); err != nil {
		return err
	}
	bc := x.broadcaster()
	bc.init(batch, as[:len(as)-2], bs[:len(bs)-2], nil)
	matmulFns[k.dtype](bc, m, kk, n, a, b, o)
	return nil
}

var matmulFns = numeric(matmulOn[float32], matmulOn[float64], nil, nil, matmulOn[int32], matmulOn[int64], nil, nil,
	matmulOn[uint32], matmulOn[uint64])

func matmulOn[T number](bc *bcast, m, k, n int, a, b, o *Tensor) {
	matmulT(bc, m, k, n, data[T](a), data[T](b), data[T](o))
}

// matmulT walks the broadcast batch (each bcast element is one matrix of each operand) and
// multiplies m×k by k×n matrices in i-k-j order, which reads both operands in memory order.
func matmulT[T number](bc *bcast, m, k, n int, a, b, o []T) {
	idx := 0
	for r := range bc.runs {
		ra, rb, _ := bc.offsets(r)
		for e := range bc.run {
			ia, ib := ra+e*bc.step[0], rb+e*bc.step[1]
			mat := o[idx*m*n : (idx+1)*m*n]
			am := a[ia*m*k : (ia+1)*m*k]
			bm := b[ib*k*n : (ib+1)*k*n]
			clear(mat)
			for i := range m {
				row := mat[i*n : (i+1)*n]
				for kk := range k {
					av := am[i*k+kk]
					for j, bv := range bm[kk*n : (kk+1)*n] {
						row[j] += av * bv
					}
				}
			}
			idx++
		}
	}
}
