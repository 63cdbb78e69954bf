package model

import "unsafe"

// Walking the perfect layout. A block of up to treeRowBlock input rows is first transposed
// (feature-major, treeRowBlock values per feature), so that row k's value of the feature a node
// reads sits at the node's offset plus k: lanes that walk the same tree for consecutive rows
// share every pointer and differ only in a constant displacement. Blocks of eight rows or more
// take each tree in turn over the block, eight rows at a time; smaller blocks take each row over
// the trees, four trees at a time. Either way several independent walks advance together, so
// that their memory accesses overlap instead of waiting on each other, and no step branches on
// the data.
//
// The loops index without bounds checks. That is safe by construction: a walk of depth steps
// from node 1 stays below 2^depth within its tree (each step goes from i to 2i or 2i+1, and
// leaves end it at 2^depth + slot), and every node's offset is feature·treeRowBlock with the
// feature below the input's width (forest.checkInput), so the load stays in the block.

// scorePerfect adds every tree's leaves to the scores; block is the transpose buffer, returned
// (grown) for the next run. Within a block, rows without NaN come first, so that they walk with
// the kernel that does not test for NaN; order[k] is the batch row of block row k.
func scorePerfect[T float32 | float64](f *forest, l *perfectLayout[T], x []T, rows, cols int, s *treeScratch, block []T) []T {
	need := max(f.nFeatures, 1) * treeRowBlock
	if len(block) < need {
		block = make([]T, need)
	}
	var order [treeRowBlock]int32
	for r0 := 0; r0 < rows; r0 += treeRowBlock {
		n := min(treeRowBlock, rows-r0)
		clean, dirty := 0, n
		for r := range n {
			row := x[(r0+r)*cols : (r0+r)*cols+f.nFeatures]
			nan := false
			for _, v := range row {
				nan = nan || v != v
			}
			k := clean
			if nan {
				dirty--
				k = dirty
			} else {
				clean++
			}
			order[k] = int32(r0 + r)
			for j, v := range row {
				block[j*treeRowBlock+k] = v
			}
		}
		if n >= 8 {
			walkTreesOverRows(f, l, block, order[:n], clean, s)
		} else {
			walkRowsOverTrees(f, l, block, order[:n], clean, s)
		}
	}
	return block
}

// addLeaf adds tree t's leaf slot to batch row r's scores, without a call for the common case
// of a tree that feeds one target.
func addLeaf(f *forest, s *treeScratch, t int, slot int32, r int32) {
	if k := f.single[t]; k >= 0 && !f.wide {
		s.scores32[int(r)*f.nTargets+int(k)] += f.slotValue32[slot]
		return
	}
	f.add(t, slot, int(r), s)
}

// walkTreesOverRows takes each tree over the rows of a block, eight at a time; the first clean
// rows hold no NaN. The last group of eight may reach past the block's rows into stale ones;
// their leaves are not used.
func walkTreesOverRows[T float32 | float64](f *forest, l *perfectLayout[T], block []T, order []int32, clean int, s *treeScratch) {
	size := int32(1) << l.depth
	xb := unsafe.Pointer(&block[0])
	var zero T
	n := len(order)
	nt := f.nTargets
	for t := range f.nTrees {
		nodes := unsafe.Pointer(&l.nodes[int32(t)*size])
		nanLow := unsafe.Pointer(&l.nanLow[int32(t)*size])
		slots := f.slotsOf[t] - size
		single := int(f.single[t])
		fast := single >= 0 && !f.wide
		for k0 := 0; k0 < n; k0 += 8 {
			x := unsafe.Add(xb, uintptr(k0)*unsafe.Sizeof(zero))
			var leaf [8]int32
			if k0+8 <= clean {
				leaf = walk8[T](nodes, l.depth, x)
			} else {
				leaf = walk8NaN[T](nodes, nanLow, l.depth, x)
			}
			rows := order[k0:min(k0+8, n)]
			if fast {
				for k, r := range rows {
					s.scores32[int(r)*nt+single] += f.slotValue32[slots+leaf[k]]
				}
				continue
			}
			for k, r := range rows {
				f.add(t, slots+leaf[k], int(r), s)
			}
		}
	}
}

