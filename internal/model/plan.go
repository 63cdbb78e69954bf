package model

import (
	"fmt"
	"math"
	"slices"
)

// plan is a compiled model: kernel steps over numbered slots, one slot per value the steps read
// or write. Constants sit in the plan, shared by every state; everything else lives in a state,
// one per goroutine, whose buffers grow to the largest run they have seen and are then reused, so
// a warm state runs without allocating.
type plan struct {
	nslots int
	consts []constSlot
	// constIdx finds the slot of a constant tensor already in consts.
	constIdx map[*Tensor]int
	inputs   []ioSlot
	outputs  []ioSlot
	steps    []step
	// views are slots whose tensors are views of other slots' data, dropped after each run so
	// that a pooled state keeps no caller's data alive.
	views []int
	// nsym is the number of symbols graph inputs use, for binding them at run time.
	nsym int
	// rows, when set, lets a batch run in chunks of rows (see rowPlan).
	rows *rowPlan
	// chain, when set, is the plan as a chain of dense layers from the one input to the one
	// output (an MLP), which Run executes straight on the caller's slices.
	chain []*dense
}

// rowPlan describes a plan that computes every row of its batch from the same row of its
// batch-major inputs alone (dense layers, elementwise operators, normalisations over other
// axes, embedding lookups), so that a large batch runs in chunks small enough for the caches,
// and a state's buffers stay the size of one chunk whatever the batch.
type rowPlan struct {
	batch int // the symbol of axis 0 of the batch-major inputs and outputs
	chunk int // rows per chunk
	// batched tells, per graph input, whether it is batch-major (else it is the same for
	// every row: passed whole to every chunk).
	batched []bool
	// rowSize is the values per row of every batch-major input and output.
	inRow, outRow []int
}

// rowKernel is implemented by kernels that can tell, from the static types of their inputs and
// outputs, that they compute each row of the batch (axis 0, symbol batch) from the same row of
// their batch-major inputs alone. Kernels that do not implement it keep a plan from running in
// chunks; nothing else changes.
type rowKernel interface {
	rowLocal(batch int, in, out []valueType) bool
}

// batchMajor tells whether a value has the batch on axis 0 and fixed sizes elsewhere.
func batchMajor(t valueType, batch int) bool {
	return t.kind == kindTensor && len(t.shape) > 0 && t.shape[0] == batch && static(t.shape[1:])
}

// batchFree tells whether a value does not involve the batch at all.
func batchFree(t valueType, batch int) bool {
	return t.kind == kindTensor && !slices.Contains(t.shape, batch)
}

type constSlot struct {
	slot int
	t    *Tensor
}

// ioSlot is a graph input or output.
type ioSlot struct {
	name string
	slot int
	typ  valueType
}

type step struct {
	kernel kernel
	in     []int // slot per node input; -1 for an omitted one
	out    []int
	// inTypes and outTypes are what inference knew of the inputs and outputs.
	inTypes, outTypes []valueType
	// need has bit j set when graph output j (bit 63: any output from the 64th on) depends on
	// the step, so that a run can skip what nobody asked for.
	need uint64
	node string // for run-time errors
}

func (p *plan) newSlot() int {
	p.nslots++
	return p.nslots - 1
}

func (p *plan) constSlot(t *Tensor) int {
	if s, ok := p.constIdx[t]; ok {
		return s
	}
	if p.constIdx == nil {
		p.constIdx = make(map[*Tensor]int)
	}
	s := p.newSlot()
	p.consts = append(p.consts, constSlot{slot: s, t: t})
	p.constIdx[t] = s
	return s
}

func outputBit(j int) uint64 { return 1 << min(j, 63) }

// finish fuses activations into the dense layers before them, drops steps no output needs and
// marks every step with the outputs that need it.
func (p *plan) finish() {
	p.fuse()
	slotNeed := make([]uint64, p.nslots)
	for j, o := range p.outputs {
		slotNeed[o.slot] |= outputBit(j)
	}
	var live []step
	for i := len(p.steps) - 1; i >= 0; i-- {
		s := p.steps[i]
		for _, o := range s.out {
			s.need |= slotNeed[o]
		}
		if s.need == 0 {
			continue
		}
		for _, in := range s.in {
			if in >= 0 {
				slotNeed[in] |= s.need
			}
		}
		live = append(live, s)
	}
	slices.Reverse(live)
	p.steps = live
	p.rows = p.rowPlan()
	p.chain = p.denseChain()
}

