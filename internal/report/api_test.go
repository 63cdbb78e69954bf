package report

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/httpauth"
)

// apiRig is a service over generated records behind the API on a real listener, with tokens
// for two clients and a read-all one.
type apiRig struct {
	url  string
	recs []genRecord
}

func newAPIRig(t *testing.T) *apiRig { return newAPIRigWithPage(t, nil) }

func newAPIRigWithPage(t *testing.T, page http.Handler) *apiRig {
	r := newRig(t)
	recs := generate(t, 3, 2000)
	publish(t, r.js, r.spec, recs)
	svc, stop := r.run(t, Options{})
	t.Cleanup(stop)
	waitApplied(t, svc, uint64(len(recs)))
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("client=acme token=tok-acme\nclient=globex token=tok-globex\nclient=ops token=tok-ops scopes=read-all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := httpauth.NewTokens(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api := NewAPI(svc, tokens, func() time.Time { return t0.Add(25 * time.Hour) })
	api.Page = page
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &apiRig{url: srv.URL, recs: recs}
}

func (a *apiRig) get(t *testing.T, token, path string, accept string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, a.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

const window = "from=2026-11-29T23:00:00Z&to=2026-12-01T00:00:00Z"

func TestAPIScopesEachClientToItsOwnShipments(t *testing.T) {
	a := newAPIRig(t)
	cases := map[string]struct {
		token, query string
		visible      func(string) bool
	}{
		"acme":                 {token: "tok-acme", visible: func(c string) bool { return c == "acme" }},
		"globex":               {token: "tok-globex", visible: func(c string) bool { return c == "globex" }},
		"read-all":             {token: "tok-ops", visible: func(string) bool { return true }},
		"read-all, one client": {token: "tok-ops", query: "&client=acme", visible: func(c string) bool { return c == "acme" }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, _, body := a.get(t, tc.token, "/v1/reports/lane?bucket=1h&top=1000&"+window+tc.query, "")
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, body)
			}
			var got struct {
				Values []Summary `json:"values"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			want := expected(a.recs, tc.visible, func(g genRecord) string { return g.lane })
			if len(got.Values) != len(want) {
				t.Fatalf("%d values, want %d", len(got.Values), len(want))
			}
			for _, v := range got.Values {
				if w := want[v.Value]; v.Count != w.Count || v.AboveThreshold != w.AboveThreshold {
					t.Errorf("%s: count %d above %d, want %d and %d", v.Value, v.Count, v.AboveThreshold, w.Count, w.AboveThreshold)
				}
			}
			status, _, body = a.get(t, tc.token, "/v1/reports:riskiest?top=50&"+window+tc.query, "")
			if status != http.StatusOK {
				t.Fatalf("%d %s", status, body)
			}
			var risky struct {
				Shipments []Shipment `json:"shipments"`
			}
			if err := json.Unmarshal(body, &risky); err != nil {
				t.Fatal(err)
			}
			if len(risky.Shipments) == 0 {
				t.Fatal("no riskiest shipments")
			}
			owner := map[string]string{}
			for _, g := range a.recs {
				owner[g.id] = g.client
			}
			for i, s := range risky.Shipments {
				if !tc.visible(owner[s.ID]) {
					t.Errorf("shipment %s of client %q is shown", s.ID, owner[s.ID])
				}
				if i > 0 && s.Risk > risky.Shipments[i-1].Risk {
					t.Error("riskiest shipments are not sorted by risk")
				}
			}
		})
	}
}

func TestAPIRefusals(t *testing.T) {
	a := newAPIRig(t)
	cases := map[string]struct {
		token, path string
		status      int
		wantInError string
	}{
		"no token":          {"", "/v1/reports/lane", 401, "bearer token"},
		"unknown token":     {"nope", "/v1/reports/lane", 401, "bearer token"},
		"another client":    {"tok-acme", "/v1/reports/lane?client=globex", 403, "another client"},
		"bad from":          {"tok-acme", "/v1/reports/lane?from=yesterday", 400, `from "yesterday"`},
		"bad to":            {"tok-acme", "/v1/reports/lane?to=2026-13-01T00:00:00Z", 400, `to "2026-13-01T00:00:00Z"`},
		"from after to":     {"tok-acme", "/v1/reports/lane?from=2026-12-01T00:00:00Z&to=2026-11-30T00:00:00Z", 400, "is not before to"},
		"bucket":            {"tok-acme", "/v1/reports/lane?bucket=7m", 400, `bucket "7m"`},
		"top":               {"tok-acme", "/v1/reports/lane?top=0", 400, `top "0"`},
		"top too big":       {"tok-acme", "/v1/reports:riskiest?top=1001", 400, `top "1001"`},
		"unknown dimension": {"tok-acme", "/v1/reports/port", 400, `dimension "port"`},
		"unknown parameter": {"tok-acme", "/v1/reports/lane?form=x", 400, `unknown parameter "form"`},
		"twice":             {"tok-acme", "/v1/reports/lane?top=1&top=2", 400, `parameter "top" is given 2 times`},
		"output":            {"tok-acme", "/v1/reports/lane?output=eta[0]", 400, `output "eta[0]"`},
		"sort":              {"tok-acme", "/v1/reports/lane?sort=p99", 400, `sort "p99"`},
		"span":              {"tok-acme", "/v1/reports/lane?from=2025-01-01T00:00:00Z", 400, "more than the longest retention"},
		"page not built":    {"", "/v1/reports/", 404, "page"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, h, body := a.get(t, tc.token, tc.path, "")
			var e struct{ Error string }
			_ = json.Unmarshal(body, &e)
			if status != tc.status || !strings.Contains(e.Error, tc.wantInError) || h.Get("Content-Type") != "application/json" {
				t.Fatalf("%d %s %s, want %d mentioning %q", status, h.Get("Content-Type"), body, tc.status, tc.wantInError)
			}
		})
	}
}

func TestAPIDescribeTrendAndCSV(t *testing.T) {
	a := newAPIRig(t)
	status, _, body := a.get(t, "tok-acme", "/v1/reports:describe", "")
	if status != 200 || !strings.Contains(string(body), `"dimensions":["lane","carrier"]`) || !strings.Contains(string(body), `"outputs":["delay_risk[0]"]`) {
		t.Fatalf("describe: %d %s", status, body)
	}
	acme := func(c string) bool { return c == "acme" }
	want := expected(a.recs, acme, func(g genRecord) string { return g.carrier })["maersk"]
	status, _, body = a.get(t, "tok-acme", "/v1/reports/carrier/maersk?bucket=1h&"+window, "")
	var trend struct {
		Points []Point `json:"points"`
	}
	if err := json.Unmarshal(body, &trend); status != 200 || err != nil {
		t.Fatalf("trend: %d %s", status, body)
	}
	var total uint64
	for i, p := range trend.Points {
		total += p.Count
		if i > 0 && !p.Start.After(trend.Points[i-1].Start) {
			t.Error("trend points are not in time order")
		}
	}
	if len(trend.Points) != 24 || total != want.Count {
		t.Errorf("trend: %d hourly points counting %d, want 24 counting %d", len(trend.Points), total, want.Count)
	}
	status, h, body := a.get(t, "tok-acme", "/v1/reports/carrier?"+window, "text/csv")
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if status != 200 || err != nil || h.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("csv: %d %v %s", status, err, body)
	}
	if strings.Join(rows[0], ",") != "value,count,mean,p50,p90,p99,aboveThreshold" || len(rows) != 5 {
		t.Fatalf("csv rows %v, want a header and maersk, msc, cma, unknown", rows)
	}
}

// FuzzParseQuery: any query string is accepted with values in range, or refused with a 400.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", window, "bucket=1h&top=5&sort=count", "from=x", "top=-1", "output=delay_risk[0]&format=csv", "%zz", "client=acme&client=b"} {
		f.Add(s)
	}
	cfg := testReporting()
	f.Fuzz(func(t *testing.T, raw string) {
		for _, kind := range []queryKind{querySummary, queryTrend, queryRiskiest} {
			q, err := ParseQuery(cfg, raw, kind, t0)
			if err != nil {
				if e, ok := err.(*apiError); !ok || e.status != 400 {
					t.Fatalf("error %v is not a 400", err)
				}
				continue
			}
			if !q.From.Before(q.To) || q.Top < 1 || q.Top > MaxTop || q.Tier < 0 || q.Tier >= len(cfg.Buckets) || q.Output < 0 || q.Output >= len(cfg.Outputs) {
				t.Fatalf("accepted %q as %+v", raw, q)
			}
		}
	})
}
