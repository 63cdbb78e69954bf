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
	_, wide := any(zero).(float64)
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
				if wide {
					leaf = walk8[T](nodes, l.depth, x)
				} else {
					leaf = walk8f32(nodes, l.depth, x)
				}
			} else if wide {
				leaf = walk8NaN[T](nodes, nanLow, l.depth, x)
			} else {
				leaf = walk8NaNf32(nodes, nanLow, l.depth, x)
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
	_, wide := any(block[0]).(float64)
	for k, r := range order {
		x := unsafe.Pointer(&block[k])
		nan := k >= clean
		t := 0
		for ; !nan && t+8 <= f.nTrees; t += 8 {
			var leaf [8]int32
			if wide {
				leaf = walk8Trees[T](unsafe.Pointer(&l.nodes[int32(t)*size]), l.depth, x)
			} else {
				leaf = walk8Treesf32(unsafe.Pointer(&l.nodes[int32(t)*size]), l.depth, x)
			}
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

// walk8f32 is walk8 for float32, written out so that the compiler folds each load into one
// addressed instruction: the node at p+8i, the value at x+4·offset+4k.
func walk8f32(p unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	i0, i1, i2, i3, i4, i5, i6, i7 := uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1)
	for range depth {
		n0 := (*pnode[float32])(unsafe.Add(p, uintptr(i0)*8))
		i0 = 2*i0 + b2u(n0.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n0.offset))*4+0)))
		n1 := (*pnode[float32])(unsafe.Add(p, uintptr(i1)*8))
		i1 = 2*i1 + b2u(n1.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n1.offset))*4+4)))
		n2 := (*pnode[float32])(unsafe.Add(p, uintptr(i2)*8))
		i2 = 2*i2 + b2u(n2.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n2.offset))*4+8)))
		n3 := (*pnode[float32])(unsafe.Add(p, uintptr(i3)*8))
		i3 = 2*i3 + b2u(n3.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n3.offset))*4+12)))
		n4 := (*pnode[float32])(unsafe.Add(p, uintptr(i4)*8))
		i4 = 2*i4 + b2u(n4.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n4.offset))*4+16)))
		n5 := (*pnode[float32])(unsafe.Add(p, uintptr(i5)*8))
		i5 = 2*i5 + b2u(n5.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n5.offset))*4+20)))
		n6 := (*pnode[float32])(unsafe.Add(p, uintptr(i6)*8))
		i6 = 2*i6 + b2u(n6.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n6.offset))*4+24)))
		n7 := (*pnode[float32])(unsafe.Add(p, uintptr(i7)*8))
		i7 = 2*i7 + b2u(n7.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n7.offset))*4+28)))
	}
	return [8]int32{int32(i0), int32(i1), int32(i2), int32(i3), int32(i4), int32(i5), int32(i6), int32(i7)}
}