// denseChain recognises a plan that is a chain of dense layers, each reading the one before:
// the FP32 MLP, the hottest path of all, which then runs without the general executor's
// bookkeeping (and writes its last layer straight into the caller's output).
func (p *plan) denseChain() []*dense {
	if len(p.inputs) != 1 || len(p.outputs) != 1 || len(p.steps) == 0 || p.rows == nil {
		return nil
	}
	in := p.inputs[0]
	if len(in.typ.shape) != 2 || in.typ.dtype != Float32 {
		return nil
	}
	var chain []*dense
	prev, width := in.slot, in.typ.shape[1]
	for _, s := range p.steps {
		// A dense step's other inputs are its weights and bias, packed into it at load.
		d, ok := s.kernel.(*denseKernel)
		if !ok || len(s.in) == 0 || s.in[0] != prev || len(s.out) != 1 || d.k == 0 || d.k != width {
			return nil
		}
		chain = append(chain, &d.dense)
		prev, width = s.out[0], d.n
	}
	if prev != p.outputs[0].slot {
		return nil
	}
	return chain
}

// runChain runs a dense chain on n rows: a is the input rows, out the output rows; the layers
// in between use the state's buffers.
func (p *plan) runChain(st *state, n int, a, out []float32) {
	for i, d := range p.chain {
		var o []float32
		if i == len(p.chain)-1 {
			o = out
		} else {
			for len(st.chain) <= i {
				st.chain = append(st.chain, nil)
			}
			if cap(st.chain[i]) < n*d.n {
				st.chain[i] = make([]float32, n*d.n)
			}
			o = st.chain[i][:n*d.n]
		}
		d.run(n, a, o)
		a = o
	}
}

// rowPlan decides whether the plan can run in chunks of rows: the batch is the symbol on axis 0
// of the first input; every input and output must be batch-major or batch-free (outputs
// batch-major), and every step either touch no batch-major value or be a rowKernel that says
// it is row-local.
func (p *plan) rowPlan() *rowPlan {
	if len(p.inputs) == 0 || len(p.inputs[0].typ.shape) == 0 || p.inputs[0].typ.shape[0] >= 0 {
		return nil
	}
	batch := p.inputs[0].typ.shape[0]
	rp := &rowPlan{batch: batch}
	for _, in := range p.inputs {
		major := batchMajor(in.typ, batch)
		if !major && !batchFree(in.typ, batch) {
			return nil
		}
		rp.batched = append(rp.batched, major)
		rp.inRow = append(rp.inRow, product(in.typ.shape[min(1, len(in.typ.shape)):]))
	}
	for _, out := range p.outputs {
		if !batchMajor(out.typ, batch) {
			return nil
		}
		rp.outRow = append(rp.outRow, product(out.typ.shape[1:]))
	}
	perRow := 0
	for _, s := range p.steps {
		free := true
		for _, t := range append(slices.Clip(s.inTypes), s.outTypes...) {
			free = free && batchFree(t, batch)
		}
		if free {
			continue
		}
		rk, ok := s.kernel.(rowKernel)
		if !ok || !rk.rowLocal(batch, s.inTypes, s.outTypes) {
			return nil
		}
		for _, t := range s.outTypes {
			if batchMajor(t, batch) {
				perRow += product(t.shape[1:])
			}
		}
	}
	rp.chunk = ChunkRows
	if perRow > 0 {
		rp.chunk = max(1, min(ChunkRows, maxChunkValues/perRow))
	}
	return rp
}

// maxChunkValues bounds the intermediate values of one chunk.
const maxChunkValues = 1 << 22

