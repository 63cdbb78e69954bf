package model

import (
	"errors"
	"fmt"
	"slices"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// value is what the compiler knows about one graph value.
type value struct {
	name string
	typ  valueType
	// konst holds the value when it is known at load (initializer, Constant, folded).
	konst *Tensor
	// sym is what is known of the elements of a small integer tensor (see nodeCtx.symInts).
	sym  []symVal
	slot int
	// view is set when the slot's tensor is a view of another's data.
	view bool
}

// compiler holds the state of one compilation.
type compiler struct {
	pb     *onnxpb.Model
	opsets map[string]int64
	values map[string]*value
	nsym   int
	// symbols maps a dim_param to its symbol, so that inputs naming the same dimension share it.
	symbols map[string]int
	p       *plan
	// folded counts the elements constant folding has made, against maxFolded.
	folded int
}

// maxFolded bounds the elements that constant folding may create in one model, and
// maxFoldInput the input elements of one folded node, so that a file cannot keep Load busy (or
// its memory full) with huge constant expressions.
const (
	maxFolded    = 16 << 20
	maxFoldInput = 4 << 20
)

func (c *compiler) newSym() int {
	c.nsym++
	return -c.nsym
}

func compile(pb *onnxpb.Model) (*plan, Metadata, error) {
	meta, err := metadataFrom(pb)
	if err != nil {
		return nil, meta, err
	}
	c := &compiler{
		pb:      pb,
		opsets:  make(map[string]int64),
		values:  make(map[string]*value),
		symbols: make(map[string]int),
		p:       &plan{},
	}
	for _, os := range pb.OpsetImport {
		d := os.Domain
		if d == "ai.onnx" {
			d = domainONNX
		}
		c.opsets[d] = os.Version
	}
	g := pb.Graph
	if g.SparseInitializers > 0 {
		return nil, meta, unsupported("the graph has %d sparse initializers; this runtime takes dense tensors only", g.SparseInitializers)
	}
	for i := range g.Initializers {
		t := &g.Initializers[i]
		if t.Name == "" {
			return nil, meta, errors.New("an initializer has no name")
		}
		if _, dup := c.values[t.Name]; dup {
			return nil, meta, fmt.Errorf("initializer %q is defined twice", t.Name)
		}
		k, err := tensorFromProto(t)
		if err != nil {
			return nil, meta, fmt.Errorf("initializer %q: %w", t.Name, err)
		}
		c.values[t.Name] = c.constant(t.Name, k)
	}
	for _, in := range g.Inputs {
		if _, isConst := c.values[in.Name]; isConst {
			continue // older exporters list initializers among the inputs
		}
		v, err := c.graphInput(in)
		if err != nil {
			return nil, meta, err
		}
		c.values[in.Name] = v
		c.p.inputs = append(c.p.inputs, ioSlot{name: in.Name, slot: v.slot, typ: v.typ})
	}
	c.p.nsym = c.nsym
	order, err := topoSort(g)
	if err != nil {
		return nil, meta, err
	}
	for _, i := range order {
		n := &g.Nodes[i]
		if err := c.node(n); err != nil {
			return nil, meta, fmt.Errorf("node %s: %w", describeNode(n, i, c.opsets), err)
		}
	}
	if len(g.Outputs) == 0 {
		return nil, meta, errors.New("graph has no outputs")
	}
	for _, out := range g.Outputs {
		v, ok := c.values[out.Name]
		if !ok {
			return nil, meta, fmt.Errorf("graph output %q is not produced by any node, initializer or input", out.Name)
		}
		typ, err := declaredOutput(v, out)
		if err != nil {
			return nil, meta, err
		}
		slot := v.slot
		if v.konst != nil {
			slot = c.p.constSlot(v.konst)
		}
		c.p.outputs = append(c.p.outputs, ioSlot{name: out.Name, slot: slot, typ: typ})
	}
	c.p.finish()
	meta.Inputs = infos(c.p.inputs)
	meta.Outputs = infos(c.p.outputs)
	meta.rowsErr = rowsError(c.p.inputs, c.p.outputs)
	if meta.Features != nil && len(meta.Inputs) == 1 {
		if err := meta.CheckRows(); err == nil && meta.Inputs[0].RowSize() != len(meta.Features) {
			return nil, meta, fmt.Errorf("metadata %s lists %d features, but the model takes %s", FeaturesKey, len(meta.Features), describeInputs(meta.Inputs))
		}
	}
	return c.p, meta, nil
}

// describeNode names a node in errors: its name (or index), type, domain and opset.
func describeNode(n *onnxpb.Node, i int, opsets map[string]int64) string {
	name := n.Name
	if name == "" {
		name = fmt.Sprintf("#%d", i)
	}
	domain := n.Domain
	if domain == "" || domain == "ai.onnx" {
		domain = "ai.onnx"
	}
	d := n.Domain
	if d == "ai.onnx" {
		d = domainONNX
	}
	return fmt.Sprintf("%q (%s, domain %s, opset %d)", name, n.OpType, domain, opsets[d])
}

func describeInputs(ins []TensorInfo) string {
	s := ""
	for i, in := range ins {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s%v", in.Name, in.Shape)
	}
	return s
}

// constant makes a value known at load.
func (c *compiler) constant(name string, t *Tensor) *value {
	return &value{name: name, typ: tensorType(t.DType, slices.Clone(t.Shape)), konst: t, slot: -1, sym: constSyms(t)}
}

// graphInput declares an input: its type, and its shape with a symbol for every dimension that
// is not fixed (the same symbol for the same dim_param).
func (c *compiler) graphInput(in onnxpb.ValueInfo) (*value, error) {
	if in.Kind != onnxpb.KindTensor {
		return nil, unsupported("input %q has type %s; this runtime takes tensor inputs", in.Name, in.TypeString())
	}
	dt, ok := dtypeOf(in.ElemType)
	if !ok {
		return nil, unsupported("input %q has type %s, which this runtime does not hold", in.Name, in.TypeString())
	}
	if !in.HasShape {
		return nil, unsupported("input %q declares no shape; this runtime needs the rank of every input", in.Name)
	}
	shape := make([]int, len(in.Shape))
	for i, d := range in.Shape {
		switch {
		case d.Fixed:
			shape[i] = int(d.Value)
		case d.Param != "":
			s, ok := c.symbols[d.Param]
			if !ok {
				s = c.newSym()
				c.symbols[d.Param] = s
			}
			shape[i] = s
		default:
			shape[i] = c.newSym()
		}
	}
	if err := checkDims(concrete(shape)); err != nil {
		return nil, fmt.Errorf("input %q: %w", in.Name, err)
	}
	return &value{name: in.Name, typ: tensorType(dt, shape), slot: c.p.newSlot()}, nil
}

// concrete replaces symbols with 1, for size checks of what is known.
func concrete(shape []int) []int {
	out := make([]int, len(shape))
	for i, d := range shape {
		out[i] = max(d, 1)
	}
	return out
}

// declaredOutput checks a graph output against its declaration and returns its type, with the
// declared sizes filling in dimensions inference left symbolic.
func declaredOutput(v *value, out onnxpb.ValueInfo) (valueType, error) {
	typ := v.typ
	typ.shape = slices.Clone(typ.shape)
	switch out.Kind {
	case onnxpb.KindUndefined:
		return typ, nil
	case onnxpb.KindTensor:
		if typ.kind != kindTensor {
			return typ, fmt.Errorf("graph output %q is declared %s but is a %s", out.Name, out.TypeString(), typ.onnxType())
		}
		if out.ElemType != onnxpb.TypeUndefined && DType(out.ElemType) != typ.dtype {
			return typ, fmt.Errorf("graph output %q is declared %s but is a %s", out.Name, out.TypeString(), typ.onnxType())
		}
		if out.HasShape && len(out.Shape) == len(typ.shape) {
			for i, d := range out.Shape {
				switch {
				case !d.Fixed || int(d.Value) == typ.shape[i]:
				case typ.shape[i] < 0:
					typ.shape[i] = int(d.Value)
				default:
					return typ, fmt.Errorf("graph output %q is declared with shape %s but has %v", out.Name, onnxpb.ShapeString(out.Shape), typ.shape)
				}
			}
		}
	case onnxpb.KindSequence, onnxpb.KindMap:
		if typ.kind == kindTensor {
			return typ, fmt.Errorf("graph output %q is declared %s but is a %s", out.Name, out.TypeString(), typ.onnxType())
		}
	default:
		return typ, unsupported("graph output %q has type %s, which this runtime does not produce", out.Name, out.TypeString())
	}
	return typ, nil
}

// topoSort orders the nodes so that every value is defined before it is used (ONNX asks
// exporters for that order, but not every one keeps it), refusing cycles and inputs that no
// node, initializer or graph input defines.
func topoSort(g *onnxpb.Graph) ([]int, error) {
	defined := make(map[string]bool, len(g.Initializers)+len(g.Inputs))
	for i := range g.Initializers {
		defined[g.Initializers[i].Name] = true
	}
	for _, in := range g.Inputs {
		defined[in.Name] = true
	}
	producer := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == "" {
				continue
			}
			if defined[o] {
				return nil, fmt.Errorf("node %s output %q is also an initializer or graph input", describeIndex(&n, i), o)
			}
			if j, dup := producer[o]; dup {
				return nil, fmt.Errorf("value %q is produced by nodes %s and %s", o, describeIndex(&g.Nodes[j], j), describeIndex(&n, i))
			}
			producer[o] = i
		}
	}
	waiting := make([]int, len(g.Nodes)) // unresolved inputs per node
	readers := make(map[int][]int)       // producer node → nodes that read it
	var ready []int
	for i, n := range g.Nodes {
		for _, in := range n.Inputs {
			switch j, ok := producer[in]; {
			case in == "" || defined[in]:
			case ok:
				waiting[i]++
				readers[j] = append(readers[j], i)
			default:
				return nil, fmt.Errorf("node %s: input %q is not defined by any node, initializer or graph input", describeIndex(&n, i), in)
			}
		}
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}
	order := make([]int, 0, len(g.Nodes))
	for len(ready) > 0 {
		i := ready[0]
		ready = ready[1:]
		order = append(order, i)
		for _, r := range readers[i] {
			if waiting[r]--; waiting[r] == 0 {
				ready = append(ready, r)
			}
		}
	}
	if len(order) < len(g.Nodes) {
		for i := range g.Nodes {
			if waiting[i] > 0 {
				return nil, fmt.Errorf("the graph has a cycle through node %s", describeIndex(&g.Nodes[i], i))
			}
		}
	}
	return order, nil
}

