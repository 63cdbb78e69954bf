package oip

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