// fuse replaces the chain PyTorch exports GELU as with one activation, then lets a dense layer
// apply the activation that is the only reader of its output, while the output is still in
// cache.
func (p *plan) fuse() {
	p.fuseGelu()
	p.fuseLayerNorm()
	readers := make([][]int, p.nslots)
	for i, s := range p.steps {
		for _, in := range s.in {
			if in >= 0 {
				readers[in] = append(readers[in], i)
			}
		}
	}
	isOutput := make([]bool, p.nslots)
	for _, o := range p.outputs {
		isOutput[o.slot] = true
	}
	removed := make([]bool, len(p.steps))
	for i := range p.steps {
		s := &p.steps[i]
		d, ok := s.kernel.(*denseKernel)
		if !ok || d.act != actNone || removed[i] || isOutput[s.out[0]] || len(readers[s.out[0]]) != 1 {
			continue
		}
		r := readers[s.out[0]][0]
		a, ok := p.steps[r].kernel.(*activationKernel)
		if !ok || a.dtype != Float32 {
			continue
		}
		fused := *d
		fused.act, fused.alpha = a.act, a.alpha
		s.kernel = &fused
		s.out = []int{p.steps[r].out[0]}
		removed[r] = true
	}
	kept := p.steps[:0]
	for i, s := range p.steps {
		if !removed[i] {
			kept = append(kept, s)
		}
	}
	p.steps = kept
}

// state is one goroutine's execution state.
type state struct {
	own []Tensor
	// ptr is the tensor of every slot: in own, or a constant of the plan.
	ptr []*Tensor
	// ins and outs are each step's argument lists, pointing into own or at the plan's constants;
	// they never change, so a run only moves data.
	ins, outs [][]*Tensor
	tmp       [][]*Tensor
	x         []exec
	// syms holds the run's size of every input symbol (-1 until bound).
	syms []int
	// chain holds the intermediate layers' outputs of a dense chain.
	chain [][]float32
}

func (p *plan) newState() *state {
	st := &state{
		own:  make([]Tensor, p.nslots),
		ins:  make([][]*Tensor, len(p.steps)),
		outs: make([][]*Tensor, len(p.steps)),
		tmp:  make([][]*Tensor, len(p.steps)),
		x:    make([]exec, len(p.steps)),
		syms: make([]int, p.nsym),
	}
	ptr := make([]*Tensor, p.nslots)
	st.ptr = ptr
	for i := range st.own {
		ptr[i] = &st.own[i]
	}
	for _, c := range p.consts {
		ptr[c.slot] = c.t
	}
	for i, s := range p.steps {
		st.ins[i] = make([]*Tensor, len(s.in))
		for j, slot := range s.in {
			if slot >= 0 {
				st.ins[i][j] = ptr[slot]
			}
		}
		st.outs[i] = make([]*Tensor, len(s.out))
		for j, slot := range s.out {
			st.outs[i][j] = ptr[slot]
		}
		st.x[i] = exec{tmp: &st.tmp[i]}
	}
	return st
}

// bind checks the caller's tensors against the graph inputs and makes the input slots views of
// them: the sizes of symbolic dimensions are bound here, and must agree across inputs.
func (p *plan) bind(st *state, inputs []*Tensor) error {
	for i := range st.syms {
		st.syms[i] = -1
	}
	for i, in := range p.inputs {
		t := inputs[i]
		if t == nil {
			return fmt.Errorf("%w: input %q is missing", ErrInvalidInput, in.name)
		}
		if err := p.checkInput(st, in, t); err != nil {
			return fmt.Errorf("%w: input %q: %w", ErrInvalidInput, in.name, err)
		}
		dst := &st.own[in.slot]
		shape := append(dst.Shape[:0], t.Shape...)
		dst.view(t, shape)
		dst.Keys = nil
	}
	return nil
}

