package model

import (
	"fmt"
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
}

// fuse lets a dense layer apply the activation that is the only reader of its output, while the
// output is still in cache.
func (p *plan) fuse() {
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

// release drops every view of data the state does not own.
func (p *plan) release(st *state) {
	for _, in := range p.inputs {
		st.own[in.slot].dropData()
	}
	for _, v := range p.views {
		st.own[v].dropData()
	}
}