func describeIndex(n *onnxpb.Node, i int) string {
	if n.Name != "" {
		return fmt.Sprintf("%q (%s)", n.Name, n.OpType)
	}
	return fmt.Sprintf("#%d (%s)", i, n.OpType)
}

// node compiles one node: finds its implementation, lets it infer its outputs, then folds it
// when every input is a constant, or adds a step to the plan.
func (c *compiler) node(n *onnxpb.Node) error {
	domain := n.Domain
	if domain == "ai.onnx" {
		domain = domainONNX
	}
	opset, ok := c.opsets[domain]
	if !ok {
		if domain == domainONNX || domain == domainML {
			return fmt.Errorf("the model does not import an opset for domain %q", n.Domain)
		}
		return unsupported("operator %s of domain %q is not supported (supported domains: ai.onnx, ai.onnx.ml)", n.OpType, n.Domain)
	}
	limit := int64(maxOpsetONNX)
	if domain == domainML {
		limit = maxOpsetML
	} else if domain != domainONNX {
		return unsupported("operator %s of domain %q is not supported (supported domains: ai.onnx, ai.onnx.ml)", n.OpType, n.Domain)
	}
	impl, err := lookup(domain, n.OpType, opset)
	if err != nil {
		if opset > limit {
			return unsupported("the model imports opset %d of %s; this runtime implements up to %d", opset, domainName(domain), limit)
		}
		return err
	}
	for _, a := range n.Attributes {
		if a.Graphs > 0 {
			return unsupported("attribute %s holds a subgraph; this runtime does not run subgraphs", a.Name)
		}
		if a.RefAttrName != "" {
			return unsupported("attribute %s refers to a function attribute", a.Name)
		}
	}
	ctx := &nodeCtx{c: c, node: n, opset: opset}
	ctx.in = make([]*value, len(n.Inputs))
	for i, name := range n.Inputs {
		if name != "" {
			ctx.in[i] = c.values[name] // topoSort checked that it exists
		}
	}
	ctx.out = make([]valueType, len(n.Outputs))
	ctx.outSet = make([]bool, len(n.Outputs))
	ctx.outConst = make([]*Tensor, len(n.Outputs))
	ctx.outSym = make([][]symVal, len(n.Outputs))
	ctx.outView = make([]bool, len(n.Outputs))
	k, err := impl.compile(ctx)
	if err != nil {
		return err
	}
	for i, set := range ctx.outSet {
		if !set && n.Outputs[i] != "" {
			return fmt.Errorf("output %d (%q) is not produced by this node", i, n.Outputs[i])
		}
		if err := checkDims(concrete(ctx.out[i].shape)); err != nil {
			return fmt.Errorf("output %q: %w", n.Outputs[i], err)
		}
	}
	allConst := k != nil && !ctx.noFold
	inputElems := 0
	for _, v := range ctx.in {
		if v != nil && v.konst == nil {
			allConst = false
		}
		if v != nil && v.konst != nil {
			inputElems += v.konst.Len()
		}
	}
	// Large constant inputs stay for the run (a sort or a reduction of millions of constant
	// values would otherwise run at every load).
	allConst = allConst && inputElems <= maxFoldInput
	if allConst {
		if err := c.fold(ctx, k); err != nil {
			return err
		}
	} else if k != nil {
		c.addStep(ctx, k)
	}
	for i, name := range n.Outputs {
		if name == "" {
			continue
		}
		v := &value{name: name, typ: ctx.out[i], konst: ctx.outConst[i], sym: ctx.outSym[i], slot: -1}
		if v.konst == nil && k == nil {
			return fmt.Errorf("output %q has no kernel and no constant value", name)
		}
		if v.konst == nil {
			v.slot = c.p.steps[len(c.p.steps)-1].out[i]
			v.view = ctx.outView[i]
		} else if v.sym == nil {
			v.sym = constSyms(v.konst)
		}
		c.values[name] = v
	}
	return nil
}

