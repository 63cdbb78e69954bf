package main

import (
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// A serving pod checks the model file against the spec's inputs (--inputs) and refuses to start
// naming the mismatch; the PyTorch net has inputs numeric (FP32 [-1,8]) and transport_mode
// (INT64 [-1]).
func TestCheckInputs(t *testing.T) {
	t.Parallel()
	m, err := model.LoadFile(modelfixtures.Load(t, "torch_tabular_opset17").Path)
	if err != nil {
		t.Fatal(err)
	}
	const numeric = `{"name":"numeric","datatype":"FP32","shape":[-1,8],"features":["a","b","c","d","e","f","g","h"]}`
	cases := map[string]struct{ flag, wantErr string }{
		"agrees":                {`[` + numeric + `,{"name":"transport_mode","datatype":"INT64","features":["mode"]}]`, ""},
		"tensors only":          {`[{"name":"transport_mode","datatype":"INT64","shape":[-1]}]`, ""},
		"unknown input":         {`[{"name":"mode","datatype":"INT64"}]`, `spec.inputs names "mode", but the model's inputs are numeric, transport_mode`},
		"wrong datatype":        {`[{"name":"transport_mode","datatype":"INT32"}]`, `spec.inputs "transport_mode" is INT32, the model file says INT64`},
		"wrong shape":           {`[{"name":"numeric","shape":[-1,9]}]`, `spec.inputs "numeric" has shape [-1 9], the model file says [-1 8]`},
		"features do not fit":   {`[{"name":"numeric","features":["a"]},{"name":"transport_mode","features":["mode"]}]`, `takes 8 values per event, but 1 features are declared`},
		"an input left unfed":   {`[` + numeric + `]`, `the model's input "transport_mode" (INT64 [-1]) is fed by no declared input`},
		"not JSON":              {`numeric:FP32`, `--inputs: invalid character`},
		"a field the pod lacks": {`[{"name":"numeric","dims":[1]}]`, `--inputs: json: unknown field "dims"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := checkInputs(tc.flag, m.Metadata())
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
