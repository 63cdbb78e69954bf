package onnxpb

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
)

func sampleModel() *Model {
	return &Model{
		IRVersion:       7,
		OpsetImport:     []OperatorSet{{Version: 13}, {Domain: "ai.onnx.ml", Version: 3}},
		ProducerName:    "test",
		ProducerVersion: "1.2",
		Domain:          "io.example",
		ModelVersion:    4,
		DocString:       "a model",
		MetadataProps:   []StringString{{Key: "freightcast.io/features", Value: "a,b"}, {Key: "k", Value: ""}},
		Graph: &Graph{
			Name:      "g",
			DocString: "graph doc",
			Nodes: []Node{{
				Inputs: []string{"x", "w", ""}, Outputs: []string{"y"}, Name: "n0", OpType: "Gemm", Domain: "",
				Attributes: []Attribute{
					{Name: "alpha", Type: AttrFloat, F: 0.5},
					{Name: "transB", Type: AttrInt, I: 1},
					{Name: "mode", Type: AttrString, S: []byte("x")},
					{Name: "fs", Type: AttrFloats, Floats: []float32{1, -2}},
					{Name: "is", Type: AttrInts, Ints: []int64{-1, 3}},
					{Name: "ss", Type: AttrStrings, Strings: [][]byte{[]byte("a"), []byte("b")}},
					{Name: "t", Type: AttrTensor, T: &Tensor{Name: "t", Dims: []int64{1}, DataType: TypeFloat, FloatData: []float32{3}}},
				},
			}},
			Initializers: []Tensor{
				{Name: "w", Dims: []int64{2, 2}, DataType: TypeFloat, FloatData: []float32{1, 2, 3, 4}},
				{Name: "s", Dims: []int64{2}, DataType: TypeInt64, Int64Data: []int64{-1, 2}},
				{Name: "d", Dims: []int64{1}, DataType: TypeDouble, DoubleData: []float64{0.25}},
				{Name: "r", Dims: []int64{2}, DataType: TypeFloat, RawData: floatBytes(5, 6)},
			},
			Inputs:    []ValueInfo{{Name: "x", ElemType: TypeFloat, HasShape: true, Shape: []Dim{{Param: "N"}, {Value: 2, Fixed: true}}}},
			Outputs:   []ValueInfo{{Name: "y", ElemType: TypeFloat, HasShape: true, Shape: []Dim{{}, {Value: 2, Fixed: true}}}},
			ValueInfo: []ValueInfo{{Name: "v", ElemType: TypeFloat}},
		},
	}
}

func floatBytes(xs ...float32) []byte {
	b := make([]byte, 4*len(xs))
	for i, x := range xs {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	want := sampleModel()
	got, err := Decode(want.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded model (-want +got):\n%s", diff)
	}
	if v, ok := got.Metadata("freightcast.io/features"); !ok || v != "a,b" {
		t.Errorf("Metadata = %q, %v", v, ok)
	}
}

func TestDecodeAcceptsUnpackedRepeatedFields(t *testing.T) {
	// Some writers emit repeated scalars one field each instead of packed.
	var tensor []byte
	for _, d := range []int64{2, 1} {
		tensor = protowire.AppendTag(tensor, 1, protowire.VarintType)
		tensor = protowire.AppendVarint(tensor, uint64(d))
	}
	tensor = protowire.AppendTag(tensor, 2, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, uint64(TypeFloat))
	for _, f := range []float32{1.5, -2} {
		tensor = protowire.AppendTag(tensor, 4, protowire.Fixed32Type)
		tensor = protowire.AppendFixed32(tensor, math.Float32bits(f))
	}
	graph := protowire.AppendTag(nil, 5, protowire.BytesType)
	graph = protowire.AppendBytes(graph, tensor)
	model := protowire.AppendTag(nil, 7, protowire.BytesType)
	model = protowire.AppendBytes(model, graph)
	m, err := Decode(model)
	if err != nil {
		t.Fatal(err)
	}
	want := []Tensor{{Dims: []int64{2, 1}, DataType: TypeFloat, FloatData: []float32{1.5, -2}}}
	if diff := cmp.Diff(want, m.Graph.Initializers); diff != "" {
		t.Errorf("initializers (-want +got):\n%s", diff)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := sampleModel().Marshal()
	withGraph := func(g *Graph) []byte { return (&Model{Graph: g}).Marshal() }
	cases := map[string]struct {
		data []byte
		lim  Limits
		want string
	}{
		"no graph":       {data: (&Model{IRVersion: 7}).Marshal(), want: "model has no graph"},
		"truncated":      {data: valid[:len(valid)-2], want: "malformed ONNX model"},
		"bad tag":        {data: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, want: "bad field tag"},
		"negative dim":   {data: withGraph(&Graph{Initializers: []Tensor{{Name: "t", Dims: []int64{-3}}}}), want: "negative dimension -3"},
		"huge shape":     {data: withGraph(&Graph{Initializers: []Tensor{{Name: "t", Dims: []int64{1 << 30, 1 << 30}}}}), want: "exceeds"},
		"too many nodes": {data: withGraph(&Graph{Nodes: []Node{{OpType: "A"}, {OpType: "B"}}}), lim: Limits{MaxNodes: 1, MaxRank: 8, MaxTensorElements: 10, MaxTotalElements: 10}, want: "more than 1 nodes"},
		"total elements": {
			data: withGraph(&Graph{Initializers: []Tensor{{Name: "a", Dims: []int64{6}}, {Name: "b", Dims: []int64{6}}}}),
			lim:  Limits{MaxNodes: 1, MaxRank: 8, MaxTensorElements: 10, MaxTotalElements: 10},
			want: "exceed 10 elements in total",
		},
		"rank": {
			data: withGraph(&Graph{Inputs: []ValueInfo{{Name: "x", ElemType: TypeFloat, HasShape: true, Shape: make([]Dim, 9)}}}),
			want: "more than 8 dimensions",
		},
		"odd float bytes": {
			data: func() []byte {
				tensor := protowire.AppendTag(nil, 4, protowire.BytesType)
				tensor = protowire.AppendBytes(tensor, []byte{1, 2, 3})
				g := protowire.AppendTag(nil, 5, protowire.BytesType)
				g = protowire.AppendBytes(g, tensor)
				return protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), g)
			}(),
			want: "not a whole number of floats",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			lim := tc.lim
			if lim == (Limits{}) {
				lim = DefaultLimits
			}
			_, err := DecodeWithLimits(tc.data, lim)
			if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want an ErrMalformed containing %q", err, tc.want)
			}
		})
	}
}