func domainName(d string) string {
	if d == domainONNX {
		return "ai.onnx"
	}
	return d
}

// constSyms is a small constant integer vector as symVals, for symInts; nil for other
// constants.
func constSyms(t *Tensor) []symVal {
	if t.Len() > 4*maxRank || len(t.Shape) > 1 {
		return nil
	}
	xs, ok := intValues(t)
	if !ok {
		return nil
	}
	out := make([]symVal, len(xs))
	for i, x := range xs {
		out[i].v = x
	}
	return out
}

// fold runs a node whose inputs are all constants once, at load, and keeps its outputs.
func (c *compiler) fold(ctx *nodeCtx, k kernel) error {
	in := make([]*Tensor, len(ctx.in))
	for i, v := range ctx.in {
		if v != nil {
			in[i] = v.konst
		}
	}
	out := make([]*Tensor, len(ctx.out))
	for i := range out {
		out[i] = &Tensor{}
	}
	var tmp []*Tensor
	if err := k.run(&exec{tmp: &tmp}, in, out); err != nil {
		return fmt.Errorf("constant folding: %w", err)
	}
	for i, t := range out {
		if ctx.outView[i] {
			// A view of a constant is a constant; give it its own shape storage.
			t.Shape = slices.Clone(t.Shape)
		}
		c.folded += t.Len()
		if c.folded > maxFolded {
			return fmt.Errorf("constant folding makes more than %d elements", maxFolded)
		}
		if ctx.outConst[i] == nil {
			ctx.outConst[i] = t
			if ctx.outSet[i] {
				ctx.out[i].shape = slices.Clone(t.Shape)
			}
		}
	}
	return nil
}

