// Package model loads ONNX models and runs them, in pure Go.
//
// Load decodes a file with internal/onnxpb (the authority on what a file holds) and compiles
// its graph: nodes are ordered, every operator is looked up by domain, type and opset in the
// registry (op.go) and compiled into a kernel, types and shapes are inferred (a dimension known
// only at run time, such as the batch, is a symbol that inference carries through the graph),
// nodes whose inputs are all constants are folded, float32 products by constant matrices become
// dense layers on AVX2/FMA kernels with the activation that follows fused in. What the runtime
// does not run is refused at load with ErrUnsupported, naming the operator, its domain and
// opset and the node; an inconsistent file with ErrInvalidModel.
//
// A Model is safe for concurrent use: each goroutine borrows an execution state from a pool;
// a state's buffers grow to the largest run they have seen and are reused, so a warm run
// allocates nothing.
//
// Two ways to run a model:
//   - Eval(inputs, outputs []*Tensor): any model. Tensors are typed (DType, Shape, and the data
//     in the field of their type); inputs follow Metadata().Inputs; a nil output is not
//     computed beyond what the others need. A sequence of maps (what ZipMap produces) comes back
//     as the tensor of its values, [N, C], with Keys set to the C keys.
//   - Run(rows, inputs, outputs [][]float32): models whose inputs and outputs are all FP32 with
//     the batch on axis 0 (Metadata().CheckRows() says), on plain row-major slices.
package model

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// FeaturesKey is the ONNX metadata_props key that lists a model's feature names, comma-separated,
// in input column order.
const FeaturesKey = "freightcast.io/features"

// MaxModelBytes caps the size of a model file: Freightcast serves tabular models, and a cap keeps
// a wrong path or URI from filling memory.
const MaxModelBytes = 256 << 20

// ChunkRows is the most rows a plan processes in one pass (fewer for models with wide rows);
// larger batches run in chunks.
const ChunkRows = 256

// Runtime is what the data plane needs from an inference engine. Model is the one implementation;
// another backend can be added behind it.
type Runtime interface {
	// Metadata describes the model's inputs, outputs and feature names.
	Metadata() *Metadata
	// Run evaluates rows rows of a model whose inputs and outputs are all FP32 tensors with the
	// batch on axis 0 (Metadata().CheckRows() tells). inputs[i] holds input i (in
	// Metadata().Inputs order) row-major, rows×RowSize() values; outputs[j] receives output j and
	// must have rows×RowSize() values.
	Run(rows int, inputs, outputs [][]float32) error
	// Eval runs the model on typed tensors, any model: inputs[i] is input i (in
	// Metadata().Inputs order); outputs[j] receives output j, or is nil when nobody asked for
	// it (what only it needs is not computed).
	Eval(inputs, outputs []*Tensor) error
}

// Metadata describes a loaded model.
type Metadata struct {
	// Inputs and Outputs are the graph's inputs (initializers excluded) and outputs, in order.
	Inputs  []TensorInfo
	Outputs []TensorInfo
	// Features are the input column names from FeaturesKey, or nil when the model declares none.
	Features []string
	// Producer and ProducerVersion name the tool that wrote the file.
	Producer        string
	ProducerVersion string
	// Domain and ModelVersion are the ModelProto fields of the same name.
	Domain       string
	ModelVersion int64
	// Doc is the model's doc_string.
	Doc string
	// Props holds every metadata_props entry.
	Props map[string]string
	// Ops lists the operator types of the graph in node order.
	Ops []string
	// Opsets maps each imported domain ("ai.onnx", "ai.onnx.ml", ...) to its opset version.
	Opsets map[string]int64

	rowsErr error
}

// CheckRows tells whether Run (batches of FP32 rows) serves the model: nil when every input and
// output is an FP32 tensor whose axis 0 is the batch and whose other dimensions are fixed, else
// what stands in the way. Eval serves every model.
func (m *Metadata) CheckRows() error { return m.rowsErr }

