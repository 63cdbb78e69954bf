package model

import (
	"fmt"
	"math"
)

// SVMClassifier and SVMRegressor (ai.onnx.ml 1, unchanged through 5): what skl2onnx writes for
// scikit-learn's SVC, NuSVC, SVR, NuSVR and OneClassSVM, and onnxmltools for libsvm models.
//
// A row's kernel values against every support vector are computed first (LINEAR x·v, POLY
// (γ x·v + c₀)^d, RBF exp(−γ‖x−v‖²) from the differences, SIGMOID tanh(γ x·v + c₀)), in float64
// as libsvm computes them, so answers stay within float32 rounding of scikit-learn's (onnxruntime
// computes them in float32). The classifier is libsvm's one-against-one: for each pair of classes
// i < j the decision value is ρ_ij plus the coefficients of i's support vectors in row j−1 and of
// j's in row i, each times its kernel value; a positive value is a vote for i. The label is the
// class with the most votes (the first on ties), as libsvm and onnxruntime label, also when
// probabilities are asked for: scikit-learn's predict does the same, so its label can disagree
// with the larger probability. With prob_a and prob_b the scores are libsvm's probabilities:
// each pair's Platt sigmoid 1/(1+e^(A·f+B)), clipped to [1e-7, 1−1e-7], coupled into one
// distribution by Wu, Lin and Weng's second method (libsvm's multiclass_probability, the same
// iteration and stopping rule). Without them the scores are the decision values, one per pair;
// the binary form writes (−f, f), f being the first class's. With no vectors_per_class (the
// liblinear form) each class has a coefficient row and the score is x·w_c + ρ₀.

func init() {
	register(
		opImpl{domain: domainML, name: "SVMClassifier", minOpset: 1, maxOpset: maxOpsetML, compile: compileSVMClassifier},
		opImpl{domain: domainML, name: "SVMRegressor", minOpset: 1, maxOpset: maxOpsetML, compile: compileSVMRegressor},
	)
}

type svmKernelType uint8

const (
	svmLinear svmKernelType = iota
	svmPoly
	svmRBF
	svmSigmoid
)

var svmKernelNames = map[string]svmKernelType{"LINEAR": svmLinear, "POLY": svmPoly, "RBF": svmRBF, "SIGMOID": svmSigmoid}

// maxSVMClasses bounds the classes of the one-against-one form, whose probabilities couple a
// classes × classes matrix per row.
const maxSVMClasses = 4096

// svmVectors is a kernel over support vectors: vectors rows of features values.
type svmVectors struct {
	kernel               svmKernelType
	gamma, coef0, degree float64
	sv                   []float64
	vectors, features    int
}

// readSVMKernel reads kernel_type and kernel_params.
func readSVMKernel(n *nodeCtx, op string) (svmVectors, error) {
	var s svmVectors
	name, err := n.attrString("kernel_type", "LINEAR")
	if err != nil {
		return s, err
	}
	var ok bool
	if s.kernel, ok = svmKernelNames[name]; !ok {
		return s, unsupported("%s kernel_type %q is not one of LINEAR, POLY, RBF, SIGMOID", op, name)
	}
	params, has, err := n.attrFloats("kernel_params")
	if err != nil {
		return s, err
	}
	if has {
		if len(params) != 3 {
			return s, fmt.Errorf("has %d kernel_params, want 3 (gamma, coef0, degree)", len(params))
		}
		s.gamma, s.coef0, s.degree = float64(params[0]), float64(params[1]), float64(params[2])
	}
	// onnxruntime raises to a float degree, ONNX's reference evaluator truncates it: only the
	// integers (libsvm's degrees) mean the same to both.
	if s.kernel == svmPoly && s.degree != math.Trunc(s.degree) {
		return s, unsupported("%s POLY kernel of degree %v: only whole degrees are supported", op, s.degree)
	}
	return s, nil
}