// walkRowsOverTrees takes each row of a block over the trees, four trees at a time.
func walkRowsOverTrees[T float32 | float64](f *forest, l *perfectLayout[T], block []T, order []int32, clean int, s *treeScratch) {
	size := int32(1) << l.depth
	for k, r := range order {
		x := unsafe.Pointer(&block[k])
		nan := k >= clean
		t := 0
		for ; !nan && t+8 <= f.nTrees; t += 8 {
			leaf := walk8Trees[T](unsafe.Pointer(&l.nodes[int32(t)*size]), l.depth, x)
			for j := range 8 {
				addLeaf(f, s, t+j, f.slotsOf[t+j]-size+leaf[j], r)
			}
		}
		for ; t+4 <= f.nTrees; t += 4 {
			first := int32(t) * size
			nodes := unsafe.Pointer(&l.nodes[first])
			var leaf [4]int32
			if nan {
				leaf = walk4TreesNaN[T](nodes, unsafe.Pointer(&l.nanLow[first]), l.depth, x)
			} else {
				leaf = walk4Trees[T](nodes, l.depth, x)
			}
			for j := range 4 {
				addLeaf(f, s, t+j, f.slotsOf[t+j]-size+leaf[j], r)
			}
		}
		for ; t < f.nTrees; t++ {
			first := int32(t) * size
			var leaf [8]int32
			if nan {
				leaf = walk8NaN[T](unsafe.Pointer(&l.nodes[first]), unsafe.Pointer(&l.nanLow[first]), l.depth, x)
			} else {
				leaf = walk8[T](unsafe.Pointer(&l.nodes[first]), l.depth, x)
			}
			addLeaf(f, s, t, f.slotsOf[t]-size+leaf[0], r)
		}
	}
}

// pnodeAt is the pnode at position i of a tree whose nodes start at p.
func pnodeAt[T float32 | float64](p unsafe.Pointer, i int32) *pnode[T] {
	return (*pnode[T])(unsafe.Add(p, uintptr(i)*unsafe.Sizeof(pnode[T]{})))
}

// blockValue is the block value at offset off+k from x.
func blockValue[T float32 | float64](x unsafe.Pointer, off int32, k uintptr) T {
	var z T
	return *(*T)(unsafe.Add(x, (uintptr(off)+k)*unsafe.Sizeof(z)))
}

// nanHigh is 1 when node i of the tree whose nanLow flags start at q sends NaN high.
func nanHigh(q unsafe.Pointer, i int32) int32 {
	return b2i(!*(*bool)(unsafe.Add(q, i)))
}

// b2i is 1 for true: the compiler turns it into a flag read, not a branch.
func b2i(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// walk8 walks one tree for the eight consecutive block rows starting at x, which hold no NaN.
// Canonical thresholds are never NaN, so "t < v" is "not v ≤ t".
func walk8[T float32 | float64](p unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	i0, i1, i2, i3, i4, i5, i6, i7 := int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1)
	for range depth {
		n0, n1, n2, n3 := pnodeAt[T](p, i0), pnodeAt[T](p, i1), pnodeAt[T](p, i2), pnodeAt[T](p, i3)
		n4, n5, n6, n7 := pnodeAt[T](p, i4), pnodeAt[T](p, i5), pnodeAt[T](p, i6), pnodeAt[T](p, i7)
		i0 = 2*i0 + b2i(n0.thresh < blockValue[T](x, n0.offset, 0))
		i1 = 2*i1 + b2i(n1.thresh < blockValue[T](x, n1.offset, 1))
		i2 = 2*i2 + b2i(n2.thresh < blockValue[T](x, n2.offset, 2))
		i3 = 2*i3 + b2i(n3.thresh < blockValue[T](x, n3.offset, 3))
		i4 = 2*i4 + b2i(n4.thresh < blockValue[T](x, n4.offset, 4))
		i5 = 2*i5 + b2i(n5.thresh < blockValue[T](x, n5.offset, 5))
		i6 = 2*i6 + b2i(n6.thresh < blockValue[T](x, n6.offset, 6))
		i7 = 2*i7 + b2i(n7.thresh < blockValue[T](x, n7.offset, 7))
	}
	return [8]int32{i0, i1, i2, i3, i4, i5, i6, i7}
}

