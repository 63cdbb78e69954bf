package model

// dense computes out = act(a·W + bias) for m vectors a of length k, W being k×n. The weights are
// repacked at load so the inner loop walks memory in order: for every block of four output
// columns, the four weights of each input position sit side by side. Two vectors are processed
// per pass over the weights, with eight independent accumulators to keep the floating-point
// units busy.
type dense struct {
	k, n int
	// packed16 is W in blocks of sixteen columns, [n/16][k][16], for the AVX2 kernels; set only
	// when n is a multiple of 16 and the CPU has AVX2 and FMA.
	packed16 []float32
	// dot selects the AVX2 kernel for single-output layers whose width is a multiple of 8.
	dot    bool
	packed []float32 // [n/4 blocks][k][4], zero-padded past n
	wt     []float32 // W transposed, [n][k], for the narrow path (n < 4)
	bias   []float32 // n, then zero-padded to the block size
	act    activation
	alpha  float32
}

// newDense takes W row-major as k×n.
func newDense(k, n int, w, bias []float32) *dense {
	d := &dense{k: k, n: n}
	blocks := (n + 3) / 4
	d.packed = make([]float32, blocks*k*4)
	d.wt = make([]float32, n*k)
	for kk := range k {
		for j := range n {
			d.packed[(j/4)*k*4+kk*4+j%4] = w[kk*n+j]
			d.wt[j*k+kk] = w[kk*n+j]
		}
	}
	d.bias = make([]float32, max(blocks*4, n))
	copy(d.bias, bias)
	if useAVX2 && n%16 == 0 && k > 0 {
		d.packed16 = make([]float32, n*k)
		for kk := range k {
			for j := range n {
				d.packed16[(j/16)*k*16+kk*16+j%16] = w[kk*n+j]
			}
		}
	}
	d.dot = useAVX2 && n == 1 && k > 0 && k%8 == 0
	return d
}

func (d *dense) run(m int, a, out []float32) {
	if d.packed16 != nil {
		d.runAVX2(m, a, out)
		return
	}
	k, n := d.k, d.n
	start := 0
	if d.dot {
		_ = a[m*k-1]
		_ = out[m-1] // n == 1
		for ; start+4 <= m; start += 4 {
			dot4x1(&a[start*k], k, &d.wt[0], k, &d.bias[0], &out[start])
		}
		for ; start < m; start++ {
			dot1x1(&a[start*k], &d.wt[0], k, &d.bias[0], &out[start])
		}
	}
	for r := start; r < m; r += 2 {
		a0 := a[r*k : r*k+k]
		a1 := a0 // an odd last vector is computed twice and stored once
		rows := 1
		if r+1 < m {
			a1 = a[(r+1)*k : (r+2)*k]
			rows = 2
		}
		o := out[r*n : (r+rows)*n]
		if n < 4 {
			d.narrow(a0, a1, o, rows)
		} else {
			d.blocks(a0, a1, o, rows)
		}
	}
	if d.act != actNone {
		o := out[:m*n]
		applyActivation(d.act, d.alpha, o, o)
	}
}

func (d *dense) blocks(a0, a1, o []float32, rows int) {
	k, n := d.k, d.n
	a1 = a1[:len(a0)]
	for jb := 0; jb*4 < n; jb++ {
		w := d.packed[jb*k*4 : (jb+1)*k*4]
		w = w[:4*len(a0)]
		b := d.bias[jb*4 : jb*4+4 : jb*4+4]
		s00, s01, s02, s03 := b[0], b[1], b[2], b[3]
		s10, s11, s12, s13 := s00, s01, s02, s03
		for i, x0 := range a0 {
			x1 := a1[i]
			ww := w[4*i : 4*i+4 : 4*i+4]
			w0, w1, w2, w3 := ww[0], ww[1], ww[2], ww[3]
			s00 += x0 * w0
			s01 += x0 * w1
			s02 += x0 * w2
			s03 += x0 * w3
			s10 += x1 * w0
			s11 += x1 * w1
			s12 += x1 * w2
			s13 += x1 * w3
		}
		j := jb * 4
		if j+4 <= n {
			r0 := o[j : j+4 : j+4]
			r0[0], r0[1], r0[2], r0[3] = s00, s01, s02, s03
			if rows == 2 {
				r1 := o[n+j : n+j+4 : n+j+4]
				r1[0], r1[1], r1[2], r1[3] = s10, s11, s12, s13
			}
			continue
		}
		res := [2][4]float32{{s00, s01, s02, s03}, {s10, s11, s12, s13}}
		for r := range rows {
			copy(o[r*n+j:r*n+n], res[r][:n-j])
		}
	}
}

// narrow serves layers with fewer than four outputs (a model's last layer, typically): each
// output is a dot product, split over four partial sums per vector.
func (d *dense) narrow(a0, a1, o []float32, rows int) {
	k, n := d.k, d.n
	a1 = a1[:len(a0)]
	for j := range n {
		w := d.wt[j*k : j*k+k]
		w = w[:len(a0)]
		var p0, p1, p2, p3, q0, q1, q2, q3 float32
		i := 0
		for ; i+4 <= len(w); i += 4 {
			ww := w[i : i+4 : i+4]
			x := a0[i : i+4 : i+4]
			y := a1[i : i+4 : i+4]
			p0 += x[0] * ww[0]
			p1 += x[1] * ww[1]
			p2 += x[2] * ww[2]
			p3 += x[3] * ww[3]
			q0 += y[0] * ww[0]
			q1 += y[1] * ww[1]
			q2 += y[2] * ww[2]
			q3 += y[3] * ww[3]
		}
		for ; i < len(w); i++ {
			p0 += a0[i] * w[i]
			q0 += a1[i] * w[i]
		}
		o[j] = d.bias[j] + ((p0 + p1) + (p2 + p3))
		if rows == 2 {
			o[n+j] = d.bias[j] + ((q0 + q1) + (q2 + q3))
		}
	}
}

// runAVX2 computes four vectors per pass over the weights, sixteen outputs at a time, and
// applies ReLU in the kernel; other activations run over the finished rows.
func (d *dense) runAVX2(m int, a, out []float32) {
	k, n := d.k, d.n
	_ = a[m*k-1]
	_ = out[m*n-1] // the kernels write rows 0..m-1 in full
	relu := 0
	if d.act == actRelu {
		relu = 1
	}
	r := 0
	for ; r+4 <= m; r += 4 {
		for jb := 0; jb < n; jb += 16 {
			gemm4x16(&a[r*k], k, &d.packed16[jb*k], k, &d.bias[jb], &out[r*n+jb], n, relu)
		}
	}
	for ; r < m; r++ {
		for jb := 0; jb < n; jb += 16 {
			gemm1x16(&a[r*k], &d.packed16[jb*k], k, &d.bias[jb], &out[r*n+jb], relu)
		}
	}
	if d.act != actNone && d.act != actRelu {
		o := out[:m*n]
		applyActivation(d.act, d.alpha, o, o)
	}
}