// readSupportVectors reads support_vectors as vectors rows against an input of cols columns
// (negative when known only at run time).
func (s *svmVectors) readSupportVectors(n *nodeCtx, vectors, cols int) error {
	sv, _, err := n.attrFloats("support_vectors")
	if err != nil {
		return err
	}
	if vectors == 0 {
		if len(sv) > 0 {
			return fmt.Errorf("has %d support_vectors values but no support vectors counted", len(sv))
		}
		return nil
	}
	if len(sv) == 0 || len(sv)%vectors != 0 {
		return fmt.Errorf("has %d support_vectors values, not a whole number of features for %d support vectors", len(sv), vectors)
	}
	s.vectors, s.features = vectors, len(sv)/vectors
	if cols >= 0 && cols != s.features {
		return fmt.Errorf("has support vectors of %d features, the input %d", s.features, cols)
	}
	s.sv = make([]float64, len(sv))
	for i, v := range sv {
		s.sv[i] = float64(v)
	}
	return nil
}

// readSVMPost reads post_transform.
func readSVMPost(n *nodeCtx, op string) (postTransform, string, error) {
	name, err := n.attrString("post_transform", "NONE")
	if err != nil {
		return 0, "", err
	}
	p, ok := postNames[name]
	if !ok {
		return 0, "", unsupported("%s post_transform %q is not one of NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO, PROBIT", op, name)
	}
	return p, name, nil
}

// kernelRow writes the kernel of x against every support vector into k.
func kernelRow[T float32 | float64 | int64 | int32](s *svmVectors, x []T, k []float64) {
	f := s.features
	for j := range s.vectors {
		v := s.sv[j*f : (j+1)*f]
		v = v[:len(x)]
		sum := 0.0
		if s.kernel == svmRBF {
			for m, xv := range x {
				d := float64(xv) - v[m]
				sum += d * d
			}
			k[j] = math.Exp(-s.gamma * sum)
			continue
		}
		for m, xv := range x {
			sum += float64(xv) * v[m]
		}
		switch s.kernel {
		case svmPoly:
			sum = math.Pow(s.gamma*sum+s.coef0, s.degree)
		case svmSigmoid:
			sum = math.Tanh(s.gamma*sum + s.coef0)
		}
		k[j] = sum
	}
}

// kernels writes rows × vectors kernel values of X into k.
func (s *svmVectors) kernels(X *Tensor, rows int, k []float64) error {
	if cols := X.Shape[len(X.Shape)-1]; cols != s.features {
		return fmt.Errorf("the model's support vectors have %d features, the input %d", s.features, cols)
	}
	switch X.DType {
	case Float32:
		kernelRows(s, data[float32](X), rows, k)
	case Float64:
		kernelRows(s, data[float64](X), rows, k)
	case Int64:
		kernelRows(s, data[int64](X), rows, k)
	case Int32:
		kernelRows(s, data[int32](X), rows, k)
	default:
		return fmt.Errorf("input type %s", X.DType)
	}
	return nil
}

func kernelRows[T float32 | float64 | int64 | int32](s *svmVectors, x []T, rows int, k []float64) {
	f, v := s.features, s.vectors
	for r := range rows {
		kernelRow(s, x[r*f:(r+1)*f], k[r*v:(r+1)*v])
	}
}

// svmClassifier is a compiled SVMClassifier: immutable after compile.
type svmClassifier struct {
	svmVectors
	classes int
	// The one-against-one form: vectors per class, where each class's start, coefficients
	// (classes−1) × vectors, one rho per pair, and prob_a, prob_b (one per pair, or none).
	perClass, start []int
	coef            []float64
	rho             []float64
	probA, probB    []float64
	// linear is the liblinear form: no support vectors, lin scores each class.
	linear *linear
	post   postTransform
	width  int // scores per row
}

func (c *svmClassifier) pairs() int { return c.classes * (c.classes - 1) / 2 }