func (p *plan) checkInput(st *state, in ioSlot, t *Tensor) error {
	if t.DType != in.typ.dtype {
		return fmt.Errorf("has type %s, the model takes %s", t.DType.OIP(), in.typ.dtype.OIP())
	}
	if t.Keys != nil {
		return fmt.Errorf("is a map; the model takes a tensor")
	}
	if len(t.Shape) != len(in.typ.shape) {
		return fmt.Errorf("has shape %v, the model takes %s", t.Shape, shapeString(in.typ.shape))
	}
	if err := t.check(); err != nil {
		return err
	}
	for d, want := range in.typ.shape {
		got := t.Shape[d]
		switch {
		case want >= 0 && got != want:
			return fmt.Errorf("has shape %v, the model takes %s", t.Shape, shapeString(in.typ.shape))
		case want < 0 && -want-1 < len(st.syms):
			s := &st.syms[-want-1]
			if *s >= 0 && *s != got {
				return fmt.Errorf("has %d on axis %d, where another input has %d for the same dimension", got, d, *s)
			}
			*s = got
		}
	}
	return nil
}

// shapeString prints a shape with -1 for its symbolic dimensions.
func shapeString(shape []int) string {
	s := "["
	for i, d := range shape {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprint(max(d, -1))
	}
	return s + "]"
}

// run executes the steps that the outputs in need depend on.
func (p *plan) run(st *state, need uint64) error {
	for i := range p.steps {
		s := &p.steps[i]
		if s.need&need == 0 {
			continue
		}
		if err := s.kernel.run(&st.x[i], st.ins[i], st.outs[i]); err != nil {
			return fmt.Errorf("node %s: %w", s.node, err)
		}
	}
	return nil
}

// runWhole runs the plan once over the bound inputs and copies the requested outputs out.
func (p *plan) runWhole(st *state, need uint64, outputs []*Tensor) error {
	if err := p.run(st, need); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	for j, o := range outputs {
		if o == nil {
			continue
		}
		if err := o.copyFrom(st.ptr[p.outputs[j].slot]); err != nil {
			return fmt.Errorf("%w: output %q: %w", ErrInvalidInput, p.outputs[j].name, err)
		}
	}
	return nil
}

// chunkOf is the rows a pass takes; no limit without a row plan.
func (rp *rowPlan) chunkOf() int {
	if rp == nil {
		return math.MaxInt
	}
	return rp.chunk
}

// batchRows is the size of the batch the bound inputs carry, or 0 without a row plan.
func (p *plan) batchRows(st *state, inputs []*Tensor) int {
	if p.rows == nil || -p.rows.batch-1 >= len(st.syms) {
		return 0
	}
	return st.syms[-p.rows.batch-1]
}

// runChunks runs a row plan over rows rows, chunk by chunk: the batch-major inputs are views of
// the chunk's rows, the requested outputs are assembled row by row.
func (p *plan) runChunks(st *state, rows int, need uint64, inputs, outputs []*Tensor) error {
	rp := p.rows
	for start := 0; start < rows; start += rp.chunk {
		n := min(rp.chunk, rows-start)
		for i, in := range p.inputs {
			if rp.batched[i] {
				rowsOf(&st.own[in.slot], inputs[i], start, n, rp.inRow[i])
			}
		}
		if err := p.run(st, need); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidInput, err)
		}
		for j, o := range outputs {
			if o == nil {
				continue
			}
			src, size := st.ptr[p.outputs[j].slot], rp.outRow[j]
			if len(src.Shape) == 0 || src.Shape[0] != n || src.Len() != n*size {
				return fmt.Errorf("%w: output %q has shape %v for a chunk of %d rows", ErrInvalidInput, p.outputs[j].name, src.Shape, n)
			}
			if start == 0 {
				var buf [maxRank]int
				shape := append(append(buf[:0], rows), src.Shape[1:]...)
				if err := o.reset(src.DType, shape...); err != nil {
					return fmt.Errorf("%w: output %q: %w", ErrInvalidInput, p.outputs[j].name, err)
				}
				o.Keys = src.Keys
			}
			copyElems(o, start*size, src, 0, n*size)
		}
	}
	return nil
}

// rowsOf makes dst a view of rows [start, start+n) of src, whose rows hold size values.
func rowsOf(dst, src *Tensor, start, n, size int) {
	dst.view(src, src.Shape)
	dst.Shape[0] = n
	rowsOfFns[src.DType](dst, start*size, (start+n)*size)
}

var rowsOfFns = everyType(sliceField[float32], sliceField[float64], sliceField[int8], sliceField[int16],
	sliceField[int32], sliceField[int64], sliceField[uint8], sliceField[uint16], sliceField[uint32],
	sliceField[uint64], sliceField[bool], sliceField[string])