// walk8NaN is walk8 for rows that may hold NaN; q is the tree's nanLow flags. A NaN takes the
// branch its node's missing-value flag gives, any other value the comparison's.
func walk8NaN[T float32 | float64](p, q unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	i0, i1, i2, i3, i4, i5, i6, i7 := int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1)
	for range depth {
		n0 := pnodeAt[T](p, i0)
		v0 := blockValue[T](x, n0.offset, 0)
		h0 := b2i(!(v0 <= n0.thresh))
		if v0 != v0 {
			h0 = nanHigh(q, i0)
		}
		i0 = 2*i0 + h0
		n1 := pnodeAt[T](p, i1)
		v1 := blockValue[T](x, n1.offset, 1)
		h1 := b2i(!(v1 <= n1.thresh))
		if v1 != v1 {
			h1 = nanHigh(q, i1)
		}
		i1 = 2*i1 + h1
		n2 := pnodeAt[T](p, i2)
		v2 := blockValue[T](x, n2.offset, 2)
		h2 := b2i(!(v2 <= n2.thresh))
		if v2 != v2 {
			h2 = nanHigh(q, i2)
		}
		i2 = 2*i2 + h2
		n3 := pnodeAt[T](p, i3)
		v3 := blockValue[T](x, n3.offset, 3)
		h3 := b2i(!(v3 <= n3.thresh))
		if v3 != v3 {
			h3 = nanHigh(q, i3)
		}
		i3 = 2*i3 + h3
		n4 := pnodeAt[T](p, i4)
		v4 := blockValue[T](x, n4.offset, 4)
		h4 := b2i(!(v4 <= n4.thresh))
		if v4 != v4 {
			h4 = nanHigh(q, i4)
		}
		i4 = 2*i4 + h4
		n5 := pnodeAt[T](p, i5)
		v5 := blockValue[T](x, n5.offset, 5)
		h5 := b2i(!(v5 <= n5.thresh))
		if v5 != v5 {
			h5 = nanHigh(q, i5)
		}
		i5 = 2*i5 + h5
		n6 := pnodeAt[T](p, i6)
		v6 := blockValue[T](x, n6.offset, 6)
		h6 := b2i(!(v6 <= n6.thresh))
		if v6 != v6 {
			h6 = nanHigh(q, i6)
		}
		i6 = 2*i6 + h6
		n7 := pnodeAt[T](p, i7)
		v7 := blockValue[T](x, n7.offset, 7)
		h7 := b2i(!(v7 <= n7.thresh))
		if v7 != v7 {
			h7 = nanHigh(q, i7)
		}
		i7 = 2*i7 + h7
	}
	return [8]int32{i0, i1, i2, i3, i4, i5, i6, i7}
}

// walk4Trees walks four consecutive trees, the first at p, for the block row at x.
func walk4Trees[T float32 | float64](p unsafe.Pointer, depth int, x unsafe.Pointer) [4]int32 {
	stride := uintptr(1<<depth) * unsafe.Sizeof(pnode[T]{})
	p1, p2, p3 := unsafe.Add(p, stride), unsafe.Add(p, 2*stride), unsafe.Add(p, 3*stride)
	i0, i1, i2, i3 := int32(1), int32(1), int32(1), int32(1)
	for range depth {
		n0, n1, n2, n3 := pnodeAt[T](p, i0), pnodeAt[T](p1, i1), pnodeAt[T](p2, i2), pnodeAt[T](p3, i3)
		i0 = 2*i0 + b2i(n0.thresh < blockValue[T](x, n0.offset, 0))
		i1 = 2*i1 + b2i(n1.thresh < blockValue[T](x, n1.offset, 0))
		i2 = 2*i2 + b2i(n2.thresh < blockValue[T](x, n2.offset, 0))
		i3 = 2*i3 + b2i(n3.thresh < blockValue[T](x, n3.offset, 0))
	}
	return [4]int32{i0, i1, i2, i3}
}

