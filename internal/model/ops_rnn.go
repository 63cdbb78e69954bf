package model

// The recurrent layers RNN, GRU and LSTM: forward, reverse or bidirectional, either layout,
// sequence_lens, initial states, LSTM's peepholes and input_forget, GRU's linear_before_reset,
// clip, and the activation functions ONNX names. The state is small and sequential: the
// kernel works in float64 on one time step after another.

import (
	"fmt"
	"math"
)

type rnnCell uint8

const (
	cellRNN rnnCell = iota
	cellGRU
	cellLSTM
)

func init() {
	for name, cell := range map[string]rnnCell{"RNN": cellRNN, "GRU": cellGRU, "LSTM": cellLSTM} {
		register(opImpl{domain: domainONNX, name: name, minOpset: 7, maxOpset: maxOpsetONNX,
			compile: func(n *nodeCtx) (kernel, error) { return compileRecurrent(n, cell) }})
	}
}

// gates is the number of weight blocks per cell: RNN one, GRU z r h, LSTM i o f c.
func (c rnnCell) gates() int { return [...]int{1, 3, 4}[c] }

// activation is one of ONNX's recurrent activation functions with its alpha and beta.
type activation1 struct {
	name        string
	alpha, beta float64
}

func (a activation1) apply(x float64) float64 {
	switch a.name {
	case "Sigmoid":
		return 1 / (1 + math.Exp(-x))
	case "Tanh":
		return math.Tanh(x)
	case "Relu":
		return math.Max(x, 0)
	case "Affine":
		return a.alpha*x + a.beta
	case "LeakyRelu":
		if x < 0 {
			return a.alpha * x
		}
		return x
	case "ThresholdedRelu":
		if x > a.alpha {
			return x
		}
		return 0
	case "ScaledTanh":
		return a.alpha * math.Tanh(a.beta*x)
	case "HardSigmoid":
		return math.Max(0, math.Min(1, a.alpha*x+a.beta))
	case "Elu":
		if x < 0 {
			return a.alpha * (math.Exp(x) - 1)
		}
		return x
	case "Softsign":
		return x / (1 + math.Abs(x))
	default: // Softplus
		return math.Log1p(math.Exp(x))
	}
}

// activationDefaults are each function's alpha and beta when the node gives none.
var activationDefaults = map[string][2]float64{
	"Sigmoid": {}, "Tanh": {}, "Relu": {}, "Softsign": {}, "Softplus": {},
	"Affine": {1, 0}, "LeakyRelu": {0.01, 0}, "ThresholdedRelu": {1, 0}, "ScaledTanh": {1, 1},
	"HardSigmoid": {0.2, 0.5}, "Elu": {1, 0},
}