func sliceField[T elem](t *Tensor, lo, hi int) {
	f := field[T](t)
	*f = (*f)[lo:hi]
}

// release drops every view of data the state does not own.
func (p *plan) release(st *state) {
	for _, in := range p.inputs {
		st.own[in.slot].dropData()
	}
	for _, v := range p.views {
		st.own[v].dropData()
	}
}

// elementwiseRows is rowLocal for elementwise and broadcasting kernels: the outputs are
// batch-major, and every input either is batch-major with the outputs' rank or does not
// involve the batch and broadcasts over it.
func elementwiseRows(batch int, in, out []valueType) bool {
	for _, o := range out {
		if !batchMajor(o, batch) {
			return false
		}
	}
	rank := len(out[0].shape)
	for _, t := range in {
		switch {
		case batchMajor(t, batch) && len(t.shape) == rank:
		case batchFree(t, batch) && (len(t.shape) < rank || t.shape[0] == 1):
		default:
			return false
		}
	}
	return true
}

// rowFunc is a kernel function with its rowLocal rule.
type rowFunc struct {
	kernelFunc
	local func(batch int, in, out []valueType) bool
}

func (f rowFunc) rowLocal(batch int, in, out []valueType) bool { return f.local(batch, in, out) }

// elementwiseFunc is a kernel function that is elementwise (rowLocal by elementwiseRows).
func elementwiseFunc(f kernelFunc) kernel { return rowFunc{kernelFunc: f, local: elementwiseRows} }

// firstRows is rowLocal for kernels that map input 0's rows to the output's rows one to one
// (the other inputs being parameters).
func firstRows(batch int, in, out []valueType) bool {
	return batchMajor(in[0], batch) && batchMajor(out[0], batch)
}

func (d *denseKernel) rowLocal(batch int, in, out []valueType) bool { return firstRows(batch, in, out) }
func (k *viewKernel) rowLocal(batch int, in, out []valueType) bool  { return firstRows(batch, in, out) }
func (k *batchNormKernel) rowLocal(batch int, in, out []valueType) bool {
	return firstRows(batch, in, out)
}
func (k *activationKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *mapKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *clipKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *binaryKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *powKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *variadicKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *compareKernel) rowLocal(batch int, in, out []valueType) bool {
	return elementwiseRows(batch, in, out)
}
func (k *softmaxKernel) rowLocal(batch int, in, out []valueType) bool {
	return firstRows(batch, in, out) && k.axis >= 1
}
func (k *layerNormKernel) rowLocal(batch int, in, out []valueType) bool {
	return firstRows(batch, in, out) && k.axis >= 1 && batchMajor(out[len(out)-1], batch)
}
func (k *reduceKernel) rowLocal(batch int, in, out []valueType) bool {
	if !firstRows(batch, in, out) || len(k.axes) == 0 || k.runtimeAxes {
		return false
	}
	for _, a := range k.axes {
		if a == 0 || a == -int64(len(in[0].shape)) {
			return false
		}
	}
	return true
}

// stepGraph is what the pattern fusions read of a plan: constants by slot, the readers and the
// producer of every slot, the graph outputs.
type stepGraph struct {
	p        *plan
	konst    map[int]*Tensor
	readers  [][]int
	isOutput []bool
}

func (p *plan) stepGraph() *stepGraph {
	g := &stepGraph{p: p, konst: make(map[int]*Tensor, len(p.consts)), readers: make([][]int, p.nslots), isOutput: make([]bool, p.nslots)}
	for _, c := range p.consts {
		g.konst[c.slot] = c.t
	}
	for i, s := range p.steps {
		for _, in := range s.in {
			if in >= 0 {
				g.readers[in] = append(g.readers[in], i)
			}
		}
	}
	for _, o := range p.outputs {
		g.isOutput[o.slot] = true
	}
	return g
}