// TensorInfo describes one input or output.
type TensorInfo struct {
	// Name is the graph value name.
	Name string `json:"name"`
	// DataType is the Open Inference Protocol datatype of the elements: FP32, INT64, BYTES, ...
	// (for a map, of its values).
	DataType string `json:"datatype"`
	// Shape is the shape, -1 marking a dimension known only at run time (the batch, typically).
	// A map or sequence of maps has the shape of the tensor Eval writes for it: [C] or [N, C].
	Shape []int64 `json:"shape"`
	// DType is the element type DataType names.
	DType DType `json:"-"`
	// Type is ONNX's name of the value's type: tensor(float), or
	// seq(map(int64,tensor(float))) for what ZipMap produces.
	Type string `json:"-"`
	// Keys are a map's keys (every map's, for a sequence of maps), when known at load: Eval
	// writes a map as the tensor of its values, its last axis in the order of Keys, with the
	// output's Keys set to these. Nil for tensors.
	Keys *Tensor `json:"-"`
}

// RowSize is the number of values one batch row holds: the product of the dimensions after
// axis 0. It is meaningful when those dimensions are fixed (see Metadata.CheckRows).
func (t TensorInfo) RowSize() int {
	n := 1
	for _, d := range t.Shape[1:] {
		n *= int(d)
	}
	return n
}

// Model is a compiled ONNX model. It is safe for concurrent use.
type Model struct {
	meta Metadata
	plan *plan
	pool sync.Pool
	// inRow and outRow are the row shapes (dimensions after the batch) Run uses, inSize and
	// outSize the values per row.
	inRow, outRow   [][]int
	inSize, outSize []int
	// runChunk is the rows Run computes per pass, 0 for the whole batch at once.
	runChunk int
}

var _ Runtime = (*Model)(nil)

// Metadata describes the model. The caller must not modify it.
func (m *Model) Metadata() *Metadata { return &m.meta }

// LoadFile reads and compiles a model file.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat model: %w", err)
	}
	if st.Size() > MaxModelBytes {
		return nil, fmt.Errorf("model %s has %d bytes, more than the %d allowed", path, st.Size(), MaxModelBytes)
	}
	data := make([]byte, st.Size())
	if _, err := readFull(f, data); err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	m, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := f.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// recoverPanics is switched off by the fuzz tests, so that a panic in this package's own code
// shows instead of being converted.
var recoverPanics = true

// ErrInvalidModel is wrapped by every Load error caused by bytes that are not a consistent ONNX
// model (as opposed to I/O, and to ErrUnsupported: a valid model this runtime does not run).
var ErrInvalidModel = errors.New("invalid model")

// ErrInvalidInput is wrapped by every Run and Eval error: the model was checked at load, so
// what fails at run time is the input (a shape or type the model does not take, an index out of
// range, a tensor too large).
var ErrInvalidInput = errors.New("invalid input")