func compileRecurrent(n *nodeCtx, cell rnnCell) (kernel, error) {
	maxIn, maxOut := 6, 2
	if cell == cellLSTM {
		maxIn, maxOut = 8, 3
	}
	if err := n.arity(3, maxIn, 0, maxOut); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64); err != nil {
		return nil, err
	}
	if err := n.sameType(1, 2, 3, 5, 6, 7); err != nil {
		return nil, err
	}
	if n.has(4) {
		if err := n.needTypes(4, Int32); err != nil {
			return nil, err
		}
	}
	k := &recurrentKernel{cell: cell}
	dir, err := n.attrString("direction", "forward")
	if err != nil {
		return nil, err
	}
	switch dir {
	case "forward", "reverse":
		k.dirs, k.reverse = 1, dir == "reverse"
	case "bidirectional":
		k.dirs = 2
	default:
		return nil, fmt.Errorf("direction %q", dir)
	}
	layout, err := n.attrInt("layout", 0)
	if err != nil || (layout != 0 && layout != 1) {
		return nil, fmt.Errorf("layout %d", layout)
	}
	k.batchFirst = layout == 1
	hidden, err := n.attrInt("hidden_size", 0)
	if err != nil {
		return nil, err
	}
	if hidden < 1 || hidden > maxElements {
		return nil, fmt.Errorf("hidden_size %d", hidden)
	}
	k.hidden = int(hidden)
	clip, err := n.attrFloat("clip", 0)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(float64(clip)) || clip < 0 {
		return nil, fmt.Errorf("clip %v", clip)
	}
	k.clip = float64(clip)
	if cell == cellGRU {
		lbr, err := n.attrInt("linear_before_reset", 0)
		if err != nil {
			return nil, err
		}
		k.linearBeforeReset = lbr != 0
	}
	if cell == cellLSTM {
		f, err := n.attrInt("input_forget", 0)
		if err != nil {
			return nil, err
		}
		k.inputForget = f != 0
	}
	if err := k.readActivations(n); err != nil {
		return nil, err
	}
	x := n.shape(0)
	if len(x) != 3 {
		return nil, fmt.Errorf("input of shape %s is not [seq, batch, input]", shapeString(x))
	}
	seq, batch := x[0], x[1]
	if k.batchFirst {
		seq, batch = batch, seq
	}
	g := cell.gates() * k.hidden
	for i, want := range map[int][]int{1: {k.dirs, g, x[2]}, 2: {k.dirs, g, k.hidden}} {
		if s := n.shape(i); len(s) != 3 || !dimsFit(s, want) {
			return nil, fmt.Errorf("input %d has shape %s, want %s", i, shapeString(s), shapeString(want))
		}
	}
	h, y := []int{k.dirs, batch, k.hidden}, []int{seq, k.dirs, batch, k.hidden}
	if k.batchFirst {
		h, y = []int{batch, k.dirs, k.hidden}, []int{batch, seq, k.dirs, k.hidden}
	}
	n.setOutTensor(0, n.dtype(0), y)
	n.setOutTensor(1, n.dtype(0), h)
	n.setOutTensor(2, n.dtype(0), h)
	n.keepStep()
	return k, nil
}

// dimsFit tells whether a shape matches want where both are known.
func dimsFit(s, want []int) bool {
	for i := range s {
		if s[i] >= 0 && want[i] >= 0 && s[i] != want[i] {
			return false
		}
	}
	return true
}

func (k *recurrentKernel) readActivations(n *nodeCtx) error {
	defaults := map[rnnCell][]string{cellRNN: {"Tanh"}, cellGRU: {"Sigmoid", "Tanh"}, cellLSTM: {"Sigmoid", "Tanh", "Tanh"}}[k.cell]
	names, ok, err := n.attrStrings("activations")
	if err != nil {
		return err
	}
	if !ok {
		for range k.dirs {
			names = append(names, defaults...)
		}
	}
	if len(names) != len(defaults)*k.dirs {
		return fmt.Errorf("activations %v: want %d per direction", names, len(defaults))
	}
	alphas, hasAlpha, err := n.attrFloats("activation_alpha")
	if err != nil {
		return err
	}
	betas, hasBeta, err := n.attrFloats("activation_beta")
	if err != nil {
		return err
	}
	// alpha and beta list values for the functions that take them, in order.
	ai, bi := 0, 0
	for _, name := range names {
		def, known := activationDefaults[name]
		if !known {
			return unsupported("activation %q", name)
		}
		a := activation1{name: name, alpha: def[0], beta: def[1]}
		takesAlpha := def != [2]float64{} || name == "LeakyRelu"
		if takesAlpha && hasAlpha && ai < len(alphas) {
			a.alpha = float64(alphas[ai])
			ai++
		}
		takesBeta := name == "Affine" || name == "ScaledTanh" || name == "HardSigmoid"
		if takesBeta && hasBeta && bi < len(betas) {
			a.beta = float64(betas[bi])
			bi++
		}
		k.acts = append(k.acts, a)
	}
	return nil
}

type recurrentKernel struct {
	cell              rnnCell
	dirs              int
	reverse           bool
	batchFirst        bool
	hidden            int
	clip              float64
	linearBeforeReset bool
	inputForget       bool
	acts              []activation1 // per direction: f (, g (, h))
}