func TestTensorValues(t *testing.T) {
	cases := map[string]struct {
		t       Tensor
		read    func(t *Tensor) (any, error)
		want    any
		wantErr string
	}{
		"float data": {t: Tensor{Dims: []int64{2}, DataType: TypeFloat, FloatData: []float32{1, 2}}, read: f32, want: []float32{1, 2}},
		"float raw":  {t: Tensor{Dims: []int64{2}, DataType: TypeFloat, RawData: floatBytes(3, 4)}, read: f32, want: []float32{3, 4}},
		"double":     {t: Tensor{Dims: []int64{1}, DataType: TypeDouble, DoubleData: []float64{0.5}}, read: f64, want: []float64{0.5}},
		"int64":      {t: Tensor{Dims: []int64{2}, DataType: TypeInt64, Int64Data: []int64{-1, 7}}, read: i64, want: []int64{-1, 7}},
		"int64 raw":  {t: Tensor{Dims: []int64{1}, DataType: TypeInt64, RawData: []byte{0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, read: i64, want: []int64{-2}},
		"int32 raw":  {t: Tensor{Dims: []int64{2}, DataType: TypeInt32, RawData: []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}}, read: i32, want: []int32{1, -1}},
		"int32 data": {t: Tensor{Dims: []int64{1}, DataType: TypeInt32, Int32Data: []int32{-5}}, read: i32, want: []int32{-5}},
		"int8 in int32_data": {t: Tensor{Dims: []int64{2}, DataType: TypeInt8, Int32Data: []int32{-128, 127}},
			read: func(t *Tensor) (any, error) { return t.Int8s() }, want: []int8{-128, 127}},
		"uint8 raw": {t: Tensor{Dims: []int64{2}, DataType: TypeUint8, RawData: []byte{0, 255}},
			read: func(t *Tensor) (any, error) { return t.Uint8s() }, want: []uint8{0, 255}},
		"float16 bits": {t: Tensor{Dims: []int64{1}, DataType: TypeFloat16, Int32Data: []int32{0x3c00}},
			read: func(t *Tensor) (any, error) { return t.Uint16s() }, want: []uint16{0x3c00}},
		"uint64 data": {t: Tensor{Dims: []int64{1}, DataType: TypeUint64, Uint64Data: []uint64{1 << 63}},
			read: func(t *Tensor) (any, error) { return t.Uint64s() }, want: []uint64{1 << 63}},
		"uint32 in uint64_data": {t: Tensor{Dims: []int64{1}, DataType: TypeUint32, Uint64Data: []uint64{4000000000}},
			read: func(t *Tensor) (any, error) { return t.Uint32s() }, want: []uint32{4000000000}},
		"bool raw": {t: Tensor{Dims: []int64{3}, DataType: TypeBool, RawData: []byte{1, 0, 2}},
			read: func(t *Tensor) (any, error) { return t.Bools() }, want: []bool{true, false, true}},
		"strings": {t: Tensor{Dims: []int64{2}, DataType: TypeString, StringData: [][]byte{[]byte("a"), []byte("bé")}},
			read: func(t *Tensor) (any, error) { return t.Strings() }, want: []string{"a", "bé"}},
		"scalar":     {t: Tensor{DataType: TypeFloat, FloatData: []float32{9}}, read: f32, want: []float32{9}},
		"empty":      {t: Tensor{Dims: []int64{0, 3}, DataType: TypeFloat}, read: f32, want: []float32{}},
		"short data": {t: Tensor{Name: "w", Dims: []int64{3}, DataType: TypeFloat, FloatData: []float32{1}}, read: f32, wantErr: `tensor "w": has 1 values, shape [3] needs 3`},
		"short raw":  {t: Tensor{Name: "w", Dims: []int64{3}, DataType: TypeFloat, RawData: floatBytes(1)}, read: f32, wantErr: "raw_data has 4 bytes, shape [3] needs 12"},
		"external":   {t: Tensor{Name: "w", DataType: TypeFloat, External: true}, read: f32, wantErr: "external data is not supported"},
		"wrong type": {t: Tensor{Name: "w", DataType: TypeInt64, Int64Data: []int64{1}}, read: f32, wantErr: `tensor "w": want FP32, have INT64`},
		"raw strings": {t: Tensor{Name: "w", DataType: TypeString, RawData: []byte("ab")},
			read: func(t *Tensor) (any, error) { return t.Strings() }, wantErr: "cannot use raw_data"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.read(&tc.t)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("values (-want +got):\n%s", diff)
			}
		})
	}
}

