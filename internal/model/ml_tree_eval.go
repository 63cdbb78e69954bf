package model

import (
	"fmt"
	"math"
	"slices"
)

// Evaluation of a compiled forest. Scores accumulate per row and target, trees in attribute
// order, in float32 (float64 for DOUBLE inputs); the aggregate's division, base values and the
// post transform follow in float64, and the results are rounded to float32, the outputs' type.

// treeRowBlock bounds the rows walked per tree before moving to the next tree, so that a block
// of input rows stays in cache while every tree passes over it.
const treeRowBlock = 64

// treeScratch is one run's working memory; it keeps its buffers from run to run. Scores add up
// in scores (wide forests) or scores32.
type treeScratch struct {
	scores   []float64
	scores32 []float32
	has      []bool
	row      []float64 // one row's scores, widened
	// block32 and block64 hold a block of input rows transposed, for the perfect layout.
	block32 []float32
	block64 []float64
}

func (s *treeScratch) size(n int, wide, minmax bool) {
	if wide {
		s.scores = slices.Grow(s.scores[:0], n)[:n]
		clear(s.scores)
	} else {
		s.scores32 = slices.Grow(s.scores32[:0], n)[:n]
		clear(s.scores32)
	}
	if minmax {
		s.has = slices.Grow(s.has[:0], n)[:n]
		clear(s.has)
	}
}

// scoreFloat32 fills s.scores with the raw aggregated scores of rows rows of cols float32 values.
func (f *forest) scoreFloat32(x []float32, rows, cols int, s *treeScratch) error {
	return score(f, f.perfect32, f.general32, x, rows, cols, s, &s.block32)
}

// scoreFloat64 is scoreFloat32 for DOUBLE input.
func (f *forest) scoreFloat64(x []float64, rows, cols int, s *treeScratch) error {
	return score(f, f.perfect64, f.general64, x, rows, cols, s, &s.block64)
}

// score runs whichever layout the forest has for the input's precision.
func score[T float32 | float64](f *forest, perfect *perfectLayout[T], general *generalLayout[T], x []T, rows, cols int, s *treeScratch, block *[]T) error {
	if err := f.checkInput(len(x), rows, cols); err != nil {
		return err
	}
	s.size(rows*f.nTargets, f.wide, f.agg >= aggMin)
	switch {
	case perfect != nil:
		*block = scorePerfect(f, perfect, x, rows, cols, s, *block)
	case general != nil:
		scoreGeneral(f, general, x, rows, cols, s)
	case f.modal != nil:
		scoreModal(f, x, rows, cols, s)
	default:
		return fmt.Errorf("the forest was compiled for the other floating-point precision")
	}
	f.aggregateScores(s, rows)
	return nil
}

func (f *forest) checkInput(n, rows, cols int) error {
	if cols < f.nFeatures {
		return fmt.Errorf("the trees read feature %d, the input has %d", f.nFeatures-1, cols)
	}
	if n < rows*cols {
		return fmt.Errorf("%d rows of %d features need %d values, got %d", rows, cols, rows*cols, n)
	}
	return nil
}

// add adds leaf slot's weights for tree t to row r's scores.
func (f *forest) add(t int, slot int32, r int, s *treeScratch) {
	if f.wide {
		accumulate(f, f.slotValue, f.spanW, s.scores, s.has, t, slot, r)
	} else {
		accumulate(f, f.slotValue32, f.spanW32, s.scores32, s.has, t, slot, r)
	}
}

func accumulate[S float32 | float64](f *forest, slotValue, spanW, scores []S, hasScore []bool, t int, slot int32, r int) {
	sc := scores[r*f.nTargets : (r+1)*f.nTargets]
	if k := f.single[t]; k >= 0 {
		sc[k] += slotValue[slot]
		return
	}
	start, end := f.slotStart[slot], f.slotStart[slot+1]
	if f.agg <= aggAverage {
		for j := start; j < end; j++ {
			sc[f.spanTgt[j]] += spanW[j]
		}
		return
	}
	has := hasScore[r*f.nTargets : (r+1)*f.nTargets]
	for j := start; j < end; j++ {
		k, w := f.spanTgt[j], spanW[j]
		if !has[k] || (f.agg == aggMin && w < sc[k]) || (f.agg == aggMax && w > sc[k]) {
			sc[k] = w
		}
		has[k] = true
	}
}