func compileSVMClassifier(n *nodeCtx) (kernel, error) {
	const op = "SVMClassifier"
	if err := n.arity(1, 1, 2, 2); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int64, Int32); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, op, n.opset, []string{"classlabels_ints", "classlabels_strings", "coefficients",
		"kernel_params", "kernel_type", "post_transform", "prob_a", "prob_b", "rho", "support_vectors",
		"vectors_per_class"}, nil); err != nil {
		return nil, err
	}
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	labels, err := readClassLabels(n, "classlabels_ints", "classlabels_strings")
	if err != nil {
		return nil, err
	}
	c, err := readSVMClassifier(n, labels.len(), cols)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, labels.dtype(), []int{rows})
	n.setOutTensor(1, Float32, []int{rows, c.width})
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		rows := featureRows(X)
		idx := x.scratch(0)
		if err := idx.reset(Int32, rows); err != nil {
			return err
		}
		if err := out[1].reset(Float32, rows, c.width); err != nil {
			return err
		}
		if err := c.run(x, X, rows, out[1].Float32, idx.Int32); err != nil {
			return err
		}
		return labels.write(out[0], idx.Int32)
	}), nil
}

// readSVMClassifier reads and checks an SVMClassifier's attributes for classes labels against
// an input of cols columns (negative when known only at run time).
func readSVMClassifier(n *nodeCtx, classes, cols int) (*svmClassifier, error) {
	const op = "SVMClassifier"
	if classes < 2 {
		return nil, unsupported("%s with %d class label: it needs at least 2", op, classes)
	}
	s, err := readSVMKernel(n, op)
	if err != nil {
		return nil, err
	}
	c := &svmClassifier{svmVectors: s, classes: classes, width: classes}
	var postName string
	if c.post, postName, err = readSVMPost(n, op); err != nil {
		return nil, err
	}
	perClass, _, err := n.attrInts("vectors_per_class")
	if err != nil {
		return nil, err
	}
	lists, err := floatLists(n, "support_vectors", "coefficients", "rho", "prob_a", "prob_b")
	if err != nil {
		return nil, err
	}
	sv, coef, rho, probA, probB := lists[0], lists[1], lists[2], lists[3], lists[4]
	vectors := 0
	for _, v := range perClass {
		// Each count is bounded by the support vectors present, so the sum cannot overflow.
		if v < 0 || v > int64(len(sv)) {
			return nil, fmt.Errorf("vectors_per_class has %d, with %d support_vectors values", v, len(sv))
		}
		vectors += int(v)
	}
	if len(probA) != len(probB) {
		return nil, fmt.Errorf("has %d prob_a and %d prob_b", len(probA), len(probB))
	}
	if vectors == 0 {
		// The liblinear form: onnxruntime and the reference evaluator ignore the kernel there.
		if err := c.readSupportVectors(n, 0, cols); err != nil {
			return nil, err
		}
		if len(probA) > 0 {
			return nil, unsupported("%s has prob_a and prob_b but no support vectors: probabilities need the one-against-one form", op)
		}
		if len(rho) != 1 {
			return nil, fmt.Errorf("has %d rho without support vectors, want 1", len(rho))
		}
		l := &linear{targets: classes, post: c.post}
		if len(coef) == 0 || len(coef)%classes != 0 {
			return nil, fmt.Errorf("has %d coefficients, not a whole number of rows for %d classes", len(coef), classes)
		}
		l.features = len(coef) / classes
		if cols >= 0 && cols != l.features {
			return nil, fmt.Errorf("has %d coefficients per class, the input %d features", l.features, cols)
		}
		l.w = make([]float64, len(coef))
		for i, v := range coef {
			l.w[i] = float64(v)
		}
		l.b = make([]float64, classes)
		for i := range l.b {
			l.b[i] = float64(rho[0])
		}
		c.linear = l
		return c, nil
	}
	if classes > maxSVMClasses {
		return nil, unsupported("%s with %d classes: this runtime takes up to %d", op, classes, maxSVMClasses)
	}
	if len(perClass) != classes {
		return nil, fmt.Errorf("has %d vectors_per_class for %d class labels", len(perClass), classes)
	}
	if err := c.readSupportVectors(n, vectors, cols); err != nil {
		return nil, err
	}
	c.perClass, c.start = make([]int, classes), make([]int, classes)
	at := 0
	for i, v := range perClass {
		c.perClass[i], c.start[i] = int(v), at
		at += int(v)
	}
	if len(coef) != (classes-1)*vectors {
		return nil, fmt.Errorf("has %d coefficients, want %d (classes − 1 rows of %d support vectors)", len(coef), (classes-1)*vectors, vectors)
	}
	pairs := c.pairs()
	if len(rho) != pairs {
		return nil, fmt.Errorf("has %d rho, want %d (one per pair of %d classes)", len(rho), pairs, classes)
	}
	if len(probA) != 0 && len(probA) != pairs {
		return nil, fmt.Errorf("has %d prob_a and prob_b, want %d (one per pair of %d classes)", len(probA), pairs, classes)
	}
	c.coef, c.rho, c.probA, c.probB = widen(coef), widen(rho), widen(probA), widen(probB)
	if len(probA) == 0 {
		c.width = max(pairs, 2)
		// The binary decision value becomes (−f, f) before the transform; PROBIT of a margin
		// has no meaning (the reference evaluator refuses it, onnxruntime leaves a column unset).
		if classes == 2 && c.post == postProbit {
			return nil, unsupported("%s post_transform %s on a binary classifier's decision values", op, postName)
		}
	}
	return c, nil
}

