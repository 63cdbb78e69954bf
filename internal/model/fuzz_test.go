package model

import (
	"errors"
	"os"
	"testing"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// FuzzLoad feeds arbitrary bytes to Load with panic recovery off: any input must give a model or
// an ErrInvalidModel, and a model must run. The seed corpus (testdata/fuzz/FuzzLoad) holds the
// freight model and small graphs of every supported operator.
func FuzzLoad(f *testing.F) {
	if data, err := os.ReadFile(freightModel); err == nil {
		f.Add(data)
	}
	for _, tc := range opCases() {
		f.Add(tc.spec.modelBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recoverPanics = false
		defer func() { recoverPanics = true }()
		m, err := Load(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidModel) {
				t.Fatalf("error %v does not wrap ErrInvalidModel", err)
			}
			return
		}
		meta := m.Metadata()
		for _, rows := range []int{1, 3} {
			ins := make([][]float32, len(meta.Inputs))
			for i, in := range meta.Inputs {
				if in.Shape[0] > 0 && int(in.Shape[0]) != rows {
					return
				}
				if in.RowSize() > 1<<16 {
					return // a valid but huge model; running it proves nothing more
				}
				ins[i] = make([]float32, rows*in.RowSize())
			}
			outs := make([][]float32, len(meta.Outputs))
			for i, o := range meta.Outputs {
				if o.RowSize() > 1<<16 {
					return
				}
				outs[i] = make([]float32, rows*o.RowSize())
			}
			if err := m.Run(rows, ins, outs); err != nil {
				t.Fatalf("Run: %v", err)
			}
		}
	})
}

// FuzzDecodeONNX checks the validating decoder alone: never a panic, and what it accepts
// re-encodes to bytes it accepts again.
func FuzzDecodeONNX(f *testing.F) {
	for _, tc := range opCases() {
		f.Add(tc.spec.modelBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := onnxpb.Decode(data)
		if err != nil {
			return
		}
		if _, err := onnxpb.Decode(m.Marshal()); err != nil {
			t.Fatalf("re-encoded model does not decode: %v", err)
		}
	})
}