func f32(t *Tensor) (any, error) { return t.Float32s() }
func f64(t *Tensor) (any, error) { return t.Float64s() }
func i64(t *Tensor) (any, error) { return t.Int64s() }
func i32(t *Tensor) (any, error) { return t.Int32s() }

// TestValueTypes decodes what ZipMap and DictVectorizer models declare: sequences of maps, maps.
func TestValueTypes(t *testing.T) {
	zipmap := ValueInfo{Name: "probabilities", Kind: KindSequence,
		Elem: &ValueInfo{Kind: KindMap, KeyType: TypeInt64, Elem: &ValueInfo{Kind: KindTensor, ElemType: TypeFloat}}}
	dict := ValueInfo{Name: "d", Kind: KindMap, KeyType: TypeString, Elem: &ValueInfo{Kind: KindTensor, ElemType: TypeDouble}}
	opt := ValueInfo{Name: "o", Kind: KindOptional, Elem: &ValueInfo{Kind: KindTensor, ElemType: TypeInt32, HasShape: true, Shape: []Dim{{Value: 0, Fixed: true}}}}
	m := &Model{Graph: &Graph{Outputs: []ValueInfo{zipmap, dict, opt}, Inputs: []ValueInfo{{Name: "untyped", Kind: KindUndefined}}}}
	got, err := Decode(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.Graph, got.Graph); diff != "" {
		t.Errorf("graph (-want +got):\n%s", diff)
	}
	wantTypes := []string{"seq(map(int64,tensor(float)))", "map(string,tensor(double))", "optional(tensor(int32))"}
	for i, w := range wantTypes {
		if s := got.Graph.Outputs[i].TypeString(); s != w {
			t.Errorf("output %d type %s, want %s", i, s, w)
		}
	}
}

// TestAttributesKeptOpaque: subgraphs are counted, not decoded; a ref_attr_name survives.
func TestAttributesKeptOpaque(t *testing.T) {
	n := Node{OpType: "If", Inputs: []string{"c"}, Outputs: []string{"y"}, Attributes: []Attribute{
		{Name: "then_branch", Type: AttrGraph, Graphs: 1},
		{Name: "alpha", Type: AttrFloat, RefAttrName: "outer_alpha"},
		{Name: "ts", Type: AttrTensors, Tensors: []Tensor{{Name: "a", DataType: TypeFloat, FloatData: []float32{1}}}},
	}}
	m := &Model{Graph: &Graph{Nodes: []Node{n}, SparseInitializers: 2}}
	got, err := Decode(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.Graph, got.Graph); diff != "" {
		t.Errorf("graph (-want +got):\n%s", diff)
	}
}

func TestDecodeRejectsDeepTypes(t *testing.T) {
	vi := &ValueInfo{Kind: KindTensor, ElemType: TypeFloat}
	for range maxTypeDepth + 1 {
		vi = &ValueInfo{Kind: KindSequence, Elem: vi}
	}
	vi.Name = "deep"
	_, err := Decode((&Model{Graph: &Graph{Inputs: []ValueInfo{*vi}}}).Marshal())
	if err == nil || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested more than") {
		t.Errorf("error %v, want an ErrMalformed about nesting", err)
	}
}

func TestShapeString(t *testing.T) {
	if got := ShapeString([]Dim{{Param: "N"}, {Value: 12, Fixed: true}}); got != "[-1,12]" {
		t.Errorf("ShapeString = %q", got)
	}
}
