package model

// Conv and ConvTranspose, as im2col (col2im) around a matrix product. With constant float32
// weights — every exported model — the product is gemm.go's dense kernel, the weights packed
// at load: each output position's patch is a row, the output channels of a group its columns.
// Weights computed at run time, and float64, take a plain dot-product loop over the same rows.

import (
	"fmt"
)

func init() {
	register(
		opImpl{domain: domainONNX, name: "Conv", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileConv},
		opImpl{domain: domainONNX, name: "ConvTranspose", minOpset: 1, maxOpset: maxOpsetONNX, compile: compileConvTranspose},
	)
}

// convChunk bounds the patch rows built at once (elements), so that the im2col buffer stays in
// cache and its size does not grow with the image.
const convChunk = 1 << 15

// convParams are what Conv and ConvTranspose read alike: the window, the group count, the
// weights' shape and the bias.
type convParams struct {
	win    *window
	group  int
	dtype  DType
	wShape []int // [M, C/group, k...] for Conv, [C, M/group, k...] for ConvTranspose
}

func readConv(n *nodeCtx) (*convParams, error) {
	if err := n.arity(2, 3, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2); err != nil {
		return nil, err
	}
	in, err := spatialInput(n)
	if err != nil {
		return nil, err
	}
	ws := n.shape(1)
	if len(ws) != len(in) {
		return nil, fmt.Errorf("weights of shape %s do not have the input's rank %d", shapeString(ws), len(in))
	}
	win, err := readWindow(n, len(in)-2, false)
	if err != nil {
		return nil, err
	}
	if win.kernel != nil {
		for d, k := range win.kernel {
			if ws[2+d] >= 0 && ws[2+d] != k {
				return nil, fmt.Errorf("kernel_shape %v disagrees with the weights' shape %s", win.kernel, shapeString(ws))
			}
		}
	}
	group, err := n.attrInt("group", 1)
	if err != nil {
		return nil, err
	}
	if group < 1 || group > maxWindowAttr {
		return nil, fmt.Errorf("group %d", group)
	}
	if n.has(2) && len(n.shape(2)) != 1 {
		return nil, fmt.Errorf("bias of shape %s is not a vector", shapeString(n.shape(2)))
	}
	return &convParams{win: win, group: int(group), dtype: n.dtype(0), wShape: ws}, nil
}

// operands checks a run's input, weights and bias against each other; outCh is the output's
// channel count.
func (p *convParams) operands(in []*Tensor, transposed bool) (xt, w, b *Tensor, outCh int, err error) {
	xt, w = in[0], in[1]
	if len(in) > 2 {
		b = in[2]
	}
	if len(xt.Shape) != 2+p.win.rank || len(w.Shape) != 2+p.win.rank {
		return nil, nil, nil, 0, fmt.Errorf("input %v and weights %v must both have rank %d", xt.Shape, w.Shape, 2+p.win.rank)
	}
	if w.Shape[0]%p.group != 0 {
		return nil, nil, nil, 0, fmt.Errorf("weights %v do not split into %d groups", w.Shape, p.group)
	}
	inCh, outCh := w.Shape[1]*p.group, w.Shape[0]
	if transposed {
		inCh, outCh = w.Shape[0], w.Shape[1]*p.group
	}
	if p.win.kernel != nil {
		for d, k := range p.win.kernel {
			if w.Shape[2+d] != k {
				return nil, nil, nil, 0, fmt.Errorf("weights %v disagree with kernel_shape %v", w.Shape, p.win.kernel)
			}
		}
	}
	if xt.Shape[1] != inCh {
		return nil, nil, nil, 0, fmt.Errorf("input %v has %d channels, the weights %v take %d", xt.Shape, xt.Shape[1], w.Shape, inCh)
	}
	if b != nil && (len(b.Shape) != 1 || b.Shape[0] != outCh) {
		return nil, nil, nil, 0, fmt.Errorf("bias %v, want [%d]", b.Shape, outCh)
	}
	return xt, w, b, outCh, nil
}