func (k *recurrentKernel) run(x *exec, in, out []*Tensor) error {
	arg := func(i int) *Tensor {
		if i < len(in) {
			return in[i]
		}
		return nil
	}
	xt := in[0]
	if len(xt.Shape) != 3 {
		return fmt.Errorf("input of shape %v is not rank 3", xt.Shape)
	}
	seq, batch, inSize := xt.Shape[0], xt.Shape[1], xt.Shape[2]
	if k.batchFirst {
		seq, batch = batch, seq
	}
	hs, g := k.hidden, k.cell.gates()*k.hidden
	// Everything in float64: 0 X, 1 W, 2 R, 3 B, 5 initial_h, 6 initial_c, 7 P.
	f := func(i, slot int, shape ...int) ([]float64, error) {
		t := arg(i)
		if t == nil {
			return nil, nil
		}
		if product(shape) != t.Len() {
			return nil, fmt.Errorf("input %d of shape %v, want %v", i, t.Shape, shape)
		}
		s := x.scratch(slot)
		if err := castInto(s, t, Float64); err != nil {
			return nil, err
		}
		return s.Float64, nil
	}
	xs, err := f(0, 0, xt.Shape...)
	if err != nil {
		return err
	}
	w, err := f(1, 1, k.dirs, g, inSize)
	if err != nil {
		return err
	}
	r, err := f(2, 2, k.dirs, g, hs)
	if err != nil {
		return err
	}
	b, err := f(3, 3, k.dirs, 2*g)
	if err != nil {
		return err
	}
	h0, err := f(5, 4, k.dirs, batch, hs)
	if err != nil {
		return err
	}
	c0, err := f(6, 5, k.dirs, batch, hs)
	if err != nil {
		return err
	}
	p, err := f(7, 6, k.dirs, 3*hs)
	if err != nil {
		return err
	}
	lens := make([]int, batch)
	for i := range lens {
		lens[i] = seq
	}
	if sl := arg(4); sl != nil {
		if sl.Len() != batch {
			return fmt.Errorf("sequence_lens has %d values for a batch of %d", sl.Len(), batch)
		}
		for i, v := range sl.Int32[:batch] {
			if v < 0 || int(v) > seq {
				return fmt.Errorf("sequence_lens[%d] = %d for a sequence of %d", i, v, seq)
			}
			lens[i] = int(v)
		}
	}
	ys, state := x.scratch(7), x.scratch(8)
	if err := ys.reset(Float64, seq, k.dirs, batch, hs); err != nil {
		return err
	}
	clear(ys.Float64)
	// state: h then c, [dirs][batch][hidden] each, then gate scratch [g]
	if err := state.reset(Float64, 2*k.dirs*batch*hs+g); err != nil {
		return err
	}
	st := state.Float64
	hAll, cAll, gates := st[:k.dirs*batch*hs], st[k.dirs*batch*hs:2*k.dirs*batch*hs], st[2*k.dirs*batch*hs:]
	clear(hAll)
	clear(cAll)
	if h0 != nil {
		copy(hAll, h0)
	}
	if c0 != nil {
		copy(cAll, c0)
	}
	acts := len(k.acts) / k.dirs
	for d := range k.dirs {
		rev := k.reverse || d == 1
		wd, rd := w[d*g*inSize:(d+1)*g*inSize], r[d*g*hs:(d+1)*g*hs]
		var bd, pd []float64
		if b != nil {
			bd = b[d*2*g : (d+1)*2*g]
		}
		if p != nil {
			pd = p[d*3*hs : (d+1)*3*hs]
		}
		act := k.acts[d*acts : (d+1)*acts]
		for bt := range batch {
			h, c := hAll[(d*batch+bt)*hs:][:hs], cAll[(d*batch+bt)*hs:][:hs]
			for step := range lens[bt] {
				t := step
				if rev {
					t = lens[bt] - 1 - step
				}
				var xv []float64
				if k.batchFirst {
					xv = xs[(bt*seq+t)*inSize:][:inSize]
				} else {
					xv = xs[(t*batch+bt)*inSize:][:inSize]
				}
				k.step(gates, xv, h, c, wd, rd, bd, pd, act)
				copy(ys.Float64[((t*k.dirs+d)*batch+bt)*hs:][:hs], h)
			}
		}
	}
	return k.writeOutputs(out, xt.DType, ys.Float64, hAll, cAll, seq, batch)
}