// Load decodes and compiles an ONNX model. An error wraps ErrInvalidModel or ErrUnsupported and
// names the culprit: for an operator, its type, domain, opset and node name.
func Load(data []byte) (m *Model, err error) {
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrInvalidModel, len(data), MaxModelBytes)
	}
	// The decoder and the compiler are written not to panic; this is the last line of defence
	// against input nobody foresaw.
	if recoverPanics {
		defer func() {
			if r := recover(); r != nil {
				m, err = nil, fmt.Errorf("%w: compiler panic: %v", ErrInvalidModel, r)
			}
		}()
	}
	pb, err := onnxpb.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	p, meta, err := compile(pb)
	if err != nil {
		if errors.Is(err, ErrUnsupported) {
			return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	m = &Model{meta: meta, plan: p}
	m.inRow, m.outRow = rowShapes(p.inputs), rowShapes(p.outputs)
	for _, r := range m.inRow {
		m.inSize = append(m.inSize, product(r))
	}
	for _, r := range m.outRow {
		m.outSize = append(m.outSize, product(r))
	}
	if p.rows != nil && !slices.Contains(p.rows.batched, false) {
		m.runChunk = p.rows.chunk
	}
	m.pool.New = func() any { return p.newState() }
	return m, nil
}

// rowShapes are the dimensions after axis 0.
func rowShapes(ios []ioSlot) [][]int {
	rows := make([][]int, len(ios))
	for i, io := range ios {
		if len(io.typ.shape) > 0 {
			rows[i] = io.typ.shape[1:]
		}
	}
	return rows
}

// infos describes graph inputs or outputs for Metadata.
func infos(ios []ioSlot) []TensorInfo {
	out := make([]TensorInfo, len(ios))
	for i, io := range ios {
		shape := make([]int64, len(io.typ.shape))
		for d, v := range io.typ.shape {
			shape[d] = int64(max(v, -1))
		}
		out[i] = TensorInfo{Name: io.name, DataType: io.typ.dtype.OIP(), Shape: shape, DType: io.typ.dtype,
			Type: io.typ.onnxType(), Keys: io.typ.keys}
	}
	return out
}

// rowsError is what keeps Run from serving a model, or nil.
func rowsError(inputs, outputs []ioSlot) error {
	if len(inputs) == 0 {
		return errors.New("the model has no inputs, so no batch")
	}
	var batches []int
	for i, io := range append(slices.Clip(inputs), outputs...) {
		t := io.typ
		if t.kind != kindTensor || t.dtype != Float32 {
			return fmt.Errorf("%q is a %s; batches of FP32 rows serve FP32 tensors only", io.name, t.onnxType())
		}
		if len(t.shape) == 0 {
			return fmt.Errorf("%q is a scalar, with no batch axis", io.name)
		}
		if !static(t.shape[1:]) {
			return fmt.Errorf("%q has shape %s: only axis 0 (the batch) may vary", io.name, shapeString(t.shape))
		}
		if i < len(inputs) {
			batches = append(batches, t.shape[0])
		} else if !slices.Contains(batches, t.shape[0]) {
			return fmt.Errorf("output %q has shape %s, whose axis 0 is not the batch of the inputs", io.name, shapeString(t.shape))
		}
	}
	return nil
}

func metadataFrom(pb *onnxpb.Model) (Metadata, error) {
	meta := Metadata{
		Producer:        pb.ProducerName,
		ProducerVersion: pb.ProducerVersion,
		Domain:          pb.Domain,
		ModelVersion:    pb.ModelVersion,
		Doc:             pb.DocString,
		Props:           make(map[string]string, len(pb.MetadataProps)),
		Opsets:          make(map[string]int64, len(pb.OpsetImport)),
	}
	for _, kv := range pb.MetadataProps {
		meta.Props[kv.Key] = kv.Value
	}
	for _, os := range pb.OpsetImport {
		d := os.Domain
		if d == "" {
			d = "ai.onnx"
		}
		meta.Opsets[d] = os.Version
	}
	if v, ok := pb.Metadata(FeaturesKey); ok {
		feats, err := ParseFeatures(v)
		if err != nil {
			return meta, fmt.Errorf("metadata %s: %w", FeaturesKey, err)
		}
		meta.Features = feats
	}
	for _, n := range pb.Graph.Nodes {
		meta.Ops = append(meta.Ops, n.OpType)
	}
	return meta, nil
}

// ParseFeatures splits a comma-separated feature list, refusing empty and duplicate names.
func ParseFeatures(s string) ([]string, error) {
	parts := strings.Split(s, ",")
	seen := make(map[string]bool, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("feature %d is empty", i)
		}
		if seen[p] {
			return nil, fmt.Errorf("feature %q appears twice", p)
		}
		seen[p] = true
		parts[i] = p
	}
	return parts, nil
}

