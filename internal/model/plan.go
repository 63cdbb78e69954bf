package model

import "fmt"

// plan is a compiled model: a list of kernel steps over numbered buffer slots. Batches run in
// chunks of at most chunk rows so that a state's buffers have a fixed size, fit in cache, and any
// batch size runs without allocating.
type plan struct {
	inSlots  []int // slot of each graph input
	inRow    []int // values per row of each graph input
	outSlots []int // slot of each graph output
	outRow   []int
	slotRow  []int  // values per row of each slot
	computed []bool // whether a slot owns a buffer (graph inputs are views of the caller's data)
	steps    []step
	// chunk is the number of rows per pass: ChunkRows, or fewer for models with wide rows.
	chunk int
}

// sizeChunks picks the rows per pass so that one state's buffers stay within maxStateValues.
func (p *plan) sizeChunks() error {
	perRow := 0
	for s, row := range p.slotRow {
		if p.computed[s] {
			perRow += row
		}
	}
	p.chunk = ChunkRows
	if perRow > 0 {
		p.chunk = min(ChunkRows, maxStateValues/perRow)
	}
	if p.chunk < 1 {
		return fmt.Errorf("one row needs %d intermediate values, more than the %d allowed", perRow, maxStateValues)
	}
	return nil
}

// operand is a step input: a slot, or a constant when slot < 0.
type operand struct {
	slot  int
	konst []float32
}

// kernel computes rows rows of one operator. in holds the operands (constants whole, slots
// exactly rows rows long or longer); out has room for rows rows.
type kernel func(rows int, in [][]float32, out []float32)

type step struct {
	ins    []operand
	out    int
	kernel kernel
	// dense is set when the step is a dense layer, so that a following activation can fuse.
	dense *dense
}

// state is one goroutine's scratch: a buffer per computed slot and an argument list per step.
type state struct {
	bufs [][]float32
	args [][][]float32
}

func (p *plan) newState() any {
	st := &state{bufs: make([][]float32, len(p.slotRow)), args: make([][][]float32, len(p.steps))}
	for s, row := range p.slotRow {
		if p.computed[s] {
			st.bufs[s] = make([]float32, p.chunk*row)
		}
	}
	for i, s := range p.steps {
		st.args[i] = make([][]float32, len(s.ins))
	}
	return st
}

func (p *plan) run(st *state, rows int, inputs, outputs [][]float32) {
	for start := 0; start < rows; start += p.chunk {
		n := min(p.chunk, rows-start)
		for i, s := range p.inSlots {
			r := p.inRow[i]
			st.bufs[s] = inputs[i][start*r : (start+n)*r]
		}
		for i := range p.steps {
			s := &p.steps[i]
			args := st.args[i]
			for j, o := range s.ins {
				if o.slot < 0 {
					args[j] = o.konst
				} else {
					args[j] = st.bufs[o.slot]
				}
			}
			s.kernel(n, args, st.bufs[s.out])
		}
		for i, s := range p.outSlots {
			r := p.outRow[i]
			copy(outputs[i][start*r:(start+n)*r], st.bufs[s][:n*r])
		}
	}
	// Drop the views of the caller's data so the pool does not keep them alive.
	for _, s := range p.inSlots {
		st.bufs[s] = nil
	}
}