// binary returns step i's op and operands when it is a float32 binary step.
func (g *stepGraph) binary(i int) (binOp, int, int, bool) {
	k, ok := g.p.steps[i].kernel.(*binaryKernel)
	if !ok || k.dtype != Float32 {
		return 0, 0, 0, false
	}
	return k.op, g.p.steps[i].in[0], g.p.steps[i].in[1], true
}

// scalar tells whether slot holds the float32 constant want (to 1e-6 relative).
func (g *stepGraph) scalar(slot int, want float64) bool {
	t := g.konst[slot]
	return t != nil && t.DType == Float32 && t.Len() == 1 && math.Abs(float64(t.Float32[0])-want) <= 1e-6*math.Abs(want)
}

// only is the one step that reads slot, or -1 (also when slot is a graph output).
func (g *stepGraph) only(slot int) int {
	if len(g.readers[slot]) != 1 || g.isOutput[slot] {
		return -1
	}
	return g.readers[slot][0]
}

// other is the operand of a binary step that is not slot.
func other(a, b, slot int) (int, bool) {
	switch slot {
	case a:
		return b, true
	case b:
		return a, true
	}
	return 0, false
}

// replace puts kernel k, reading in and writing step last's output, in step first's place and
// drops the steps of the pattern in between.
func (g *stepGraph) replace(first, last int, k kernel, in []int, inTypes []valueType, name string, removed []bool, pattern ...int) {
	s := g.p.steps
	s[first] = step{kernel: k, in: in, out: []int{s[last].out[0]}, inTypes: inTypes,
		outTypes: s[last].outTypes, node: s[first].node + " (" + name + ", fused)"}
	for _, i := range pattern {
		if i != first {
			removed[i] = true
		}
	}
}

// dropRemoved deletes the steps marked removed.
func (p *plan) dropRemoved(removed []bool) {
	kept := p.steps[:0]
	for i, s := range p.steps {
		if !removed[i] {
			kept = append(kept, s)
		}
	}
	p.steps = kept
}

// fuseGelu finds x/√2 → Erf → +1 → ·x → ·0.5 (how torch.onnx.export writes nn.GELU, each
// intermediate read once) over float32 and replaces the five steps with one GELU activation.
func (p *plan) fuseGelu() {
	g := p.stepGraph()
	removed := make([]bool, len(p.steps))
	for i := range p.steps {
		op, x, c, ok := g.binary(i)
		if !ok || op != opDiv || !g.scalar(c, math.Sqrt2) || removed[i] {
			continue
		}
		erf := g.only(p.steps[i].out[0])
		if erf < 0 {
			continue
		}
		if m, ok := p.steps[erf].kernel.(*mapKernel); !ok || !m.erf || m.dtype != Float32 {
			continue
		}
		add := g.only(p.steps[erf].out[0])
		if add < 0 {
			continue
		}
		if op, a, b, ok := g.binary(add); !ok || op != opAdd {
			continue
		} else if one, ok := other(a, b, p.steps[erf].out[0]); !ok || !g.scalar(one, 1) {
			continue
		}
		mulX := g.only(p.steps[add].out[0])
		if mulX < 0 {
			continue
		}
		if op, a, b, ok := g.binary(mulX); !ok || op != opMul {
			continue
		} else if v, ok := other(a, b, p.steps[add].out[0]); !ok || v != x {
			continue
		}
		half := g.only(p.steps[mulX].out[0])
		if half < 0 {
			continue
		}
		if op, a, b, ok := g.binary(half); !ok || op != opMul {
			continue
		} else if h, ok := other(a, b, p.steps[mulX].out[0]); !ok || !g.scalar(h, 0.5) {
			continue
		}
		// The shapes must be those of x throughout (no broadcasting by the constants).
		if !slices.Equal(p.steps[half].outTypes[0].shape, p.steps[i].inTypes[0].shape) {
			continue
		}
		g.replace(i, half, &activationKernel{act: actGelu, dtype: Float32}, []int{x}, p.steps[i].inTypes[:1],
			"GELU", removed, i, erf, add, mulX, half)
	}
	p.dropRemoved(removed)
}