// walk8Trees walks eight consecutive trees, the first at p0, for the block row at x.
func walk8Trees[T float32 | float64](p0 unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	stride := uintptr(1<<depth) * unsafe.Sizeof(pnode[T]{})
	p1, p2, p3, p4, p5, p6, p7 := unsafe.Add(p0, 1*stride), unsafe.Add(p0, 2*stride), unsafe.Add(p0, 3*stride), unsafe.Add(p0, 4*stride), unsafe.Add(p0, 5*stride), unsafe.Add(p0, 6*stride), unsafe.Add(p0, 7*stride)
	i0, i1, i2, i3, i4, i5, i6, i7 := int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1), int32(1)
	for range depth {
		n0 := pnodeAt[T](p0, i0)
		i0 = 2*i0 + b2i(n0.thresh < blockValue[T](x, n0.offset, 0))
		n1 := pnodeAt[T](p1, i1)
		i1 = 2*i1 + b2i(n1.thresh < blockValue[T](x, n1.offset, 0))
		n2 := pnodeAt[T](p2, i2)
		i2 = 2*i2 + b2i(n2.thresh < blockValue[T](x, n2.offset, 0))
		n3 := pnodeAt[T](p3, i3)
		i3 = 2*i3 + b2i(n3.thresh < blockValue[T](x, n3.offset, 0))
		n4 := pnodeAt[T](p4, i4)
		i4 = 2*i4 + b2i(n4.thresh < blockValue[T](x, n4.offset, 0))
		n5 := pnodeAt[T](p5, i5)
		i5 = 2*i5 + b2i(n5.thresh < blockValue[T](x, n5.offset, 0))
		n6 := pnodeAt[T](p6, i6)
		i6 = 2*i6 + b2i(n6.thresh < blockValue[T](x, n6.offset, 0))
		n7 := pnodeAt[T](p7, i7)
		i7 = 2*i7 + b2i(n7.thresh < blockValue[T](x, n7.offset, 0))
	}
	return [8]int32{i0, i1, i2, i3, i4, i5, i6, i7}
}

// walk4TreesNaN is walk4Trees for a row that may hold NaN.
func walk4TreesNaN[T float32 | float64](p0, q0 unsafe.Pointer, depth int, x unsafe.Pointer) [4]int32 {
	n := uintptr(1) << depth
	stride := n * unsafe.Sizeof(pnode[T]{})
	p1, p2, p3 := unsafe.Add(p0, stride), unsafe.Add(p0, 2*stride), unsafe.Add(p0, 3*stride)
	q1, q2, q3 := unsafe.Add(q0, n), unsafe.Add(q0, 2*n), unsafe.Add(q0, 3*n)
	i0, i1, i2, i3 := int32(1), int32(1), int32(1), int32(1)
	for range depth {
		n0 := pnodeAt[T](p0, i0)
		v0 := blockValue[T](x, n0.offset, 0)
		h0 := b2i(!(v0 <= n0.thresh))
		if v0 != v0 {
			h0 = nanHigh(q0, i0)
		}
		i0 = 2*i0 + h0
		n1 := pnodeAt[T](p1, i1)
		v1 := blockValue[T](x, n1.offset, 0)
		h1 := b2i(!(v1 <= n1.thresh))
		if v1 != v1 {
			h1 = nanHigh(q1, i1)
		}
		i1 = 2*i1 + h1
		n2 := pnodeAt[T](p2, i2)
		v2 := blockValue[T](x, n2.offset, 0)
		h2 := b2i(!(v2 <= n2.thresh))
		if v2 != v2 {
			h2 = nanHigh(q2, i2)
		}
		i2 = 2*i2 + h2
		n3 := pnodeAt[T](p3, i3)
		v3 := blockValue[T](x, n3.offset, 0)
		h3 := b2i(!(v3 <= n3.thresh))
		if v3 != v3 {
			h3 = nanHigh(q3, i3)
		}
		i3 = 2*i3 + h3
	}
	return [4]int32{i0, i1, i2, i3}
}