// floatLists reads FLOATS attributes, empty when absent.
func floatLists(n *nodeCtx, names ...string) ([][]float32, error) {
	out := make([][]float32, len(names))
	for i, name := range names {
		v, _, err := n.attrFloats(name)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// run scores rows of X into scores (rows × c.width) and writes each row's class index.
func (c *svmClassifier) run(x *exec, X *Tensor, rows int, scores []float32, idx []int32) error {
	if c.linear != nil {
		sc := x.scratch(1)
		if err := sc.reset(Float64, rows*c.classes); err != nil {
			return err
		}
		if err := c.linear.scores(X, rows, sc.Float64); err != nil {
			return err
		}
		for r := range rows {
			row := sc.Float64[r*c.classes : (r+1)*c.classes]
			best := 0
			for k, v := range row {
				if v > row[best] {
					best = k
				}
			}
			idx[r] = int32(best)
			c.post.apply(row)
			for k, v := range row {
				scores[r*c.classes+k] = float32(v)
			}
		}
		return nil
	}
	kt, dec, votes, work := x.scratch(1), x.scratch(2), x.scratch(3), x.scratch(4)
	pairs := c.pairs()
	if err := kt.reset(Float64, rows*c.vectors); err != nil {
		return err
	}
	if err := dec.reset(Float64, pairs); err != nil {
		return err
	}
	if err := votes.reset(Int32, c.classes); err != nil {
		return err
	}
	if len(c.probA) > 0 {
		// Pairwise probabilities, the coupling matrix, Q·p and p.
		if err := work.reset(Float64, 2*c.classes*c.classes+2*c.classes); err != nil {
			return err
		}
	}
	if err := c.kernels(X, rows, kt.Float64); err != nil {
		return err
	}
	for r := range rows {
		c.decisions(kt.Float64[r*c.vectors:(r+1)*c.vectors], dec.Float64, votes.Int32)
		best := 0
		for k, v := range votes.Int32 {
			if v > votes.Int32[best] {
				best = k
			}
		}
		idx[r] = int32(best)
		out := scores[r*c.width : (r+1)*c.width]
		switch {
		case len(c.probA) > 0:
			p := c.probabilities(dec.Float64, work.Float64)
			c.post.apply(p)
			for k, v := range p {
				out[k] = float32(v)
			}
		case c.classes == 2:
			pair := [2]float64{-dec.Float64[0], dec.Float64[0]}
			c.post.apply(pair[:])
			out[0], out[1] = float32(pair[0]), float32(pair[1])
		default:
			c.post.apply(dec.Float64)
			for k, v := range dec.Float64 {
				out[k] = float32(v)
			}
		}
	}
	return nil
}

// decisions computes one row's decision value per pair from its kernel values k, and the votes.
func (c *svmClassifier) decisions(k, dec []float64, votes []int32) {
	clear(votes)
	v := c.vectors
	p := 0
	for i := range c.classes {
		si, ni := c.start[i], c.perClass[i]
		for j := i + 1; j < c.classes; j++ {
			sj, nj := c.start[j], c.perClass[j]
			s := c.rho[p]
			ci := c.coef[(j-1)*v+si : (j-1)*v+si+ni]
			for m, w := range ci {
				s += w * k[si+m]
			}
			cj := c.coef[i*v+sj : i*v+sj+nj]
			for m, w := range cj {
				s += w * k[sj+m]
			}
			dec[p] = s
			if s > 0 {
				votes[i]++
			} else {
				votes[j]++
			}
			p++
		}
	}
}

// probabilities couples the pairs' Platt probabilities into one distribution over the classes
// (work holds 2·classes² + 2·classes values) and returns it, a slice of work.
func (c *svmClassifier) probabilities(dec, work []float64) []float64 {
	n := c.classes
	r, q := work[:n*n], work[n*n:2*n*n]
	qp, p := work[2*n*n:2*n*n+n], work[2*n*n+n:2*n*n+2*n]
	const minProb = 1e-7
	at := 0
	for i := range n {
		for j := i + 1; j < n; j++ {
			v := min(max(plattSigmoid(dec[at], c.probA[at], c.probB[at]), minProb), 1-minProb)
			r[i*n+j], r[j*n+i] = v, 1-v
			at++
		}
	}
	coupleProbabilities(n, r, q, qp, p)
	return p
}

// plattSigmoid is 1/(1+e^(A·f+B)) without overflow.
func plattSigmoid(f, a, b float64) float64 {
	z := f*a + b
	if z >= 0 {
		e := math.Exp(-z)
		return e / (1 + e)
	}
	return 1 / (1 + math.Exp(z))
}

// coupleProbabilities finds the distribution p over n classes that best agrees with the
// pairwise probabilities r (r[i][j] of i against j): it minimises Σ_i Σ_j≠i (r_ji p_i − r_ij p_j)²
// subject to Σ p = 1 (Wu, Lin and Weng 2004, method 2), by libsvm's coordinate descent from
// the uniform distribution, stopping when every (Qp)_t is within 0.005/n of pᵀQp or after
// max(100, n) sweeps — the same rule libsvm, onnxruntime and ONNX's reference evaluator use,
// so the answers agree to rounding, not merely to the tolerance.
func coupleProbabilities(n int, r, q, qp, p []float64) {
	for t := range n {
		p[t] = 1 / float64(n)
		q[t*n+t] = 0
		for j := range t {
			q[t*n+t] += r[j*n+t] * r[j*n+t]
			q[t*n+j] = q[j*n+t]
		}
		for j := t + 1; j < n; j++ {
			q[t*n+t] += r[j*n+t] * r[j*n+t]
			q[t*n+j] = -r[j*n+t] * r[t*n+j]
		}
	}
	eps := 0.005 / float64(n)
	for range max(100, n) {
		pqp := 0.0
		for t := range n {
			qp[t] = 0
			for j := range n {
				qp[t] += q[t*n+j] * p[j]
			}
			pqp += p[t] * qp[t]
		}
		maxErr := 0.0
		for t := range n {
			maxErr = max(maxErr, math.Abs(qp[t]-pqp))
		}
		if maxErr < eps {
			break
		}
		for t := range n {
			diff := (-qp[t] + pqp) / q[t*n+t]
			p[t] += diff
			pqp = (pqp + diff*(diff*q[t*n+t]+2*qp[t])) / (1 + diff) / (1 + diff)
			for j := range n {
				qp[j] = (qp[j] + diff*q[t*n+j]) / (1 + diff)
				p[j] /= 1 + diff
			}
		}
	}
}

// svmRegressor is a compiled SVMRegressor: immutable after compile.
type svmRegressor struct {
	svmVectors
	coef     []float64 // one per support vector, or the linear form's weights
	rho      float64
	oneClass bool
}

func compileSVMRegressor(n *nodeCtx) (kernel, error) {
	const op = "SVMRegressor"
	if err := n.arity(1, 1, 1, 1); err != nil {
		return nil, err
	}
	if err := n.needTypes(0, Float32, Float64, Int64, Int32); err != nil {
		return nil, err
	}
	if err := checkAttrNames(n, op, n.opset, []string{"coefficients", "kernel_params", "kernel_type", "n_supports",
		"one_class", "post_transform", "rho", "support_vectors"}, nil); err != nil {
		return nil, err
	}
	rows, cols, err := rowsCols(n.shape(0))
	if err != nil {
		return nil, err
	}
	g, err := readSVMRegressor(n, cols)
	if err != nil {
		return nil, err
	}
	n.setOutTensor(0, Float32, []int{rows, 1})
	return mlRowKernel(func(x *exec, in, out []*Tensor) error {
		X := in[0]
		rows := featureRows(X)
		k := x.scratch(0)
		if err := k.reset(Float64, rows*g.vectors); err != nil {
			return err
		}
		if err := g.kernels(X, rows, k.Float64); err != nil {
			return err
		}
		if err := out[0].reset(Float32, rows, 1); err != nil {
			return err
		}
		for r := range rows {
			s := g.rho
			for j, w := range g.coef {
				s += w * k.Float64[r*g.vectors+j]
			}
			if g.oneClass {
				// Outliers, the boundary and NaN are −1, as onnxruntime writes them.
				if s > 0 {
					s = 1
				} else {
					s = -1
				}
			}
			out[0].Float32[r] = float32(s)
		}
		return nil
	}), nil
}

// readSVMRegressor reads and checks an SVMRegressor's attributes against an input of cols
// columns (negative when known only at run time).
func readSVMRegressor(n *nodeCtx, cols int) (*svmRegressor, error) {
	const op = "SVMRegressor"
	s, err := readSVMKernel(n, op)
	if err != nil {
		return nil, err
	}
	g := &svmRegressor{svmVectors: s}
	post, postName, err := readSVMPost(n, op)
	if err != nil {
		return nil, err
	}
	// Neither onnxruntime (which ignores it) nor the reference evaluator (which refuses it)
	// transforms a regressor's output, so no file can rely on an answer for another.
	if post != postNone {
		return nil, unsupported("%s post_transform %s: only NONE is supported", op, postName)
	}
	supports, err := n.attrInt("n_supports", 0)
	if err != nil {
		return nil, err
	}
	oneClass, err := n.attrInt("one_class", 0)
	if err != nil {
		return nil, err
	}
	g.oneClass = oneClass != 0
	lists, err := floatLists(n, "coefficients", "rho")
	if err != nil {
		return nil, err
	}
	coef, rho := lists[0], lists[1]
	if len(rho) != 1 {
		return nil, fmt.Errorf("has %d rho, want 1", len(rho))
	}
	g.rho = float64(rho[0])
	if supports < 0 || supports > int64(len(coef)) {
		return nil, fmt.Errorf("n_supports is %d with %d coefficients", supports, len(coef))
	}
	if supports == 0 {
		// The linear form: the coefficients are one weight per feature, the support vector of
		// a linear kernel.
		if err := g.readSupportVectors(n, 0, cols); err != nil {
			return nil, err
		}
		if len(coef) == 0 {
			return nil, fmt.Errorf("has no coefficients")
		}
		if cols >= 0 && cols != len(coef) {
			return nil, fmt.Errorf("has %d coefficients without support vectors, the input %d features", len(coef), cols)
		}
		g.svmVectors = svmVectors{kernel: svmLinear, sv: widen(coef), vectors: 1, features: len(coef)}
		g.coef = []float64{1}
		return g, nil
	}
	if len(coef) != int(supports) {
		return nil, fmt.Errorf("has %d coefficients for %d support vectors", len(coef), supports)
	}
	if err := g.readSupportVectors(n, int(supports), cols); err != nil {
		return nil, err
	}
	g.coef = widen(coef)
	return g, nil
}