// aggregateScores applies AVERAGE's division; MIN and MAX leave 0 where no tree voted.
func (f *forest) aggregateScores(s *treeScratch, rows int) {
	if f.agg != aggAverage {
		return
	}
	n := rows * f.nTargets
	if f.wide {
		for i := range s.scores[:n] {
			s.scores[i] /= float64(f.nTrees)
		}
		return
	}
	for i := range s.scores32[:n] {
		s.scores32[i] /= float32(f.nTrees)
	}
}

// rowScores copies row r's aggregated scores, widened, into buf.
func (f *forest) rowScores(s *treeScratch, r int, buf []float64) []float64 {
	nt := f.nTargets
	buf = slices.Grow(buf[:0], nt)[:nt]
	if f.wide {
		copy(buf, s.scores[r*nt:(r+1)*nt])
		return buf
	}
	for k, v := range s.scores32[r*nt : (r+1)*nt] {
		buf[k] = float64(v)
	}
	return buf
}

// hasNaN tells whether any of the first cols values of each row in [r0, r1) is NaN.
func hasNaN[T float32 | float64](x []T, r0, r1, cols int) bool {
	for _, v := range x[r0*cols : r1*cols] {
		if v != v {
			return true
		}
	}
	return false
}

// scoreGeneral walks trees kept as they are, one (tree, row) pair at a time.
func scoreGeneral[T float32 | float64](f *forest, l *generalLayout[T], x []T, rows, cols int, s *treeScratch) {
	for r0 := 0; r0 < rows; r0 += treeRowBlock {
		r1 := min(rows, r0+treeRowBlock)
		for t, root := range l.root {
			for r := r0; r < r1; r++ {
				xr := x[r*cols : (r+1)*cols]
				i := root
				for {
					fe := l.feature[i]
					if fe < 0 {
						break
					}
					v := xr[fe]
					switch {
					case v <= l.thresh[i]:
						i = l.low[i]
					case v != v && l.nanLow[i]:
						i = l.low[i]
					default:
						i = l.high[i]
					}
				}
				f.add(t, l.low[i], r, s)
			}
		}
	}
}

// scoreModal walks trees that keep every node's own comparison, in float64.
func scoreModal[T float32 | float64](f *forest, x []T, rows, cols int, s *treeScratch) {
	l := f.modal
	for t, root := range l.root {
		for r := range rows {
			xr := x[r*cols : (r+1)*cols]
			i := root
			for l.feature[i] >= 0 {
				v := float64(xr[l.feature[i]])
				th := l.thresh[i]
				var yes bool
				switch l.mode[i] {
				case modeLEQ:
					yes = v <= th
				case modeLT:
					yes = v < th
				case modeGTE:
					yes = v >= th
				case modeGT:
					yes = v > th
				case modeEQ:
					yes = v == th
				case modeNEQ:
					yes = v != th
				}
				if v != v && l.missing[i] {
					yes = true
				}
				if yes {
					i = l.trueN[i]
				} else {
					i = l.falseN[i]
				}
			}
			f.add(t, l.trueN[i], r, s)
		}
	}
}

// regress writes a regressor's outputs, rows × nTargets, from the aggregated scores.
func (f *forest) regress(s *treeScratch, rows int, out []float32) { regressInto(f, s, rows, out) }

// regressInto is regress for an output of either precision: TreeEnsemble (ai.onnx.ml 5)
// writes its input's type.
func regressInto[T float32 | float64](f *forest, s *treeScratch, rows int, out []T) {
	nt := f.nTargets
	for r := range rows {
		s.row = f.rowScores(s, r, s.row)
		sc := s.row
		for k := range f.base {
			sc[k] += f.base[k]
		}
		f.post.apply(sc)
		for k, v := range sc {
			out[r*nt+k] = T(v)
		}
	}
}