// step advances one sequence element: gates gets the pre-activations x·Wᵀ + h·Rᵀ + biases,
// then h (and c) are updated in place.
func (k *recurrentKernel) step(gates, xv, h, c, w, r, b, p []float64, act []activation1) {
	hs, inSize := k.hidden, len(xv)
	for j := range gates {
		s := 0.0
		for i, v := range xv {
			s += v * w[j*inSize+i]
		}
		if b != nil {
			s += b[j]
		}
		gates[j] = s
	}
	// the recurrent part, kept apart for GRU's hidden gate
	rec := func(j int, hv []float64) float64 {
		s := 0.0
		for i, v := range hv {
			s += v * r[j*hs+i]
		}
		if b != nil {
			s += b[len(gates)+j]
		}
		return s
	}
	clip := func(v float64) float64 {
		if k.clip > 0 {
			return math.Max(-k.clip, math.Min(k.clip, v))
		}
		return v
	}
	switch k.cell {
	case cellRNN:
		for j := range hs {
			gates[j] = act[0].apply(clip(gates[j] + rec(j, h)))
		}
		copy(h, gates[:hs])
	case cellGRU:
		z, rr, hh := gates[:hs], gates[hs:2*hs], gates[2*hs:3*hs]
		for j := range hs {
			z[j] = act[0].apply(clip(z[j] + rec(j, h)))
			rr[j] = act[0].apply(clip(rr[j] + rec(hs+j, h)))
		}
		for j := range hs {
			var s float64
			if k.linearBeforeReset {
				s = hh[j] + rr[j]*rec(2*hs+j, h)
			} else {
				s = hh[j]
				for i, v := range h {
					s += rr[i] * v * r[(2*hs+j)*hs+i]
				}
				if b != nil {
					s += b[len(gates)+2*hs+j]
				}
			}
			hh[j] = act[1].apply(clip(s))
		}
		for j := range hs {
			h[j] = (1-z[j])*hh[j] + z[j]*h[j]
		}
	case cellLSTM:
		ig, og, fg, cg := gates[:hs], gates[hs:2*hs], gates[2*hs:3*hs], gates[3*hs:4*hs]
		for j := range hs {
			ig[j] += rec(j, h)
			og[j] += rec(hs+j, h)
			fg[j] += rec(2*hs+j, h)
			cg[j] += rec(3*hs+j, h)
		}
		for j := range hs {
			pi, po, pf := 0.0, 0.0, 0.0
			if p != nil {
				pi, po, pf = p[j], p[hs+j], p[2*hs+j]
			}
			i := act[0].apply(clip(ig[j] + pi*c[j]))
			f := act[0].apply(clip(fg[j] + pf*c[j]))
			if k.inputForget {
				f = 1 - i
			}
			cNew := f*c[j] + i*act[1].apply(clip(cg[j]))
			o := act[0].apply(clip(og[j] + po*cNew))
			c[j] = cNew
			h[j] = o * act[2].apply(cNew)
		}
	}
}

// writeOutputs lays Y, Y_h and Y_c out in the node's layout and type.
func (k *recurrentKernel) writeOutputs(out []*Tensor, dt DType, ys, h, c []float64, seq, batch int) error {
	hs := k.hidden
	for i, o := range out {
		if o == nil {
			continue
		}
		var shape []int
		switch {
		case i == 0 && k.batchFirst:
			shape = []int{batch, seq, k.dirs, hs}
		case i == 0:
			shape = []int{seq, k.dirs, batch, hs}
		case k.batchFirst:
			shape = []int{batch, k.dirs, hs}
		default:
			shape = []int{k.dirs, batch, hs}
		}
		f := &Tensor{}
		if err := f.reset(Float64, shape...); err != nil {
			return err
		}
		src := [][]float64{ys, h, c}[i]
		if !k.batchFirst {
			copy(f.Float64, src)
		} else if i == 0 {
			for t := range seq {
				for d := range k.dirs {
					for bt := range batch {
						copy(f.Float64[((bt*seq+t)*k.dirs+d)*hs:][:hs], src[((t*k.dirs+d)*batch+bt)*hs:][:hs])
					}
				}
			}
		} else {
			for d := range k.dirs {
				for bt := range batch {
					copy(f.Float64[(bt*k.dirs+d)*hs:][:hs], src[(d*batch+bt)*hs:][:hs])
				}
			}
		}
		if err := castInto(o, f, dt); err != nil {
			return err
		}
	}
	return nil
}
