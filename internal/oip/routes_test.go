package oip

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/httpauth"
)

// TestRoutes pins what every path answers: status, the error or the field that tells the
// answer apart, the Allow header, and the endpoint the request counts under in the metrics.
func TestRoutes(t *testing.T) {
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokensFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpauth.NewTokens(tokensFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	open := newTestServer(t, true, nil)
	guarded := newTestServer(t, true, func(c *Config) { c.Tokens = tokens })
	infer := `{"inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(0)) + `]}]}`
	type answer struct {
		Code     int
		Endpoint string
		Allow    string
		Error    string
	}
	cases := map[string]struct {
		guarded      bool
		method, path string
		want         answer
	}{
		"server":                    {method: "GET", path: "/v2", want: answer{Code: 200, Endpoint: "server_metadata"}},
		"server, slash":             {method: "GET", path: "/v2/", want: answer{Code: 200, Endpoint: "server_metadata"}},
		"live":                      {method: "GET", path: "/v2/health/live", want: answer{Code: 200, Endpoint: "health_live"}},
		"live, slash":               {method: "GET", path: "/v2/health/live/", want: answer{Code: 200, Endpoint: "health_live"}},
		"live, HEAD":                {method: "HEAD", path: "/v2/health/live", want: answer{Code: 200, Endpoint: "health_live"}},
		"live, POST":                {method: "POST", path: "/v2/health/live", want: answer{Code: 405, Endpoint: "health_live", Allow: "GET", Error: "method not allowed; use GET"}},
		"ready":                     {method: "GET", path: "/v2/health/ready", want: answer{Code: 200, Endpoint: "health_ready"}},
		"list":                      {method: "GET", path: "/v2/models", want: answer{Code: 200, Endpoint: "models_list"}},
		"list, slash":               {method: "GET", path: "/v2/models/", want: answer{Code: 200, Endpoint: "models_list"}},
		"metadata":                  {method: "GET", path: "/v2/models/freight", want: answer{Code: 200, Endpoint: "model_metadata"}},
		"metadata, slash":           {method: "GET", path: "/v2/models/freight/", want: answer{Code: 200, Endpoint: "model_metadata"}},
		"metadata, POST":            {method: "POST", path: "/v2/models/freight", want: answer{Code: 405, Endpoint: "model_metadata", Allow: "GET", Error: "method not allowed; use GET"}},
		"versioned metadata":        {method: "GET", path: "/v2/models/freight/versions/1", want: answer{Code: 200, Endpoint: "model_metadata"}},
		"versioned metadata, slash": {method: "GET", path: "/v2/models/freight/versions/1/", want: answer{Code: 200, Endpoint: "model_metadata"}},
		"model ready":               {method: "GET", path: "/v2/models/freight/ready", want: answer{Code: 200, Endpoint: "model_ready"}},
		"model ready, slash":        {method: "GET", path: "/v2/models/freight/ready/", want: answer{Code: 200, Endpoint: "model_ready"}},
		"versioned ready":           {method: "GET", path: "/v2/models/freight/versions/1/ready", want: answer{Code: 200, Endpoint: "model_ready"}},
		"infer":                     {method: "POST", path: "/v2/models/freight/infer", want: answer{Code: 200, Endpoint: "infer"}},
		"infer, slash":              {method: "POST", path: "/v2/models/freight/infer/", want: answer{Code: 200, Endpoint: "infer"}},
		"versioned infer":           {method: "POST", path: "/v2/models/freight/versions/1/infer", want: answer{Code: 200, Endpoint: "infer"}},
		"infer, GET":                {method: "GET", path: "/v2/models/freight/infer", want: answer{Code: 405, Endpoint: "infer", Allow: "POST", Error: "method not allowed; use POST"}},
		"unknown version":           {method: "GET", path: "/v2/models/freight/versions/2", want: answer{Code: 404, Endpoint: "not_found", Error: `model "freight" has no version "2" (it has "1")`}},
		"unknown version, infer":    {method: "POST", path: "/v2/models/freight/versions/2/infer", want: answer{Code: 404, Endpoint: "not_found", Error: `model "freight" has no version "2" (it has "1")`}},
		"unknown model and version": {method: "GET", path: "/v2/models/other/versions/2", want: answer{Code: 404, Endpoint: "not_found", Error: `model "other" has no version "2" (it has "1")`}},
		"unknown model":             {method: "GET", path: "/v2/models/other", want: answer{Code: 404, Endpoint: "not_found", Error: `unknown model "other" (this server serves "freight")`}},
		"unknown model, ready":      {method: "GET", path: "/v2/models/other/ready", want: answer{Code: 404, Endpoint: "not_found", Error: `unknown model "other" (this server serves "freight")`}},
		"unknown model, infer":      {method: "POST", path: "/v2/models/other/infer", want: answer{Code: 404, Endpoint: "not_found", Error: `unknown model "other" (this server serves "freight")`}},
		"unknown action":            {method: "GET", path: "/v2/models/freight/explain", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v2/models/freight/explain"}},
		"versions alone":            {method: "GET", path: "/v2/models/freight/versions", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v2/models/freight/versions"}},
		"unknown under /v2":         {method: "GET", path: "/v2/repository", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v2/repository"}},
		"not /v2":                   {method: "GET", path: "/v2x", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v2x"}},
		"other version of the API":  {method: "GET", path: "/v3/models", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v3/models"}},
		"root":                      {method: "GET", path: "/", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /"}},
		"metrics":                   {method: "GET", path: "/metrics", want: answer{Code: 200, Endpoint: "metrics"}},
		"metrics, DELETE":           {method: "DELETE", path: "/metrics", want: answer{Code: 405, Endpoint: "metrics", Allow: "GET", Error: "method not allowed; use GET"}},
		"metrics, slash":            {method: "GET", path: "/metrics/", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /metrics/"}},

		"guarded live":          {guarded: true, method: "GET", path: "/v2/health/live/", want: answer{Code: 200, Endpoint: "health_live"}},
		"guarded ready":         {guarded: true, method: "GET", path: "/v2/health/ready", want: answer{Code: 200, Endpoint: "health_ready"}},
		"guarded metrics":       {guarded: true, method: "GET", path: "/metrics", want: answer{Code: 200, Endpoint: "metrics"}},
		"guarded server":        {guarded: true, method: "GET", path: "/v2", want: answer{Code: 401, Endpoint: "unauthorized", Error: "missing or unknown bearer token"}},
		"guarded infer, GET":    {guarded: true, method: "GET", path: "/v2/models/freight/infer", want: answer{Code: 401, Endpoint: "unauthorized", Error: "missing or unknown bearer token"}},
		"guarded unknown model": {guarded: true, method: "GET", path: "/v2/models/other", want: answer{Code: 401, Endpoint: "unauthorized", Error: "missing or unknown bearer token"}},
		"guarded unknown path":  {guarded: true, method: "GET", path: "/v2/repository", want: answer{Code: 401, Endpoint: "unauthorized", Error: "missing or unknown bearer token"}},
		"guarded, not /v2":      {guarded: true, method: "GET", path: "/v3/models", want: answer{Code: 404, Endpoint: "not_found", Error: "no route for /v3/models"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := open
			if tc.guarded {
				ts = guarded
			}
			before := requestCounts(t, ts)
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader(infer)
			}
			req, err := http.NewRequest(tc.method, ts.URL+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := answer{Code: resp.StatusCode, Allow: resp.Header.Get("Allow")}
			if resp.StatusCode >= 400 {
				var e struct{ Error string }
				if err := json.Unmarshal(raw, &e); err != nil {
					t.Fatalf("error answer %q is not JSON: %v", raw, err)
				}
				got.Error = e.Error
			}
			after := requestCounts(t, ts)
			for key, n := range after {
				if n != before[key] {
					got.Endpoint = key.endpoint
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
		})
	}
}

type endpointCode struct{ endpoint, code string }

// requestCounts reads the request duration histogram's counts by endpoint and status.
func requestCounts(t *testing.T, ts *testServer) map[endpointCode]uint64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[endpointCode]uint64{}
	for _, f := range mfs {
		if f.GetName() != "freightcast_inference_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var key endpointCode
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "endpoint":
					key.endpoint = l.GetValue()
				case "code":
					key.code = l.GetValue()
				}
			}
			counts[key] = m.GetHistogram().GetSampleCount()
		}
	}
	return counts
}