// fuseLayerNorm finds the layer normalisation over the last axis that torch.onnx.export writes
// before opset 17 — mean = ReduceMean(x), d = x − mean, var = ReduceMean(d²), y = d /
// √(var + ε) · scale + bias, over float32 with constant ε, scale and bias — and replaces the
// nine steps with one LayerNormalization kernel.
func (p *plan) fuseLayerNorm() {
	g := p.stepGraph()
	removed := make([]bool, len(p.steps))
	lastAxisMean := func(i int) (int, bool) {
		k, ok := p.steps[i].kernel.(*reduceKernel)
		if !ok || k.kind != redMean || !k.keep || k.dtype != Float32 || len(k.axes) != 1 || k.runtimeAxes {
			return 0, false
		}
		rank := int64(len(p.steps[i].inTypes[0].shape))
		return p.steps[i].in[0], rank > 0 && (k.axes[0] == -1 || k.axes[0] == rank-1)
	}
	for i := range p.steps {
		x, ok := lastAxisMean(i)
		if !ok || removed[i] {
			continue
		}
		sub := g.only(p.steps[i].out[0])
		if sub < 0 {
			continue
		}
		if op, a, b, ok := g.binary(sub); !ok || op != opSub || a != x || b != p.steps[i].out[0] {
			continue
		}
		d := p.steps[sub].out[0]
		if len(g.readers[d]) != 2 || g.isOutput[d] {
			continue
		}
		pow, div := g.readers[d][0], g.readers[d][1]
		if k, ok := p.steps[pow].kernel.(*powKernel); !ok || k.base != Float32 || !g.scalar(p.steps[pow].in[1], 2) {
			continue
		}
		mean2 := g.only(p.steps[pow].out[0])
		if mean2 < 0 {
			continue
		}
		if v, ok := lastAxisMean(mean2); !ok || v != p.steps[pow].out[0] {
			continue
		}
		addEps := g.only(p.steps[mean2].out[0])
		if addEps < 0 {
			continue
		}
		op, a, b, ok := g.binary(addEps)
		if !ok || op != opAdd {
			continue
		}
		epsSlot, ok := other(a, b, p.steps[mean2].out[0])
		eps := g.konst[epsSlot]
		if !ok || eps == nil || eps.DType != Float32 || eps.Len() != 1 || !(eps.Float32[0] >= 0) {
			continue
		}
		sqrt := g.only(p.steps[addEps].out[0])
		if sqrt < 0 {
			continue
		}
		if m, ok := p.steps[sqrt].kernel.(*mapKernel); !ok || !m.sqrt || m.dtype != Float32 {
			continue
		}
		if g.only(p.steps[sqrt].out[0]) != div {
			continue
		}
		if op, a, b, ok := g.binary(div); !ok || op != opDiv || a != d || b != p.steps[sqrt].out[0] {
			continue
		}
		// Then ·scale and +bias, constants of the normalised axis's size.
		width := p.steps[i].inTypes[0].shape[len(p.steps[i].inTypes[0].shape)-1]
		param := func(step int, want binOp, from int) (int, bool) {
			op, a, b, ok := g.binary(step)
			if !ok || op != want {
				return 0, false
			}
			c, ok := other(a, b, from)
			t := g.konst[c]
			return c, ok && t != nil && t.DType == Float32 && len(t.Shape) == 1 && t.Shape[0] == width
		}
		mul := g.only(p.steps[div].out[0])
		if mul < 0 {
			continue
		}
		scale, ok := param(mul, opMul, p.steps[div].out[0])
		if !ok {
			continue
		}
		add := g.only(p.steps[mul].out[0])
		if add < 0 {
			continue
		}
		bias, ok := param(add, opAdd, p.steps[mul].out[0])
		if !ok {
			continue
		}
		rank := len(p.steps[i].inTypes[0].shape)
		scaleType := tensorType(Float32, []int{width})
		g.replace(i, add, &layerNormKernel{axis: rank - 1, eps: float64(eps.Float32[0]), stash: Float32},
			[]int{x, scale, bias}, []valueType{p.steps[i].inTypes[0], scaleType, scaleType},
			"LayerNormalization", removed, i, sub, pow, mean2, addEps, sqrt, div, mul, add)
	}
	p.dropRemoved(removed)
}
