package model

// The operator interface. Every operator is an opImpl registered from an init function in the
// file that implements it (ops_*.go for ai.onnx, ml_*.go for ai.onnx.ml). At load the compiler
// finds the implementation for each node's domain, type and opset, hands it a nodeCtx with the
// node's attributes and what load-time inference knows of its inputs, and gets back the types
// and shapes of the node's outputs and a kernel that computes them. Nothing else in the
// compiler knows any operator.
//
// The contract for a compile function:
//   - Check the arity (n.arity), the input types it implements (n.needTypes) and every attribute
//     it reads; refuse what it does not implement with unsupported(...) — a model is never run
//     with semantics the kernel does not have — and what is inconsistent with a plain error.
//   - Declare every output: n.setOut(i, t) with its DType and shape; a symbolic dimension is a
//     negative number (n.sym() makes a fresh one when the size depends on run-time data).
//   - Return the kernel, or nil after n.setConst for every output when the outputs are known at
//     load (Shape of a fully known shape, Constant). When every input is a constant the compiler
//     runs the kernel once at load and keeps its outputs as constants (constant folding), so
//     kernels need no special case for that.
//   - The kernel computes output shapes from the actual inputs on every run (they may differ
//     from one run to the next in their symbolic dimensions), sizes outputs with out[i].reset,
//     never writes to its inputs, and returns an error (never panics) on input it cannot take,
//     such as a Gather index out of range. It must be safe for concurrent use: per-run memory
//     comes from its outputs or x.scratch, never from the kernel's own fields.

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// ErrUnsupported is wrapped by every Load error for a valid model that uses what this runtime
// does not run: an operator, an opset, an attribute value, an element type. ErrInvalidModel is
// wrapped by Load errors for bytes that are not a consistent ONNX model. A Load error wraps one
// or the other (I/O errors of LoadFile neither).
var ErrUnsupported = errors.New("model not supported")

// unsupportedError marks a compile error as ErrUnsupported.
type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string        { return e.msg }
func (e *unsupportedError) Is(target error) bool { return target == ErrUnsupported }

// unsupported is the error an operator returns for what it does not implement.
func unsupported(format string, args ...any) error {
	return &unsupportedError{msg: fmt.Sprintf(format, args...)}
}

// Domains. ai.onnx is also written as the empty string; the compiler reads both as domainONNX.
const (
	domainONNX = ""
	domainML   = "ai.onnx.ml"
)

// maxOpsetONNX and maxOpsetML are the newest opsets whose changes this runtime's operators have
// been checked against (ONNX 1.17: ai.onnx 22, ai.onnx.ml 5). An operator registers the range it
// implements within them.
const (
	maxOpsetONNX = 22
	maxOpsetML   = 5
)

// opImpl is one implementation of an operator for a range of opsets.
type opImpl struct {
	domain string // domainONNX or domainML
	name   string // the op_type
	// minOpset and maxOpset bound the opset the model imports for domain (not the operator's
	// own since_version): within the range, compile implements the semantics ONNX gives the
	// operator at that opset (branching on n.opset where they changed).
	minOpset, maxOpset int64
	compile            func(n *nodeCtx) (kernel, error)
}

type opKey struct{ domain, name string }

var registry = map[opKey][]opImpl{}

// register adds implementations; init functions call it.
func register(impls ...opImpl) {
	for _, im := range impls {
		k := opKey{im.domain, im.name}
		for _, o := range registry[k] {
			if im.minOpset <= o.maxOpset && o.minOpset <= im.maxOpset {
				panic(fmt.Sprintf("model: %s/%s registered twice for overlapping opsets", im.domain, im.name))
			}
		}
		registry[k] = append(registry[k], im)
	}
}

// lookup finds the implementation of op for the model's opset of its domain, or explains why
// there is none.
func lookup(domain, name string, opset int64) (*opImpl, error) {
	impls := registry[opKey{domain, name}]
	for i := range impls {
		if opset >= impls[i].minOpset && opset <= impls[i].maxOpset {
			return &impls[i], nil
		}
	}
	shown := domain
	if shown == domainONNX {
		shown = "ai.onnx"
	}
	if len(impls) == 0 {
		return nil, unsupported("operator %s of domain %s is not supported; supported operators of %s: %s",
			name, shown, shown, strings.Join(supportedOps(domain), ", "))
	}
	var ranges []string
	for _, im := range impls {
		ranges = append(ranges, fmt.Sprintf("%d–%d", im.minOpset, im.maxOpset))
	}
	return nil, unsupported("operator %s of domain %s is implemented for opsets %s, the model imports opset %d",
		name, shown, strings.Join(ranges, ", "), opset)
}