// resetOutput sizes a windowed operator's output: [N, channels, g.out...].
func resetOutput(x *exec, o *Tensor, dt DType, n, channels, rank int, g *geometry) error {
	shape := append(x.shapeBuf()[:0], n, channels)
	shape = append(shape, g.out[:rank]...)
	return o.reset(dt, shape...)
}

func compileConv(n *nodeCtx) (kernel, error) {
	p, err := readConv(n)
	if err != nil {
		return nil, err
	}
	in, ws := n.shape(0), p.wShape
	if ws[0] >= 0 && ws[0]%p.group != 0 {
		return nil, fmt.Errorf("%d output channels do not split into %d groups", ws[0], p.group)
	}
	if in[1] >= 0 && ws[1] >= 0 && in[1] != ws[1]*p.group {
		return nil, fmt.Errorf("input of shape %s has %d channels; weights %s with group %d take %d", shapeString(in), in[1], shapeString(ws), p.group, ws[1]*p.group)
	}
	if n.has(2) && n.shape(2)[0] >= 0 && ws[0] >= 0 && n.shape(2)[0] != ws[0] {
		return nil, fmt.Errorf("bias of shape %s for %d output channels", shapeString(n.shape(2)), ws[0])
	}
	out, err := p.win.outShape(n, in, ws[0], ws[2:])
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, p.dtype, out)
	k := &convKernel{convParams: *p}
	if static(out) && static(ws) && heavy(product(out)/max(ws[0], 1), product(ws[1:]), ws[0]) || !static(out) {
		n.keepStep()
	}
	wc, bc := n.konst(1), n.konst(2)
	if p.dtype == Float32 && wc != nil && (!n.has(2) || bc != nil) && wc.Len() > 0 {
		k.dense = packConvWeights(wc, bc, p.group)
	}
	return k, nil
}

// packConvWeights makes one dense kernel per group: rows of the patch (channel, kernel
// position) by the group's output channels, with their biases.
func packConvWeights(w, b *Tensor, group int) []*dense {
	m, kk := w.Shape[0], product(w.Shape[1:])
	mg := m / group
	wd := data[float32](w)
	ds := make([]*dense, group)
	packed := make([]float32, kk*mg)
	bias := make([]float32, mg)
	for g := range group {
		for j := range mg {
			for r := range kk {
				packed[r*mg+j] = wd[(g*mg+j)*kk+r]
			}
			bias[j] = 0
			if b != nil {
				bias[j] = data[float32](b)[g*mg+j]
			}
		}
		ds[g] = newDense(kk, mg, packed, bias)
	}
	return ds
}

type convKernel struct {
	convParams
	dense []*dense // per group, when the weights are constant float32
}

func (k *convKernel) run(x *exec, in, out []*Tensor) error {
	xt, w, b, m, err := k.operands(in, false)
	if err != nil {
		return err
	}
	var geo geometry
	g := &geo
	if err := k.win.resolve(g, xt.Shape[2:], w.Shape[2:]); err != nil {
		return err
	}
	o := out[0]
	if err := resetOutput(x, o, xt.DType, xt.Shape[0], m, k.win.rank, g); err != nil {
		return err
	}
	switch xt.DType {
	case Float32:
		return convT[float32](x, k, g, xt, w, b, o, k.dense)
	case Float64:
		return convT[float64](x, k, g, xt, w, b, o, nil)
	}
	return nil
}

