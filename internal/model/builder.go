package model

import (
	"sort"

	onnx "github.com/owulveryck/onnx-go"
	"gonum.org/v1/gonum/graph"
	"gonum.org/v1/gonum/graph/iterator"
	"gonum.org/v1/gonum/graph/simple"
	"gorgonia.org/tensor"
)

// builder is the onnx.Backend that onnx-go decodes into. It only records the graph: names,
// operator applications and the weighted edges that order each operator's inputs. compile turns
// the record into an execution plan.
//
// gonum's simple graphs keep one edge per node pair, which loses an input of Mul(x, x); this
// builder keeps every edge.
type builder struct {
	nodes []*gnode
	// inputs[id] holds the edges from an operator's output node to its input nodes; the edge
	// weight is the input position.
	inputs map[int64][]graph.WeightedEdge
	ops    []appliedOp
}

type appliedOp struct {
	op      onnx.Operation
	outputs []*gnode
}

var _ onnx.Backend = (*builder)(nil)

func newBuilder() *builder {
	return &builder{inputs: make(map[int64][]graph.WeightedEdge)}
}

// gnode is one named value of the graph.
type gnode struct {
	id   int64
	name string
	t    tensor.Tensor
}

var (
	_ onnx.Namer       = (*gnode)(nil)
	_ onnx.DataCarrier = (*gnode)(nil)
)

func (n *gnode) ID() int64                       { return n.id }
func (n *gnode) SetName(s string)                { n.name = s }
func (n *gnode) GetName() string                 { return n.name }
func (n *gnode) SetTensor(t tensor.Tensor) error { n.t = t; return nil }
func (n *gnode) GetTensor() tensor.Tensor        { return n.t }

// NewNode hands out IDs in creation order: onnx-go's Model.SetInput assumes input i has ID i.
func (b *builder) NewNode() graph.Node { return &gnode{id: int64(len(b.nodes))} }

func (b *builder) AddNode(n graph.Node) {
	g, ok := n.(*gnode)
	if !ok || g.id != int64(len(b.nodes)) {
		panic("model: AddNode of a node not made by NewNode")
	}
	b.nodes = append(b.nodes, g)
}

func (b *builder) Node(id int64) graph.Node {
	if id < 0 || id >= int64(len(b.nodes)) {
		return nil
	}
	return b.nodes[id]
}

func (b *builder) Nodes() graph.Nodes {
	ns := make([]graph.Node, len(b.nodes))
	for i, n := range b.nodes {
		ns[i] = n
	}
	return iterator.NewOrderedNodes(ns)
}

func (b *builder) From(id int64) graph.Nodes {
	es := b.inputs[id]
	ns := make([]graph.Node, len(es))
	for i, e := range es {
		ns[i] = e.To()
	}
	return iterator.NewOrderedNodes(ns)
}

func (b *builder) To(id int64) graph.Nodes {
	var ns []graph.Node
	for _, es := range b.inputs {
		for _, e := range es {
			if e.To().ID() == id {
				ns = append(ns, e.From())
			}
		}
	}
	return iterator.NewOrderedNodes(ns)
}

func (b *builder) HasEdgeBetween(x, y int64) bool {
	return b.HasEdgeFromTo(x, y) || b.HasEdgeFromTo(y, x)
}

func (b *builder) HasEdgeFromTo(u, v int64) bool { return b.Edge(u, v) != nil }

func (b *builder) Edge(u, v int64) graph.Edge {
	for _, e := range b.inputs[u] {
		if e.To().ID() == v {
			return e
		}
	}
	return nil
}

func (b *builder) NewWeightedEdge(from, to graph.Node, w float64) graph.WeightedEdge {
	return simple.WeightedEdge{F: from, T: to, W: w}
}

func (b *builder) SetWeightedEdge(e graph.WeightedEdge) {
	id := e.From().ID()
	b.inputs[id] = append(b.inputs[id], e)
}

func (b *builder) ApplyOperation(op onnx.Operation, ns ...graph.Node) error {
	outs := make([]*gnode, len(ns))
	for i, n := range ns {
		g, ok := n.(*gnode)
		if !ok {
			return errNotOurNode
		}
		outs[i] = g
	}
	b.ops = append(b.ops, appliedOp{op: op, outputs: outs})
	return nil
}

// inputNames lists an operator's input value names in input order.
func (b *builder) inputNames(a appliedOp) []string {
	if len(a.outputs) == 0 {
		return nil
	}
	es := append([]graph.WeightedEdge(nil), b.inputs[a.outputs[0].id]...)
	sort.SliceStable(es, func(i, j int) bool { return es[i].Weight() < es[j].Weight() })
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.To().(*gnode).name
	}
	return names
}