// walk8NaNf32 is walk8NaN for float32, written out as walk8f32.
func walk8NaNf32(p, q unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	i0, i1, i2, i3, i4, i5, i6, i7 := uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1)
	for range depth {
		n0 := (*pnode[float32])(unsafe.Add(p, uintptr(i0)*8))
		v0 := *(*float32)(unsafe.Add(x, uintptr(uint32(n0.offset))*4+0))
		h0 := b2u(!(v0 <= n0.thresh))
		if v0 != v0 {
			h0 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i0))))
		}
		i0 = 2*i0 + h0
		n1 := (*pnode[float32])(unsafe.Add(p, uintptr(i1)*8))
		v1 := *(*float32)(unsafe.Add(x, uintptr(uint32(n1.offset))*4+4))
		h1 := b2u(!(v1 <= n1.thresh))
		if v1 != v1 {
			h1 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i1))))
		}
		i1 = 2*i1 + h1
		n2 := (*pnode[float32])(unsafe.Add(p, uintptr(i2)*8))
		v2 := *(*float32)(unsafe.Add(x, uintptr(uint32(n2.offset))*4+8))
		h2 := b2u(!(v2 <= n2.thresh))
		if v2 != v2 {
			h2 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i2))))
		}
		i2 = 2*i2 + h2
		n3 := (*pnode[float32])(unsafe.Add(p, uintptr(i3)*8))
		v3 := *(*float32)(unsafe.Add(x, uintptr(uint32(n3.offset))*4+12))
		h3 := b2u(!(v3 <= n3.thresh))
		if v3 != v3 {
			h3 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i3))))
		}
		i3 = 2*i3 + h3
		n4 := (*pnode[float32])(unsafe.Add(p, uintptr(i4)*8))
		v4 := *(*float32)(unsafe.Add(x, uintptr(uint32(n4.offset))*4+16))
		h4 := b2u(!(v4 <= n4.thresh))
		if v4 != v4 {
			h4 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i4))))
		}
		i4 = 2*i4 + h4
		n5 := (*pnode[float32])(unsafe.Add(p, uintptr(i5)*8))
		v5 := *(*float32)(unsafe.Add(x, uintptr(uint32(n5.offset))*4+20))
		h5 := b2u(!(v5 <= n5.thresh))
		if v5 != v5 {
			h5 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i5))))
		}
		i5 = 2*i5 + h5
		n6 := (*pnode[float32])(unsafe.Add(p, uintptr(i6)*8))
		v6 := *(*float32)(unsafe.Add(x, uintptr(uint32(n6.offset))*4+24))
		h6 := b2u(!(v6 <= n6.thresh))
		if v6 != v6 {
			h6 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i6))))
		}
		i6 = 2*i6 + h6
		n7 := (*pnode[float32])(unsafe.Add(p, uintptr(i7)*8))
		v7 := *(*float32)(unsafe.Add(x, uintptr(uint32(n7.offset))*4+28))
		h7 := b2u(!(v7 <= n7.thresh))
		if v7 != v7 {
			h7 = b2u(!*(*bool)(unsafe.Add(q, uintptr(i7))))
		}
		i7 = 2*i7 + h7
	}
	return [8]int32{int32(i0), int32(i1), int32(i2), int32(i3), int32(i4), int32(i5), int32(i6), int32(i7)}
}

// walk8Treesf32 is walk8Trees for float32, written out as walk8f32.
func walk8Treesf32(p0 unsafe.Pointer, depth int, x unsafe.Pointer) [8]int32 {
	stride := uintptr(8) << depth
	p1, p2, p3, p4 := unsafe.Add(p0, stride), unsafe.Add(p0, 2*stride), unsafe.Add(p0, 3*stride), unsafe.Add(p0, 4*stride)
	p5, p6, p7 := unsafe.Add(p0, 5*stride), unsafe.Add(p0, 6*stride), unsafe.Add(p0, 7*stride)
	i0, i1, i2, i3, i4, i5, i6, i7 := uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1), uint32(1)
	for range depth {
		n0 := (*pnode[float32])(unsafe.Add(p0, uintptr(i0)*8))
		i0 = 2*i0 + b2u(n0.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n0.offset))*4)))
		n1 := (*pnode[float32])(unsafe.Add(p1, uintptr(i1)*8))
		i1 = 2*i1 + b2u(n1.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n1.offset))*4)))
		n2 := (*pnode[float32])(unsafe.Add(p2, uintptr(i2)*8))
		i2 = 2*i2 + b2u(n2.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n2.offset))*4)))
		n3 := (*pnode[float32])(unsafe.Add(p3, uintptr(i3)*8))
		i3 = 2*i3 + b2u(n3.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n3.offset))*4)))
		n4 := (*pnode[float32])(unsafe.Add(p4, uintptr(i4)*8))
		i4 = 2*i4 + b2u(n4.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n4.offset))*4)))
		n5 := (*pnode[float32])(unsafe.Add(p5, uintptr(i5)*8))
		i5 = 2*i5 + b2u(n5.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n5.offset))*4)))
		n6 := (*pnode[float32])(unsafe.Add(p6, uintptr(i6)*8))
		i6 = 2*i6 + b2u(n6.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n6.offset))*4)))
		n7 := (*pnode[float32])(unsafe.Add(p7, uintptr(i7)*8))
		i7 = 2*i7 + b2u(n7.thresh < *(*float32)(unsafe.Add(x, uintptr(uint32(n7.offset))*4)))
	}
	return [8]int32{int32(i0), int32(i1), int32(i2), int32(i3), int32(i4), int32(i5), int32(i6), int32(i7)}
}

// b2u is b2i for uint32.
func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
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