// convT: for each image and group, patches of the input become rows (im2col), a chunk at a
// time; each row times the group's weights gives one output position of every output channel.
func convT[T float32 | float64](x *exec, k *convKernel, g *geometry, xt, w, b, o *Tensor, dense []*dense) error {
	rank := k.win.rank
	nImg, m, cg := xt.Shape[0], w.Shape[0], w.Shape[1]
	mg := m / k.group
	kvol := product(g.kernel[:rank])
	kk := cg * kvol
	inVol, outVol := product(g.in[:rank]), product(g.out[:rank])
	if kk == 0 || outVol == 0 || nImg == 0 || m == 0 {
		clear(data[T](o))
		if b != nil && outVol > 0 {
			addBias(data[T](o), data[T](b), outVol)
		}
		return nil
	}
	rows := max(1, min(outVol, convChunk/kk))
	cols, prods, cols32, prods32, err := productBuffers[T](x, xt.DType, rows*kk, rows*mg, dense != nil)
	if err != nil {
		return err
	}
	xd, wd, od := data[T](xt), data[T](w), data[T](o)
	var bd []T
	if b != nil {
		bd = data[T](b)
	}
	p := newPatcher(k.win, g.out[:rank], g.in[:rank], g.kernel[:rank], g.padBegin[:rank])
	pointwise := kvol == 1 && inVol == outVol
	for d := range rank {
		pointwise = pointwise && g.padBegin[d] == 0 && k.win.strides[d] == 1
	}

	for img := range nImg {
		for grp := range k.group {
			src := xd[(img*k.group+grp)*cg*inVol:][:cg*inVol]
			dst := od[(img*m+grp*mg)*outVol:][:mg*outVol]
			for p0 := 0; p0 < outVol; p0 += rows {
				r := min(rows, outVol-p0)
				if pointwise {
					// A 1×1 kernel over the unpadded input at stride 1: the patches are the
					// input transposed, channels last.
					for c := range cg {
						for i, v := range src[c*inVol+p0 : c*inVol+p0+r] {
							cols[i*kk+c] = v
						}
					}
				} else if rank == 2 {
					for i := range r {
						patch2D(&p, cols[i*kk:(i+1)*kk], src, cg, inVol, p0+i)
					}
				} else {
					for i := range r {
						walkPatch(&p, cols[i*kk:(i+1)*kk], src, cg, inVol, p0+i, false)
					}
				}
				if dense != nil {
					dense[grp].run(r, cols32[:r*kk], prods32[:r*mg])
				} else {
					wg := wd[grp*mg*kk:][:mg*kk]
					for i := range r {
						row := cols[i*kk : (i+1)*kk]
						for j := range mg {
							var s T
							for q, v := range wg[j*kk : (j+1)*kk] {
								s += v * row[q]
							}
							if bd != nil {
								s += bd[grp*mg+j]
							}
							prods[i*mg+j] = s
						}
					}
				}
				for i := range r {
					for j := range mg {
						dst[j*outVol+p0+i] = prods[i*mg+j]
					}
				}
			}
		}
	}
	return nil
}

// productBuffers are a chunk's operand and product rows, in scratch 0 and 1; as []float32 too
// for the dense kernel when asFloat32.
func productBuffers[T float32 | float64](x *exec, dt DType, nA, nP int, asFloat32 bool) (a, p []T, a32, p32 []float32, err error) {
	at, pt := x.scratch(0), x.scratch(1)
	if err = at.reset(dt, nA); err == nil {
		err = pt.reset(dt, nP)
	}
	if err != nil {
		return nil, nil, nil, nil, err
	}
	a, p = data[T](at), data[T](pt)
	if asFloat32 {
		a32, p32 = any(a).([]float32), any(p).([]float32)
	}
	return a, p, a32, p32, nil
}

// addBias adds b[c] to every element of channel c (blocks of inner elements, channels cycling).
func addBias[T float32 | float64](o, b []T, inner int) {
	for i := range o {
		o[i] += b[(i/inner)%len(b)]
	}
}

// patcher walks the window of one position of a grid over an image: for every channel and
// kernel position, the image element under it, or none in the padding. Conv gathers patches
// of the input (the grid is the output); ConvTranspose scatters them into the output (the grid
// is the input).
type patcher struct {
	rank                     int
	grid, img, kernel        []int
	strides, dilations, pads []int
	imgStride                [maxRank]int
}

func newPatcher(w *window, grid, img, kernel, pads []int) patcher {
	p := patcher{rank: w.rank, grid: grid, img: img, kernel: kernel, strides: w.strides, dilations: w.dilations, pads: pads}
	s := 1
	for d := w.rank - 1; d >= 0; d-- {
		p.imgStride[d] = s
		s *= img[d]
	}
	return p
}