// supportedOps lists the operators registered for a domain, sorted.
func supportedOps(domain string) []string {
	var names []string
	for k := range registry {
		if k.domain == domain {
			names = append(names, k.name)
		}
	}
	slices.Sort(names)
	return names
}

// SupportedOperators lists the operators this runtime implements, by domain ("ai.onnx",
// "ai.onnx.ml"), each sorted.
func SupportedOperators() map[string][]string {
	return map[string][]string{"ai.onnx": supportedOps(domainONNX), "ai.onnx.ml": supportedOps(domainML)}
}

// kind tells a tensor from a map or a sequence of maps (see Tensor.Keys).
type kind uint8

const (
	kindTensor kind = iota
	kindMap         // map(K, V): shape [C]
	kindSeqMap      // seq(map(K, V)): shape [N, C]
)

// valueType is what load-time inference knows of a value.
type valueType struct {
	kind  kind
	dtype DType // the element type; a map's value type
	// shape has one entry per axis: a size (≥ 0), or a symbol (< 0) for a size known only at
	// run time. Equal symbols are equal sizes.
	shape []int
	// keyType and keys describe a map's keys: their type, and the keys themselves when they are
	// known at load (ZipMap's class labels).
	keyType DType
	keys    *Tensor
}

func tensorType(dt DType, shape []int) valueType { return valueType{dtype: dt, shape: shape} }

// onnxType writes the type the way ONNX does.
func (t valueType) onnxType() string {
	switch t.kind {
	case kindMap:
		return fmt.Sprintf("map(%s,tensor(%s))", t.keyType, t.dtype)
	case kindSeqMap:
		return fmt.Sprintf("seq(map(%s,tensor(%s)))", t.keyType, t.dtype)
	}
	return fmt.Sprintf("tensor(%s)", t.dtype)
}

// static tells whether every dimension is known at load.
func static(shape []int) bool {
	for _, d := range shape {
		if d < 0 {
			return false
		}
	}
	return true
}

// kernel computes a node's outputs from its inputs on every run. in has one entry per node
// input (nil for an omitted optional one), out one per node output (a scratch tensor for an
// output nobody reads).
type kernel interface {
	run(x *exec, in, out []*Tensor) error
}

// kernelFunc makes a function a kernel.
type kernelFunc func(x *exec, in, out []*Tensor) error

func (f kernelFunc) run(x *exec, in, out []*Tensor) error { return f(x, in, out) }

// exec is a kernel's view of the execution state it runs in: scratch tensors that belong to
// the calling goroutine's state and keep their buffers from one run to the next.
type exec struct {
	tmp *[]*Tensor
	// Scratch for what kernels hand to functions called through tables or function values,
	// whose arguments escape: kept in the state, they are allocated once, not on every run.
	shape *[maxRank]int
	bc    *bcast
	walk  *reduceWalk
	dims  *[3][maxRank]int
}

// shapeBuf returns this step's scratch shape array.
func (x *exec) shapeBuf() *[maxRank]int {
	if x.shape == nil {
		x.shape = new([maxRank]int)
	}
	return x.shape
}

// broadcaster returns this step's broadcast walk.
func (x *exec) broadcaster() *bcast {
	if x.bc == nil {
		x.bc = new(bcast)
	}
	return x.bc
}

// reducer returns this step's reduction walk.
func (x *exec) reducer() *reduceWalk {
	if x.walk == nil {
		x.walk = new(reduceWalk)
	}
	return x.walk
}

// dimArrays returns three scratch shape arrays of this step.
func (x *exec) dimArrays() *[3][maxRank]int {
	if x.dims == nil {
		x.dims = new([3][maxRank]int)
	}
	return x.dims
}

// scratch returns this step's i-th scratch tensor.
func (x *exec) scratch(i int) *Tensor {
	for len(*x.tmp) <= i {
		*x.tmp = append(*x.tmp, &Tensor{})
	}
	return (*x.tmp)[i]
}

// nodeCtx is what an operator's compile function sees of its node.
type nodeCtx struct {
	c     *compiler
	node  *onnxpb.Node
	opset int64 // the model's opset for the node's domain
	in    []*value
	out   []valueType
	// set by compile functions through the methods below
	outSet   []bool
	outConst []*Tensor
	outSym   [][]symVal
	outView  []bool
	// noFold keeps the node a run-time step even when its inputs are constants (see keepStep).
	noFold bool
}

func (n *nodeCtx) opType() string { return n.node.OpType }

// numIn is the number of inputs the node lists (omitted optional ones included).
func (n *nodeCtx) numIn() int { return len(n.in) }

// numOut is the number of outputs the node lists.
func (n *nodeCtx) numOut() int { return len(n.out) }

