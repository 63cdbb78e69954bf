package oip

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// FuzzInfer sends arbitrary bodies through the whole infer path (decode, validation, model run,
// encoding) of a server holding the freight model. Whatever the body, the answer is a 200 or a
// 400 with a JSON body, and a 200 only for valid JSON. Seeds: testdata/fuzz/FuzzInfer.
func FuzzInfer(f *testing.F) {
	row := jsonNumbers(featureRow(0))
	for _, seed := range []string{
		`{"id":"1","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + row + `]}]}`,
		`{"inputs":[{"name":"features","shape":[2,12],"datatype":"FP64","data":[[` + row + `],[` + row + `]]}],"outputs":[{"name":"delay_risk"}]}`,
		`{"inputs":[{"name":"features","shape":[1,12],"datatype":"BOOL","data":[true,false,true,false,true,false,true,false,true,false,true,false]}]}`,
		`{"parameters":{"a":[1,{"b":null}]},"inputs":[]}`,
		`{"id":"\u00e9\n","inputs":[{"name":"f\"","shape":[1],"datatype":"INT64","data":[1e3]}]}`,
	} {
		f.Add([]byte(seed))
	}
	ts := newTestServer(f, true, nil)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v2/models/freight/infer", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		ts.oip.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("response %q is not JSON", rec.Body)
		}
		if rec.Code == http.StatusOK && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}

// FuzzInferTyped is FuzzInfer for a model served by Eval, the PyTorch net with an FP32 and an
// INT64 input: typed decoding (exact integers, strings, booleans), conversion to the inputs'
// types, the run and the typed encoding. Seeds: testdata/fuzz/FuzzInferTyped.
func FuzzInferTyped(f *testing.F) {
	numeric := `{"name":"numeric","datatype":"FP32","shape":[1,8],"data":[900,0.9,0.1,0.2,0.5,0.5,0.3,12]}`
	for _, seed := range []string{
		`{"inputs":[` + numeric + `,{"name":"transport_mode","datatype":"INT64","shape":[1],"data":[2]}]}`,
		`{"inputs":[` + numeric + `,{"name":"transport_mode","datatype":"BYTES","shape":[1],"data":["air"]}]}`,
		`{"inputs":[` + numeric + `,{"name":"transport_mode","datatype":"INT64","shape":[1],"data":[9223372036854775807]}],"outputs":[{"name":"delay_risk"}]}`,
		`{"inputs":[{"name":"numeric","datatype":"FP64","shape":[2,8],"data":[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,8]]},{"name":"transport_mode","datatype":"UINT8","shape":[2],"data":[0,3]}]}`,
	} {
		f.Add([]byte(seed))
	}
	s := newFixtureServer(f, modelfixtures.Load(f, "torch_tabular_opset17").Path)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, resp := post(t, s, body)
		if code != http.StatusOK && code != http.StatusBadRequest {
			t.Fatalf("status %d for %q: %s", code, body, resp)
		}
		if !json.Valid(resp) {
			t.Fatalf("response %q is not JSON", resp)
		}
		if code == http.StatusOK && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}