// walkPatch gathers (row[i] = image element, 0 in the padding) or, with scatter, adds the row
// into the image (image element += row[i], nothing in the padding) for grid position pos; row
// holds channels × kernel positions, channel-major, each channel's image imgVol long.
func walkPatch[T float32 | float64](p *patcher, row, image []T, channels, imgVol, pos int, scatter bool) {
	rank := p.rank
	var base, kidx [maxRank]int
	for d := rank - 1; d >= 0; d-- {
		base[d] = (pos%p.grid[d])*p.strides[d] - p.pads[d]
		pos /= p.grid[d]
	}
	last := rank - 1
	kl, dl, bl, nl := p.kernel[last], p.dilations[last], base[last], p.img[last]
	// Most windows lie wholly inside the image along the last axis: their lines are copied
	// (or added) without a bounds test per element.
	interior := bl >= 0 && bl+(kl-1)*dl < nl
	i := 0
	for c := range channels {
		img := image[c*imgVol : (c+1)*imgVol]
		kidx = [maxRank]int{}
		for {
			// The outer kernel axes select one line of the image, or none in the padding.
			off, inside := 0, true
			for d := range last {
				at := base[d] + kidx[d]*p.dilations[d]
				if at < 0 || at >= p.img[d] {
					inside = false
					break
				}
				off += at * p.imgStride[d]
			}
			seg := row[i : i+kl]
			switch {
			case !inside && !scatter:
				clear(seg)
			case !inside:
			case interior && dl == 1 && !scatter:
				copy(seg, img[off+bl:off+bl+kl])
			case interior && dl == 1:
				line := img[off+bl : off+bl+kl]
				for j, v := range seg {
					line[j] += v
				}
			case scatter:
				for j, v := range seg {
					if at := bl + j*dl; at >= 0 && at < nl {
						img[off+at] += v
					}
				}
			default:
				for j := range seg {
					if at := bl + j*dl; at >= 0 && at < nl {
						seg[j] = img[off+at]
					} else {
						seg[j] = 0
					}
				}
			}
			i += kl
			d := last - 1
			for ; d >= 0; d-- {
				kidx[d]++
				if kidx[d] < p.kernel[d] {
					break
				}
				kidx[d] = 0
			}
			if d < 0 {
				break
			}
		}
	}
}

func compileConvTranspose(n *nodeCtx) (kernel, error) {
	p, err := readConv(n)
	if err != nil {
		return nil, err
	}
	rank := p.win.rank
	k := &convTransposeKernel{convParams: *p}
	if k.outPadding, err = windowInts(n, "output_padding", rank, 0); err != nil {
		return nil, err
	}
	if v, ok, err := n.attrInts("output_shape"); err != nil {
		return nil, err
	} else if ok {
		if len(v) == rank+2 {
			v = v[2:] // the whole shape, as some exporters write it
		}
		if len(v) != rank {
			return nil, fmt.Errorf("attribute output_shape has %d values for %d spatial axes", len(v), rank)
		}
		k.outShape = make([]int, rank)
		for d, s := range v {
			if s < 0 || s > maxWindowAttr {
				return nil, fmt.Errorf("attribute output_shape has value %d", s)
			}
			k.outShape[d] = int(s)
		}
	}
	k.explicitPads = n.hasAttr("pads")
	for d, op := range k.outPadding {
		if op >= max(p.win.strides[d], p.win.dilations[d]) {
			return nil, fmt.Errorf("output_padding %v must be less than the stride or the dilation", k.outPadding)
		}
	}
	in, ws := n.shape(0), p.wShape
	if in[1] >= 0 && ws[0] >= 0 && in[1] != ws[0] {
		return nil, fmt.Errorf("input of shape %s has %d channels; weights %s take %d", shapeString(in), in[1], shapeString(ws), ws[0])
	}
	if ws[0] >= 0 && ws[0]%p.group != 0 {
		return nil, fmt.Errorf("%d input channels do not split into %d groups", ws[0], p.group)
	}
	m := -1
	if ws[1] >= 0 {
		m = ws[1] * p.group
	}
	out := make([]int, 2+rank)
	out[0], out[1] = in[0], m
	if m < 0 {
		out[1] = n.sym()
	}
	if static(in[2:]) && static(ws[2:]) {
		var g geometry
		if err := k.resolve(&g, in[2:], ws[2:]); err != nil {
			return nil, err
		}
		copy(out[2:], g.out[:rank])
	} else {
		for d := range rank {
			out[2+d] = n.sym()
		}
	}
	n.setOutTensor(0, p.dtype, out)
	n.keepStep()
	if wc, bc := n.konst(1), n.konst(2); p.dtype == Float32 && wc != nil && wc.Len() > 0 {
		k.dense = packConvTransposeWeights(wc, p.group)
		k.bias = bc
	}
	return k, nil
}