// classify writes a classifier's probabilities (rows × classes) and each row's class index.
func (f *forest) classify(s *treeScratch, rows int, probs []float32, label []int32) {
	nt := f.nTargets
	var pair [2]float64
	for r := range rows {
		s.row = f.rowScores(s, r, s.row)
		sc := s.row
		if f.binary {
			v := sc[0]
			if len(f.base) > 0 {
				v += f.base[0]
			}
			pair = f.binaryPair(v)
			sc = pair[:]
		} else {
			for k := range f.base {
				sc[k] += f.base[k]
			}
			f.post.apply(sc)
		}
		best := 0
		for k, v := range sc {
			probs[r*nt+k] = float32(v)
			if v > sc[best] {
				best = k
			}
		}
		label[r] = int32(best)
	}
}

// binaryPair expands the single-column binary score s into both classes' outputs. With NONE,
// onnxruntime writes (1−s, s) when every weight is positive (a forest's vote share) and (−s, s)
// otherwise (a raw margin); the other transforms apply to (−s, s), as in ONNX's reference
// evaluator.
func (f *forest) binaryPair(s float64) [2]float64 {
	switch f.post {
	case postNone:
		if f.allPositive {
			return [2]float64{1 - s, s}
		}
		return [2]float64{-s, s}
	case postProbit:
		p := [2]float64{1 - s, s}
		f.post.apply(p[:])
		return p
	}
	p := [2]float64{-s, s}
	f.post.apply(p[:])
	return p
}

// apply transforms one row of scores in place, as onnxruntime's ml operators do.
func (p postTransform) apply(v []float64) {
	switch p {
	case postLogistic:
		for i, x := range v {
			v[i] = logistic(x)
		}
	case postSoftmax:
		softmax(v)
	case postSoftmaxZero:
		softmaxZero(v)
	case postProbit:
		for i, x := range v {
			v[i] = probit(x)
		}
	}
}

func logistic(x float64) float64 {
	e := 1 / (1 + math.Exp(-math.Abs(x)))
	if x < 0 {
		return 1 - e
	}
	return e
}

func softmax(v []float64) {
	m := math.Inf(-1)
	for _, x := range v {
		m = max(m, x)
	}
	sum := 0.0
	for i, x := range v {
		v[i] = math.Exp(x - m)
		sum += v[i]
	}
	for i := range v {
		v[i] /= sum
	}
}

// softmaxZero is softmax that leaves zero scores (classes no tree voted for) at zero.
func softmaxZero(v []float64) {
	m := math.Inf(-1)
	for _, x := range v {
		m = max(m, x)
	}
	expNegMax := math.Exp(-m)
	sum := 0.0
	for i, x := range v {
		if x > 1e-7 || x < -1e-7 {
			v[i] = math.Exp(x - m)
			sum += v[i]
		} else {
			v[i] = x * expNegMax
		}
	}
	if sum == 0 {
		for i := range v {
			v[i] = 0.5
		}
		return
	}
	for i := range v {
		v[i] /= sum
	}
}

// probit is √2·erf⁻¹(2x−1) with the approximation of erf⁻¹ that onnxruntime and ONNX's
// reference evaluator use (Winitzki's, a = 0.147), so that answers agree with theirs.
func probit(x float64) float64 {
	y := 2*x - 1
	sgn := 1.0
	if y < 0 {
		sgn = -1
	}
	y = (1 - y) * (1 + y)
	if y == 0 {
		return 0
	}
	lg := math.Log(y)
	a := 2/(math.Pi*0.147) + 0.5*lg
	b := 1 / 0.147 * lg
	return math.Sqrt2 * sgn * math.Sqrt(-a+math.Sqrt(a*a-b))
}
