package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/freightcast/freightcast/internal/onnxpb"
	onnx "github.com/owulveryck/onnx-go"
)

var errNotOurNode = errors.New("onnx-go handed the backend a node it did not create")

// decodeGraph runs onnx-go's decoder into a builder and checks that it saw the graph the
// validating decoder saw, node for node.
func decodeGraph(data []byte, pb *onnxpb.Model) (*builder, error) {
	b := newBuilder()
	if err := onnx.NewModel(b).UnmarshalBinary(data); err != nil {
		return nil, fmt.Errorf("onnx-go: %w", err)
	}
	if len(b.ops) != len(pb.Graph.Nodes) {
		return nil, fmt.Errorf("onnx-go decoded %d operators, the file has %d nodes", len(b.ops), len(pb.Graph.Nodes))
	}
	for i, a := range b.ops {
		n := &pb.Graph.Nodes[i]
		if a.op.Name != n.OpType {
			return nil, fmt.Errorf("node %d: onnx-go decoded %q, the file says %q", i, a.op.Name, n.OpType)
		}
		if got := b.inputNames(a); !equalStrings(got, n.Inputs) {
			return nil, fmt.Errorf("node %d (%s): onnx-go decoded inputs %q, the file says %q", i, n.OpType, got, n.Inputs)
		}
	}
	return b, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// value is what the compiler knows about one graph value.
type value struct {
	// shape is the full shape; when batched, shape[0] is -1 and stands for the batch.
	shape   []int
	batched bool
	// konst holds a constant's data (after folding); ints keeps INT64 constants exact.
	konst []float32
	ints  []int64
	slot  int
}

// rowShape is the shape one row of a batched value has, or the whole shape of a constant.
func (v *value) rowShape() []int {
	if v.batched {
		return v.shape[1:]
	}
	return v.shape
}

func (v *value) operand() operand {
	if v.batched {
		return operand{slot: v.slot}
	}
	return operand{slot: -1, konst: v.konst}
}

func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}

// maxElements bounds any one value the compiler creates; dimensions are checked one at a time so
// the product cannot overflow.
var maxElements = int(onnxpb.DefaultLimits.MaxTensorElements)

func checkSize(what string, dims []int) error {
	n := 1
	for _, d := range dims {
		if d < 0 {
			continue // the batch
		}
		if d != 0 && n > maxElements/d {
			return fmt.Errorf("%s of shape %v exceeds %d elements", what, dims, maxElements)
		}
		n *= d
	}
	return nil
}

// compiler holds the state of one compilation.
type compiler struct {
	pb     *onnxpb.Model
	opset  int64
	values map[string]*value
	uses   map[string]int
	p      *plan
	// producer maps a slot to the step that writes it, for activation fusion.
	producer map[int]int
	// made maps a slot to the value its step computes (aliases of it are other values).
	made map[int]*value
}

func compile(pb *onnxpb.Model, b *builder) (*plan, Metadata, error) {
	meta, err := metadataFrom(pb)
	if err != nil {
		return nil, meta, err
	}
	c := &compiler{
		pb:       pb,
		opset:    13,
		values:   make(map[string]*value),
		uses:     make(map[string]int),
		p:        &plan{},
		producer: make(map[int]int),
		made:     make(map[int]*value),
	}
	for _, os := range pb.OpsetImport {
		if os.Domain == "" || os.Domain == "ai.onnx" {
			c.opset = os.Version
		}
	}
	g := pb.Graph
	for i := range g.Initializers {
		t := &g.Initializers[i]
		if t.Name == "" {
			return nil, meta, errors.New("an initializer has no name")
		}
		v, err := constValue(t)
		if err != nil {
			return nil, meta, err
		}
		c.values[t.Name] = v
	}
	for _, in := range g.Inputs {
		if _, isConst := c.values[in.Name]; isConst {
			continue // older exporters list initializers among the inputs
		}
		info, v, err := c.graphInput(in)
		if err != nil {
			return nil, meta, err
		}
		meta.Inputs = append(meta.Inputs, info)
		c.p.inSlots = append(c.p.inSlots, v.slot)
		c.p.inRow = append(c.p.inRow, info.RowSize())
		c.values[in.Name] = v
	}
	if len(meta.Inputs) == 0 {
		return nil, meta, errors.New("graph has no inputs besides initializers")
	}
	if meta.Features != nil {
		if len(meta.Inputs) != 1 || meta.Inputs[0].RowSize() != len(meta.Features) {
			return nil, meta, fmt.Errorf("metadata %s lists %d features, but the model takes %s", FeaturesKey, len(meta.Features), describeInputs(meta.Inputs))
		}
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			c.uses[in]++
		}
	}
	for _, out := range g.Outputs {
		c.uses[out.Name]++
	}
	for i, a := range b.ops {
		n := &g.Nodes[i]
		if n.Domain != "" && n.Domain != "ai.onnx" {
			return nil, meta, fmt.Errorf("node %d: operator %s of domain %q is not supported", i, n.OpType, n.Domain)
		}
		if err := c.node(n, a.op); err != nil {
			name := n.Name
			if name == "" {
				name = fmt.Sprint(i)
			}
			return nil, meta, fmt.Errorf("node %s (%s): %w", name, n.OpType, err)
		}
	}
	for _, out := range g.Outputs {
		v, ok := c.values[out.Name]
		if !ok {
			return nil, meta, fmt.Errorf("graph output %q is not produced by any node", out.Name)
		}
		if !v.batched {
			return nil, meta, fmt.Errorf("graph output %q does not depend on the inputs", out.Name)
		}
		if out.ElemType != onnxpb.TypeUndefined && out.ElemType != onnxpb.TypeFloat {
			return nil, meta, fmt.Errorf("graph output %q has type %s; this runtime produces FP32", out.Name, onnxpb.TypeName(out.ElemType))
		}
		shape := make([]int64, len(v.shape))
		for i, d := range v.shape {
			shape[i] = int64(d)
		}
		meta.Outputs = append(meta.Outputs, TensorInfo{Name: out.Name, DataType: "FP32", Shape: shape})
		c.p.outSlots = append(c.p.outSlots, v.slot)
		c.p.outRow = append(c.p.outRow, product(v.shape[1:]))
	}
	if len(meta.Outputs) == 0 {
		return nil, meta, errors.New("graph has no outputs")
	}
	if err := c.p.sizeChunks(); err != nil {
		return nil, meta, err
	}
	return c.p, meta, nil
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