// windowInts reads an ints attribute of one value per spatial axis, each 0 to maxWindowAttr.
func windowInts(n *nodeCtx, name string, rank, def int) ([]int, error) {
	out := make([]int, rank)
	v, ok, err := n.attrInts(name)
	if err != nil || !ok {
		for i := range out {
			out[i] = def
		}
		return out, err
	}
	if len(v) != rank {
		return nil, fmt.Errorf("attribute %s has %d values, want %d", name, len(v), rank)
	}
	for i, x := range v {
		if x < 0 || x > maxWindowAttr {
			return nil, fmt.Errorf("attribute %s has value %d", name, x)
		}
		out[i] = int(x)
	}
	return out, nil
}

// packConvTransposeWeights makes one dense kernel per group: the group's input channels by
// (output channel, kernel position), without bias (it is added once per output element).
func packConvTransposeWeights(w *Tensor, group int) []*dense {
	c, cols := w.Shape[0], product(w.Shape[1:])
	cg := c / group
	wd := data[float32](w)
	ds := make([]*dense, group)
	for g := range group {
		ds[g] = newDense(cg, cols, wd[g*cg*cols:(g+1)*cg*cols], make([]float32, cols))
	}
	return ds
}

type convTransposeKernel struct {
	convParams
	outPadding   []int
	outShape     []int // the output_shape attribute's spatial sizes, or nil
	explicitPads bool
	dense        []*dense
	bias         *Tensor // constant bias that goes with dense, or nil
}

// resolve computes the geometry of a transposed convolution: g.in is the input, g.out the
// output, and padBegin the padding cropped off the full result's start.
func (k *convTransposeKernel) resolve(g *geometry, in, kernel []int) error {
	w := k.win
	for d := range w.rank {
		size, kd, s := in[d], kernel[d], w.strides[d]
		if kd < 1 || kd > maxWindowAttr {
			return fmt.Errorf("kernel size %d on spatial axis %d", kd, d)
		}
		full := s*(size-1) + k.outPadding[d] + w.dilations[d]*(kd-1) + 1
		pb, pe := w.pads[d], w.pads[w.rank+d]
		out := full - pb - pe
		auto := w.autoPad == "SAME_UPPER" || w.autoPad == "SAME_LOWER"
		if w.autoPad == "VALID" {
			pb, pe, out = 0, 0, full
		}
		if k.outShape != nil || auto {
			if k.outShape != nil {
				out = k.outShape[d]
			} else {
				out = size * s
			}
			if !k.explicitPads || auto {
				// A negative total (an output_shape past the full result) pads the end
				// with zeros; the halves round down, as ONNX's reference does.
				total := full - out
				half := total >> 1 // floor(total/2), negative totals included
				pb, pe = total-half, half
				if w.autoPad == "SAME_UPPER" {
					pb, pe = half, total-half
				}
			}
		}
		if size < 1 || out < 0 {
			return fmt.Errorf("spatial axis %d: input size %d gives no output with pads %d, %d", d, size, pb, pe)
		}
		g.in[d], g.kernel[d], g.out[d], g.padBegin[d], g.padEnd[d] = size, kd, out, pb, pe
	}
	return nil
}

func (k *convTransposeKernel) run(x *exec, in, out []*Tensor) error {
	xt, w, b, m, err := k.operands(in, true)
	if err != nil {
		return err
	}
	var g geometry
	if err := k.resolve(&g, xt.Shape[2:], w.Shape[2:]); err != nil {
		return err
	}
	o := out[0]
	if err := resetOutput(x, o, xt.DType, xt.Shape[0], m, k.win.rank, &g); err != nil {
		return err
	}
	switch xt.DType {
	case Float32:
		return convTransposeT[float32](x, k, &g, xt, w, b, o, k.dense)
	case Float64:
		return convTransposeT[float64](x, k, &g, xt, w, b, o, nil)
	}
	return nil
}