// arity checks the numbers of inputs and outputs the node lists.
func (n *nodeCtx) arity(minIn, maxIn, minOut, maxOut int) error {
	if len(n.in) < minIn || len(n.in) > maxIn {
		return fmt.Errorf("has %d inputs, want %s", len(n.in), span(minIn, maxIn))
	}
	for i := range minIn {
		if n.in[i] == nil {
			return fmt.Errorf("required input %d is empty", i)
		}
	}
	if len(n.out) < minOut || len(n.out) > maxOut {
		return fmt.Errorf("has %d outputs, want %s", len(n.out), span(minOut, maxOut))
	}
	return nil
}

func span(lo, hi int) string {
	switch {
	case lo == hi:
		return fmt.Sprint(lo)
	case hi == math.MaxInt:
		return fmt.Sprintf("%d or more", lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// has tells whether input i is given.
func (n *nodeCtx) has(i int) bool { return i < len(n.in) && n.in[i] != nil }

// typ is what is known of input i (which must be given).
func (n *nodeCtx) typ(i int) valueType { return n.in[i].typ }

// dtype is input i's element type.
func (n *nodeCtx) dtype(i int) DType { return n.in[i].typ.dtype }

// shape is input i's shape (symbols negative); do not modify it.
func (n *nodeCtx) shape(i int) []int { return n.in[i].typ.shape }

// konst is input i's value when it is known at load, else nil; do not modify it.
func (n *nodeCtx) konst(i int) *Tensor {
	if !n.has(i) {
		return nil
	}
	return n.in[i].konst
}

// ints reads input i as integers when it is an INT64 or INT32 constant.
func (n *nodeCtx) ints(i int) ([]int64, bool) {
	k := n.konst(i)
	if k == nil {
		return nil, false
	}
	return intValues(k)
}

// symVal is one element of a small integer tensor as load-time inference knows it: a value, or
// a symbol (sym < 0) for a size known only at run time. Shape→Gather→Concat→Reshape chains, as
// PyTorch exports write them, carry the batch size this way, so that shapes downstream of them
// keep their symbolic batch instead of becoming unknown.
type symVal struct {
	v   int64
	sym int
}

// symInts is what load-time inference knows of the values of input i, a small integer tensor
// (constant, or derived from shapes); ok is false when nothing is known.
func (n *nodeCtx) symInts(i int) (vals []symVal, ok bool) {
	if !n.has(i) {
		return nil, false
	}
	if v := n.in[i]; v.sym != nil {
		return v.sym, true
	}
	return nil, false
}

// needTypes refuses input i unless its element type is one of types.
func (n *nodeCtx) needTypes(i int, types ...DType) error {
	t := n.in[i].typ
	if t.kind != kindTensor {
		return unsupported("input %d is a %s; %s takes a tensor", i, t.onnxType(), n.node.OpType)
	}
	if slices.Contains(types, t.dtype) {
		return nil
	}
	names := make([]string, len(types))
	for j, d := range types {
		names[j] = d.String()
	}
	return unsupported("input %d has type %s; %s supports %s", i, t.dtype, n.node.OpType, strings.Join(names, ", "))
}

// sameType refuses inputs whose element types differ from input 0's (for the given inputs).
func (n *nodeCtx) sameType(inputs ...int) error {
	for _, i := range inputs {
		if n.has(i) && n.in[i].typ.dtype != n.in[0].typ.dtype {
			return fmt.Errorf("input %d has type %s, input 0 %s; they must match", i, n.in[i].typ.dtype, n.in[0].typ.dtype)
		}
	}
	return nil
}

// sym makes a fresh symbol, for a size known only at run time.
func (n *nodeCtx) sym() int { return n.c.newSym() }

// setOut declares output i.
func (n *nodeCtx) setOut(i int, t valueType) {
	if i < len(n.out) {
		n.out[i] = t
		n.outSet[i] = true
	}
}

// setOutTensor declares output i a tensor of type dt and the given shape.
func (n *nodeCtx) setOutTensor(i int, dt DType, shape []int) { n.setOut(i, tensorType(dt, shape)) }

// setConst declares output i a constant known at load (its type and shape follow from t).
func (n *nodeCtx) setConst(i int, t *Tensor) {
	if i < len(n.out) {
		n.setOut(i, tensorType(t.DType, slices.Clone(t.Shape)))
		n.outConst[i] = t
	}
}

// setSym records what is known of the values of output i, a small integer tensor: values and
// symbols (see symInts).
func (n *nodeCtx) setSym(i int, vals []symVal) {
	if i < len(n.out) {
		n.outSym[i] = vals
	}
}

// setView declares that the kernel makes output i a view of an input (Tensor.view) rather than
// writing it; the executor drops the view after each run.
func (n *nodeCtx) setView(i int) {
	if i < len(n.out) {
		n.outView[i] = true
	}
}

// keepStep asks the compiler not to fold the node at load even if its inputs are all
// constants: for work that grows faster than the data (a product of two large constant
// matrices), so that a model file cannot keep Load busy for long.
func (n *nodeCtx) keepStep() { n.noFold = true }

// attr finds an attribute by name.
func (n *nodeCtx) attr(name string) *onnxpb.Attribute {
	for i := range n.node.Attributes {
		if n.node.Attributes[i].Name == name {
			return &n.node.Attributes[i]
		}
	}
	return nil
}

// hasAttr tells whether the node sets the attribute.
func (n *nodeCtx) hasAttr(name string) bool { return n.attr(name) != nil }

func (n *nodeCtx) attrOf(name string, want onnxpb.AttrType) (*onnxpb.Attribute, error) {
	a := n.attr(name)
	if a == nil {
		return nil, nil
	}
	if a.Type != want && a.Type != onnxpb.AttrUndefined {
		return nil, fmt.Errorf("attribute %s has type %d, want %d", name, a.Type, want)
	}
	return a, nil
}

// attrInt reads an int attribute, def when absent.
func (n *nodeCtx) attrInt(name string, def int64) (int64, error) {
	a, err := n.attrOf(name, onnxpb.AttrInt)
	if a == nil || err != nil {
		return def, err
	}
	return a.I, nil
}

// attrFloat reads a float attribute, def when absent. NaN and infinities are returned as they
// are: callers that cannot take them refuse them.
func (n *nodeCtx) attrFloat(name string, def float32) (float32, error) {
	a, err := n.attrOf(name, onnxpb.AttrFloat)
	if a == nil || err != nil {
		return def, err
	}
	return a.F, nil
}

// attrFiniteFloat reads a float attribute that must be finite.
func (n *nodeCtx) attrFiniteFloat(name string, def float32) (float32, error) {
	f, err := n.attrFloat(name, def)
	if err == nil && (math.IsNaN(float64(f)) || math.IsInf(float64(f), 0)) {
		return 0, fmt.Errorf("attribute %s is %v", name, f)
	}
	return f, err
}

// attrString reads a string attribute, def when absent.
func (n *nodeCtx) attrString(name, def string) (string, error) {
	a, err := n.attrOf(name, onnxpb.AttrString)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.S), nil
}

// attrInts reads an ints attribute; ok is false when absent.
func (n *nodeCtx) attrInts(name string) (v []int64, ok bool, err error) {
	a, err := n.attrOf(name, onnxpb.AttrInts)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.Ints, true, nil
}

// attrFloats reads a floats attribute; ok is false when absent.
func (n *nodeCtx) attrFloats(name string) (v []float32, ok bool, err error) {
	a, err := n.attrOf(name, onnxpb.AttrFloats)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.Floats, true, nil
}

// attrStrings reads a strings attribute; ok is false when absent.
func (n *nodeCtx) attrStrings(name string) (v []string, ok bool, err error) {
	a, err := n.attrOf(name, onnxpb.AttrStrings)
	if a == nil || err != nil {
		return nil, false, err
	}
	v = make([]string, len(a.Strings))
	for i, s := range a.Strings {
		v[i] = string(s)
	}
	return v, true, nil
}

// attrTensor reads a tensor attribute; nil when absent.
func (n *nodeCtx) attrTensor(name string) (*Tensor, error) {
	a, err := n.attrOf(name, onnxpb.AttrTensor)
	if a == nil || err != nil {
		return nil, err
	}
	if a.T == nil {
		return nil, fmt.Errorf("attribute %s holds no tensor", name)
	}
	return tensorFromProto(a.T)
}

// axis reads an axis attribute (def when absent) and normalizes it against a rank.
func (n *nodeCtx) axis(name string, def int64, rank int) (int, error) {
	a, err := n.attrInt(name, def)
	if err != nil {
		return 0, err
	}
	return normAxis(a, rank)
}

// normAxis turns a possibly negative axis into an index into a shape of the given rank.
func normAxis(axis int64, rank int) (int, error) {
	if axis < -int64(rank) || axis >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	if axis < 0 {
		axis += int64(rank)
	}
	return int(axis), nil
}

// intValues reads an INT64 or INT32 tensor as int64s.
func intValues(t *Tensor) ([]int64, bool) {
	switch t.DType {
	case Int64:
		return data[int64](t), true
	case Int32:
		xs := make([]int64, t.Len())
		for i, v := range data[int32](t) {
			xs[i] = int64(v)
		}
		return xs, true
	}
	return nil, false
}
