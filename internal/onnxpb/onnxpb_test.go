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
		want    []float32
		wantErr string
	}{
		"float data":     {t: Tensor{Dims: []int64{2}, DataType: TypeFloat, FloatData: []float32{1, 2}}, want: []float32{1, 2}},
		"float raw":      {t: Tensor{Dims: []int64{2}, DataType: TypeFloat, RawData: floatBytes(3, 4)}, want: []float32{3, 4}},
		"double":         {t: Tensor{Dims: []int64{1}, DataType: TypeDouble, DoubleData: []float64{0.5}}, want: []float32{0.5}},
		"int64":          {t: Tensor{Dims: []int64{2}, DataType: TypeInt64, Int64Data: []int64{-1, 7}}, want: []float32{-1, 7}},
		"scalar":         {t: Tensor{DataType: TypeFloat, FloatData: []float32{9}}, want: []float32{9}},
		"short data":     {t: Tensor{Name: "w", Dims: []int64{3}, DataType: TypeFloat, FloatData: []float32{1}}, wantErr: `tensor "w": has 1 values, shape [3] needs 3`},
		"short raw":      {t: Tensor{Name: "w", Dims: []int64{3}, DataType: TypeFloat, RawData: floatBytes(1)}, wantErr: "raw_data has 4 bytes, shape [3] needs 12"},
		"external":       {t: Tensor{Name: "w", External: true}, wantErr: "external data is not supported"},
		"strings":        {t: Tensor{Name: "w", DataType: TypeString}, wantErr: "element type BYTES is not supported"},
		"undefined type": {t: Tensor{Name: "w"}, wantErr: "element type onnx-type-0 is not supported"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tc.t.Floats()
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

func TestShapeString(t *testing.T) {
	if got := ShapeString([]Dim{{Param: "N"}, {Value: 12, Fixed: true}}); got != "[-1,12]" {
		t.Errorf("ShapeString = %q", got)
	}
}