// convTransposeT: each input position times the group's weights is a row of (output channel,
// kernel position) contributions, which col2im adds into the output under the window.
func convTransposeT[T float32 | float64](x *exec, k *convTransposeKernel, g *geometry, xt, w, b, o *Tensor, dense []*dense) error {
	rank := k.win.rank
	nImg, c, m := xt.Shape[0], w.Shape[0], w.Shape[1]*k.group
	cg, mg := c/k.group, m/k.group
	kvol := product(g.kernel[:rank])
	cols := mg * kvol
	inVol, outVol := product(g.in[:rank]), product(g.out[:rank])
	od := data[T](o)
	clear(od)
	if b != nil && outVol > 0 {
		addBias(od, data[T](b), outVol)
	}
	if cols == 0 || inVol == 0 || nImg == 0 || cg == 0 {
		return nil
	}
	rows := max(1, min(inVol, convChunk/cols))
	xrows, prods, xrows32, prods32, err := productBuffers[T](x, xt.DType, rows*cg, rows*cols, dense != nil)
	if err != nil {
		return err
	}
	xd, wd := data[T](xt), data[T](w)
	// The output's padding is cropped: the grid of input positions lands on the output with
	// the begin padding subtracted, as Conv's does on its input.
	p := newPatcher(k.win, g.in[:rank], g.out[:rank], g.kernel[:rank], g.padBegin[:rank])
	for img := range nImg {
		for grp := range k.group {
			src := xd[(img*c+grp*cg)*inVol:][:cg*inVol]
			dst := od[(img*m+grp*mg)*outVol:][:mg*outVol]
			wg := wd[grp*cg*cols:][:cg*cols]
			for p0 := 0; p0 < inVol; p0 += rows {
				r := min(rows, inVol-p0)
				for i := range r {
					for ch := range cg {
						xrows[i*cg+ch] = src[ch*inVol+p0+i]
					}
				}
				if dense != nil {
					dense[grp].run(r, xrows32[:r*cg], prods32[:r*cols])
				} else {
					clear(prods[:r*cols])
					for i := range r {
						row := prods[i*cols : (i+1)*cols]
						for ch, v := range xrows[i*cg : (i+1)*cg] {
							for j, wv := range wg[ch*cols : (ch+1)*cols] {
								row[j] += v * wv
							}
						}
					}
				}
				for i := range r {
					walkPatch(&p, prods[i*cols:(i+1)*cols], dst, mg, outVol, p0+i, true)
				}
			}
		}
	}
	return nil
}

// patch2D is walkPatch's gather for images, the common case, without the odometer.
func patch2D[T float32 | float64](p *patcher, row, image []T, channels, imgVol, pos int) {
	ow := p.grid[1]
	bh, bw := (pos/ow)*p.strides[0]-p.pads[0], (pos%ow)*p.strides[1]-p.pads[1]
	kh, kw, dh, dw, ih, iw := p.kernel[0], p.kernel[1], p.dilations[0], p.dilations[1], p.img[0], p.img[1]
	interior := bw >= 0 && bw+(kw-1)*dw < iw
	i := 0
	for c := range channels {
		img := image[c*imgVol : (c+1)*imgVol]
		for y := range kh {
			seg := row[i : i+kw]
			i += kw
			at := bh + y*dh
			switch {
			case at < 0 || at >= ih:
				clear(seg)
			case interior && dw == 1:
				// a few elements: a loop beats memmove's call
				src := img[at*iw+bw : at*iw+bw+kw]
				for x := range seg {
					seg[x] = src[x]
				}
			default:
				line := img[at*iw : (at+1)*iw]
				for x := range seg {
					if a := bw + x*dw; a >= 0 && a < iw {
						seg[x] = line[a]
					} else {
						seg[x] = 0
					}
				}
			}
		}
	}
}
