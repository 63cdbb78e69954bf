// Package model loads ONNX models and runs them on batches of feature rows.
//
// onnx-go decodes the file into this package's own backend, which compiles the graph into a plan
// of Go kernels: shapes are inferred once at load, constants are folded, weights are laid out for
// the kernels, and every buffer is sized in advance, so a run allocates nothing. Axis 0 of every
// graph input is the batch axis and may take any size; the plan runs large batches in chunks of
// ChunkRows rows. Dense layers run in AVX2/FMA assembly on amd64 CPUs that have it, in Go
// elsewhere. A Model is safe for concurrent use: each goroutine borrows its own execution state
// from a pool.
package model

import (
	"errors"
	"fmt"
	"os"
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
	// Run evaluates rows rows. inputs[i] holds input i (in Metadata().Inputs order) row-major,
	// rows×RowSize() values; outputs[j] receives output j and must have rows×RowSize() values.
	Run(rows int, inputs, outputs [][]float32) error
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
}

// TensorInfo describes one input or output.
type TensorInfo struct {
	// Name is the graph value name.
	Name string `json:"name"`
	// DataType is the Open Inference Protocol datatype; this runtime computes in FP32.
	DataType string `json:"datatype"`
	// Shape is the declared shape; -1 marks a variable dimension (always axis 0, the batch).
	Shape []int64 `json:"shape"`
}

// RowSize is the number of values one batch row holds: the product of the dimensions after axis 0.
func (t TensorInfo) RowSize() int {
	n := 1
	for _, d := range t.Shape[1:] {
		n *= int(d)
	}
	return n
}

// Model is a compiled ONNX model.
type Model struct {
	meta Metadata
	plan *plan
	pool sync.Pool
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

// recoverPanics is switched off by the fuzz test, so that a panic in this package's own code
// shows instead of being converted.
var recoverPanics = true

// ErrInvalidModel is wrapped by every Load error caused by the model bytes (as opposed to I/O).
var ErrInvalidModel = errors.New("invalid model")

// Load decodes and compiles an ONNX model. A malformed file, an unsupported operator or a shape
// the runtime cannot serve is an error that names the culprit.
func Load(data []byte) (m *Model, err error) {
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrInvalidModel, len(data), MaxModelBytes)
	}
	// The validating decoder and the compiler are written not to panic; this is the last line of
	// defence for onnx-go and gorgonia code that may, on input nobody foresaw.
	if recoverPanics {
		defer func() {
			if r := recover(); r != nil {
				m, err = nil, fmt.Errorf("%w: decoder panic: %v", ErrInvalidModel, r)
			}
		}()
	}
	pb, err := onnxpb.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	if err := checkTensors(pb); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	b, err := decodeGraph(data, pb)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	p, meta, err := compile(pb, b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	m = &Model{meta: meta, plan: p}
	m.pool.New = func() any { return p.newState() }
	return m, nil
}

// checkTensors validates every tensor before onnx-go converts it: gorgonia's tensor package
// panics on data that does not fill its shape.
func checkTensors(pb *onnxpb.Model) error {
	for i := range pb.Graph.Initializers {
		if _, err := pb.Graph.Initializers[i].Floats(); err != nil {
			return err
		}
	}
	for _, n := range pb.Graph.Nodes {
		for _, a := range n.Attributes {
			if a.T != nil {
				if _, err := a.T.Floats(); err != nil {
					return fmt.Errorf("node %q attribute %s: %w", n.Name, a.Name, err)
				}
			}
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
	}
	for _, kv := range pb.MetadataProps {
		meta.Props[kv.Key] = kv.Value
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

// Run evaluates a batch; see Runtime.Run. It allocates nothing once the pool is warm.
func (m *Model) Run(rows int, inputs, outputs [][]float32) error {
	if err := m.checkRun(rows, inputs, outputs); err != nil {
		return err
	}
	st := m.pool.Get().(*state)
	m.plan.run(st, rows, inputs, outputs)
	m.pool.Put(st)
	return nil
}

func (m *Model) checkRun(rows int, inputs, outputs [][]float32) error {
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
		if d := in.Shape[0]; d > 0 && int64(rows) != d {
			return fmt.Errorf("input %q has a fixed batch of %d, got %d rows", in.Name, d, rows)
		}
		if want := rows * m.plan.inRow[i]; len(inputs[i]) != want {
			return fmt.Errorf("input %q: %d rows need %d values, got %d", in.Name, rows, want, len(inputs[i]))
		}
	}
	for i, out := range m.meta.Outputs {
		if want := rows * m.plan.outRow[i]; len(outputs[i]) != want {
			return fmt.Errorf("output %q: %d rows need %d values, got %d", out.Name, rows, want, len(outputs[i]))
		}
	}
	return nil
}