func constValue(t *onnxpb.Tensor) (*value, error) {
	data, err := t.Floats()
	if err != nil {
		return nil, err
	}
	v := &value{konst: data, slot: -1, shape: make([]int, len(t.Dims))}
	for i, d := range t.Dims {
		v.shape[i] = int(d)
	}
	if t.DataType == onnxpb.TypeInt64 {
		if v.ints, err = t.Int64s(); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func (c *compiler) graphInput(in onnxpb.ValueInfo) (TensorInfo, *value, error) {
	if in.ElemType != onnxpb.TypeFloat {
		return TensorInfo{}, nil, fmt.Errorf("input %q has type %s; this runtime serves FP32 inputs", in.Name, onnxpb.TypeName(in.ElemType))
	}
	if !in.HasShape || len(in.Shape) == 0 {
		return TensorInfo{}, nil, fmt.Errorf("input %q needs a shape of rank 1 or more (axis 0 is the batch)", in.Name)
	}
	info := TensorInfo{Name: in.Name, DataType: "FP32", Shape: make([]int64, len(in.Shape))}
	v := &value{batched: true, shape: make([]int, len(in.Shape))}
	for i, d := range in.Shape {
		switch {
		case i == 0 && !d.Fixed:
			info.Shape[0], v.shape[0] = -1, -1
		case i == 0:
			info.Shape[0], v.shape[0] = d.Value, -1
		case !d.Fixed:
			return TensorInfo{}, nil, fmt.Errorf("input %q has a variable dimension at axis %d; only axis 0 (the batch) may vary", in.Name, i)
		case d.Value == 0:
			return TensorInfo{}, nil, fmt.Errorf("input %q has an empty dimension at axis %d", in.Name, i)
		default:
			info.Shape[i], v.shape[i] = d.Value, int(d.Value)
		}
	}
	if err := checkSize(fmt.Sprintf("input %q", in.Name), v.shape); err != nil {
		return TensorInfo{}, nil, err
	}
	if product(v.shape[1:]) > maxRowValues {
		return TensorInfo{}, nil, fmt.Errorf("input %q has rows of %d values, more than the %d allowed", in.Name, product(v.shape[1:]), maxRowValues)
	}
	v.slot = c.newSlot(product(v.shape[1:]), false)
	return info, v, nil
}

// maxRowValues caps the values of one row of any batched value, and maxStateValues the buffers
// of one execution state, so that a model cannot make every goroutine allocate gigabytes.
const (
	maxRowValues   = 1 << 22
	maxStateValues = 1 << 24
)

func (c *compiler) newSlot(row int, computed bool) int {
	c.p.slotRow = append(c.p.slotRow, row)
	c.p.computed = append(c.p.computed, computed)
	return len(c.p.slotRow) - 1
}

// inputs resolves a node's inputs; an empty name (an omitted optional input) gives nil.
func (c *compiler) inputs(n *onnxpb.Node, min, max int) ([]*value, error) {
	if len(n.Inputs) < min || len(n.Inputs) > max {
		if min == max {
			return nil, fmt.Errorf("has %d inputs, want %d", len(n.Inputs), min)
		}
		return nil, fmt.Errorf("has %d inputs, want %d to %d", len(n.Inputs), min, max)
	}
	vs := make([]*value, len(n.Inputs))
	for i, name := range n.Inputs {
		if name == "" {
			if i < min {
				return nil, fmt.Errorf("required input %d is empty", i)
			}
			continue
		}
		v, ok := c.values[name]
		if !ok {
			return nil, fmt.Errorf("input %q is not defined by an earlier node, an initializer or a graph input", name)
		}
		vs[i] = v
	}
	return vs, nil
}

// emit adds a step computing a value of the given full shape, or folds it into a constant when
// no input depends on the batch.
func (c *compiler) emit(n *onnxpb.Node, shape []int, k kernel, ins ...*value) error {
	if err := checkSize("output", shape); err != nil {
		return err
	}
	out := &value{shape: shape}
	for _, in := range ins {
		out.batched = out.batched || in.batched
	}
	if !out.batched {
		args := make([][]float32, len(ins))
		for i, in := range ins {
			args[i] = in.konst
		}
		out.konst = make([]float32, product(shape))
		out.slot = -1
		k(1, args, out.konst)
		return c.define(n, out)
	}
	if shape[0] != -1 {
		return fmt.Errorf("output shape %v does not keep the batch on axis 0", shape)
	}
	if product(shape[1:]) > maxRowValues {
		return fmt.Errorf("output rows of %d values are more than the %d allowed", product(shape[1:]), maxRowValues)
	}
	ops := make([]operand, len(ins))
	for i, in := range ins {
		ops[i] = in.operand()
	}
	out.slot = c.newSlot(product(shape[1:]), true)
	c.producer[out.slot] = len(c.p.steps)
	c.made[out.slot] = out
	c.p.steps = append(c.p.steps, step{ins: ops, out: out.slot, kernel: k})
	return c.define(n, out)
}

// alias defines the node's output as the same data as in under a new shape (Reshape, Flatten,
// Identity): no step, no copy.
func (c *compiler) alias(n *onnxpb.Node, in *value, shape []int) error {
	out := &value{shape: shape, batched: in.batched, konst: in.konst, slot: in.slot}
	if in.ints != nil {
		out.ints = in.ints
	}
	return c.define(n, out)
}

func (c *compiler) define(n *onnxpb.Node, v *value) error {
	if len(n.Outputs) != 1 {
		return fmt.Errorf("has %d outputs, this runtime supports 1", len(n.Outputs))
	}
	name := n.Outputs[0]
	if _, dup := c.values[name]; dup {
		return fmt.Errorf("output %q is defined twice", name)
	}
	c.values[name] = v
	return nil
}

func attrInt(op onnx.Operation, name string, def int64) (int64, error) {
	a, ok := op.Attributes[name]
	if !ok {
		return def, nil
	}
	v, ok := a.(int64)
	if !ok {
		return 0, fmt.Errorf("attribute %s is %T, want an int", name, a)
	}
	return v, nil
}

func attrFloat(op onnx.Operation, name string, def float32) (float32, error) {
	a, ok := op.Attributes[name]
	if !ok {
		return def, nil
	}
	v, ok := a.(float32)
	if !ok {
		return 0, fmt.Errorf("attribute %s is %T, want a float", name, a)
	}
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return 0, fmt.Errorf("attribute %s is %v", name, v)
	}
	return v, nil
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

func (c *compiler) node(n *onnxpb.Node, op onnx.Operation) error {
	switch n.OpType {
	case "Add", "Sub", "Mul", "Div":
		return c.binary(n)
	case "Relu", "LeakyRelu", "Sigmoid", "Tanh":
		return c.unary(n, op)
	case "Identity":
		ins, err := c.inputs(n, 1, 1)
		if err != nil {
			return err
		}
		return c.alias(n, ins[0], ins[0].shape)
	case "Gemm":
		return c.gemm(n, op)
	case "MatMul":
		return c.matmul(n)
	case "Softmax":
		return c.softmax(n, op)
	case "Flatten":
		return c.flatten(n, op)
	case "Reshape":
		return c.reshape(n, op)
	case "Concat":
		return c.concat(n, op)
	case "BatchNormalization":
		return c.batchNorm(n, op)
	}
	return fmt.Errorf("operator %s is not supported (supported: Add, BatchNormalization, Concat, Div, Flatten, Gemm, Identity, LeakyRelu, MatMul, Mul, Relu, Reshape, Sigmoid, Softmax, Sub, Tanh)", n.OpType)
}