// Run evaluates a batch of FP32 rows; see Runtime.Run. It allocates nothing once the pool is
// warm.
func (m *Model) Run(rows int, inputs, outputs [][]float32) (err error) {
	if err := m.checkRun(rows, inputs, outputs); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidInput, err)
	}
	p := m.plan
	st := m.pool.Get().(*state)
	if recoverPanics {
		defer recoverRun(&err)
	}
	chunk := rows
	if m.runChunk > 0 {
		chunk = m.runChunk
	}
	if p.chain != nil {
		in, out := inputs[0], outputs[0]
		k, size := m.inSize[0], m.outSize[0]
		for start := 0; start < rows; start += chunk {
			n := min(chunk, rows-start)
			p.runChain(st, n, in[start*k:(start+n)*k], out[start*size:(start+n)*size])
		}
		m.pool.Put(st)
		return nil
	}
	for start := 0; start < rows && err == nil; start += chunk {
		n := min(chunk, rows-start)
		for i, in := range p.inputs {
			t := &st.own[in.slot]
			if len(t.Shape) == 0 || t.Shape[0] != n || t.DType != Float32 {
				t.DType = Float32
				t.Shape = append(append(t.Shape[:0], n), m.inRow[i]...)
			}
			t.Float32 = inputs[i][start*m.inSize[i] : (start+n)*m.inSize[i]]
		}
		if err = p.run(st, ^uint64(0)); err != nil {
			err = fmt.Errorf("%w: %w", ErrInvalidInput, err)
			break
		}
		for j, out := range p.outputs {
			// A model whose output does not carry the batch (which the checks at load cannot
			// always tell) is an error, not a short copy.
			src, size := st.ptr[out.slot], m.outSize[j]
			if len(src.Shape) == 0 || src.Shape[0] != n || len(src.Float32) != n*size || src.Len() != n*size {
				err = fmt.Errorf("%w: output %q has shape %v at run time, not the %d rows of %v the model declares",
					ErrInvalidInput, out.name, src.Shape, n, m.outRow[j])
				break
			}
			copy(outputs[j][start*size:(start+n)*size], src.Float32)
		}
	}
	for _, in := range p.inputs {
		st.own[in.slot].Float32 = nil
	}
	for _, v := range p.views {
		st.own[v].dropData()
	}
	m.pool.Put(st)
	return err
}

// recoverRun turns a panic in a kernel into an error: the last line of defence for input
// nobody foresaw. The state it ran in is not returned to the pool.
func recoverRun(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: runtime panic: %v", ErrInvalidInput, r)
	}
}

func (m *Model) checkRun(rows int, inputs, outputs [][]float32) error {
	if err := m.meta.rowsErr; err != nil {
		return fmt.Errorf("this model needs Eval: %w", err)
	}
	if rows < 1 {
		return fmt.Errorf("batch of %d rows: need at least one", rows)
	}
	if len(inputs) != len(m.meta.Inputs) {
		return fmt.Errorf("got %d inputs, model has %d", len(inputs), len(m.meta.Inputs))
	}
	if len(outputs) != len(m.meta.Outputs) {
		return fmt.Errorf("got %d outputs, model has %d", len(outputs), len(m.meta.Outputs))
	}
	for i, in := range m.meta.Inputs {
		if d := in.Shape[0]; d >= 0 && int64(rows) != d {
			return fmt.Errorf("input %q has a fixed batch of %d, got %d rows", in.Name, d, rows)
		}
		if want := rows * m.inSize[i]; len(inputs[i]) != want {
			return fmt.Errorf("input %q: %d rows need %d values, got %d", in.Name, rows, want, len(inputs[i]))
		}
	}
	for i, out := range m.meta.Outputs {
		if want := rows * m.outSize[i]; len(outputs[i]) != want {
			return fmt.Errorf("output %q: %d rows need %d values, got %d", out.Name, rows, want, len(outputs[i]))
		}
	}
	return nil
}

// Eval runs the model on typed tensors; see Runtime.Eval. Every input must have the DType and
// rank the model declares, the sizes it fixes, and the same size wherever the model names the
// same symbolic dimension. A non-nil output tensor is overwritten (DType, Shape, data; its
// buffers are reused when large enough, so a caller that keeps its output tensors runs without
// allocating once warm). A map output gets the values tensor with Keys set to the model's keys,
// shared: do not modify them.
func (m *Model) Eval(inputs, outputs []*Tensor) (err error) {
	p := m.plan
	if len(inputs) != len(p.inputs) {
		return fmt.Errorf("%w: got %d inputs, model has %d", ErrInvalidInput, len(inputs), len(p.inputs))
	}
	if len(outputs) != len(p.outputs) {
		return fmt.Errorf("%w: got %d outputs, model has %d", ErrInvalidInput, len(outputs), len(p.outputs))
	}
	var need uint64
	for j, o := range outputs {
		if o != nil {
			need |= outputBit(j)
		}
	}
	if need == 0 {
		return nil
	}
	st := m.pool.Get().(*state)
	if recoverPanics {
		defer recoverRun(&err)
	}
	if err = p.bind(st, inputs); err == nil {
		if rows := p.batchRows(st, inputs); rows > p.rows.chunkOf() {
			err = p.runChunks(st, rows, need, inputs, outputs)
		} else {
			err = p.runWhole(st, need, outputs)
		}
	}
	p.release(st)
	m.pool.Put(st)
	return err
}