// addStep appends a kernel step with a fresh slot for every output.
func (c *compiler) addStep(ctx *nodeCtx, k kernel) {
	s := step{kernel: k, node: describeIndex(ctx.node, len(c.p.steps))}
	if ctx.node.Name != "" {
		s.node = fmt.Sprintf("%q (%s)", ctx.node.Name, ctx.node.OpType)
	}
	for i, v := range ctx.in {
		if v == nil {
			s.in = append(s.in, -1)
			s.inTypes = append(s.inTypes, valueType{})
			continue
		}
		s.inTypes = append(s.inTypes, ctx.in[i].typ)
		if v.konst != nil {
			s.in = append(s.in, c.p.constSlot(v.konst))
		} else {
			s.in = append(s.in, v.slot)
		}
	}
	s.outTypes = ctx.out
	for i := range ctx.out {
		slot := c.p.newSlot()
		s.out = append(s.out, slot)
		if ctx.outView[i] {
			c.p.views = append(c.p.views, slot)
		}
	}
	c.p.steps = append(c.p.steps, s)
}

// tensorFromProto converts a decoded TensorProto.
func tensorFromProto(pt *onnxpb.Tensor) (*Tensor, error) {
	dt, ok := dtypeOf(pt.DataType)
	if !ok {
		return nil, unsupported("tensor %q has element type %s, which this runtime does not hold", pt.Name, onnxpb.TypeName(pt.DataType))
	}
	t := &Tensor{DType: dt, Shape: make([]int, len(pt.Dims))}
	for i, d := range pt.Dims {
		t.Shape[i] = int(d)
	}
	if err := checkDims(t.Shape); err != nil {
		return nil, err
	}
	var err error
	switch dt {
	case Float32:
		t.Float32, err = pt.Float32s()
	case Float64:
		t.Float64, err = pt.Float64s()
	case Int8:
		t.Int8, err = pt.Int8s()
	case Int16:
		t.Int16, err = pt.Int16s()
	case Int32:
		t.Int32, err = pt.Int32s()
	case Int64:
		t.Int64, err = pt.Int64s()
	case Uint8:
		t.Uint8, err = pt.Uint8s()
	case Uint16, Float16, BFloat16:
		t.Uint16, err = pt.Uint16s()
	case Uint32:
		t.Uint32, err = pt.Uint32s()
	case Uint64:
		t.Uint64, err = pt.Uint64s()
	case Bool:
		t.Bool, err = pt.Bools()
	case String:
		t.String, err = pt.Strings()
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}
