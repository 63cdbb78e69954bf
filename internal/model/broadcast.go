package model

import (
	"errors"
	"fmt"
)

// broadcastDims applies numpy broadcasting to shapes. At load (n non-nil) symbols may appear: a
// symbol against 1 or itself stays, a symbol against a size takes the size (the run checks it),
// two different symbols make a fresh one. At run time (n nil) every size is known.
func broadcastDims(n *nodeCtx, shapes ...[]int) ([]int, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		if err := broadcastInto(out, s, n); err != nil {
			return nil, fmt.Errorf("shapes %s cannot be broadcast together", shapesString(shapes))
		}
	}
	return out, nil
}

// broadcastInto broadcasts out (ones where no shape reached yet) with s, right-aligned.
func broadcastInto(out, s []int, n *nodeCtx) error {
	off := len(out) - len(s)
	for i, d := range s {
		o := &out[off+i]
		switch {
		case d == *o || d == 1:
		case *o == 1:
			*o = d
		case d < 0 && *o >= 0:
			// the size wins; the run checks the symbol's value
		case *o < 0 && d >= 0:
			*o = d
		case d < 0 && *o < 0 && n != nil:
			*o = n.sym()
		default:
			return errors.New("incompatible")
		}
	}
	return nil
}

func shapesString(shapes [][]int) string {
	s := ""
	for i, sh := range shapes {
		if i > 0 {
			s += " and "
		}
		s += shapeString(sh)
	}
	return s
}

// runBroadcast is broadcastDims at run time into a fixed array (no allocation): up to three
// operand shapes (c may be nil).
func runBroadcast(dst *[maxRank]int, a, b, c []int) ([]int, error) {
	out := dst[:max(len(a), len(b), len(c))]
	for i := range out {
		out[i] = 1
	}
	for _, s := range [3][]int{a, b, c} {
		if err := broadcastInto(out, s, nil); err != nil {
			return nil, fmt.Errorf("shapes %s cannot be broadcast together", shapesString([][]int{a, b, c}))
		}
	}
	return out, nil
}

// bcast walks an output of a broadcast operation in runs: stretches of the innermost
// (coalesced) dimension along which every operand is either contiguous or a single repeated
// element. Elementwise kernels loop over a run with no index arithmetic.
type bcast struct {
	rank int
	dims [maxRank]int
	// strides[k][d] is operand k's stride along dimension d (0 where it is broadcast).
	strides [3][maxRank]int
	// step[k] is 1 when operand k is contiguous along runs, 0 when it repeats one element.
	step [3]int
	run  int // length of a run
	runs int // number of runs
}

// init prepares the walk of out (a broadcast of the operand shapes; c may be nil for two
// operands).
func (b *bcast) init(out, x, y, z []int) {
	shapes := [3][]int{x, y, z}
	var full [3][maxRank]int
	rank := len(out)
	for k, s := range shapes {
		st := 1
		off := rank - len(s)
		for d := rank - 1; d >= 0; d-- {
			if d < off || s[d-off] == 1 {
				full[k][d] = 0
				continue
			}
			full[k][d] = st
			st *= s[d-off]
		}
	}
	// Coalesce dimensions: drop size-1 ones, merge a dimension into the next inner one when
	// every operand's stride pattern continues across them.
	b.rank = 0
	for d := 0; d < rank; d++ {
		if out[d] == 1 {
			continue
		}
		if b.rank > 0 {
			prev := b.rank - 1
			merge := true
			for k := range shapes {
				inner, outer := full[k][d], b.strides[k][prev]
				if !(inner == 0 && outer == 0) && outer != inner*out[d] {
					merge = false
				}
			}
			if merge {
				b.dims[prev] *= out[d]
				for k := range shapes {
					b.strides[k][prev] = full[k][d]
				}
				continue
			}
		}
		b.dims[b.rank] = out[d]
		for k := range shapes {
			b.strides[k][b.rank] = full[k][d]
		}
		b.rank++
	}
	b.run, b.runs = 1, 1
	if b.rank > 0 {
		b.run = b.dims[b.rank-1]
		b.rank--
	}
	for k := range shapes {
		b.step[k] = 0
		if b.strides[k][b.rank] != 0 && b.run > 1 {
			b.step[k] = 1
		}
	}
	for d := range b.rank {
		b.runs *= b.dims[d]
	}
	if len(out) > 0 && product(out) == 0 {
		b.runs = 0
	}
}

// offsets gives the start of run r in each operand.
func (b *bcast) offsets(r int) (x, y, z int) {
	for d := b.rank - 1; d >= 0; d-- {
		i := r % b.dims[d]
		r /= b.dims[d]
		x += i * b.strides[0][d]
		y += i * b.strides[1][d]
		z += i * b.strides[2][d]
	}
	return x, y, z
}

// operand is operand k's data for the run that starts at off: the run itself, or the one
// element repeated along it.
func operand[T any](b *bcast, k int, s []T, off int) []T {
	if b.step[k] == 1 {
		return s[off : off+b.run]
	}
	return s[off : off+1]
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
