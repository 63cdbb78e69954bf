package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/report"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// withReporting gives the test pipeline spec.reporting as the operator renders it: a dimension
// of the shipment's carrier and one of its ref's last digit, over the model's delay_risk.
func withReporting(p *Pipeline) {
	p.Config.Queue.Reporting = true
	p.Config.Reporting = &pipelineconfig.Reporting{
		Dimensions: []pipelineconfig.ReportDimension{
			{Name: "carrier", Expression: `has(event.shipment.carrier) ? event.shipment.carrier : "none"`},
			{Name: "digit", Expression: "event.shipment.ref.substring(event.shipment.ref.size() - 1)"},
		},
		Outputs: []pipelineconfig.ReportOutput{{Name: "delay_risk"}}, Threshold: 0.5,
		Buckets:   []pipelineconfig.ReportBucket{{Width: "5m", Retention: "48h"}, {Width: "1h", Retention: "2160h"}},
		MaxValues: 1000, TopShipments: 20,
	}
}

// clientGet sends a GET as a client with token; it returns the status and body.
func clientGet(t testing.TB, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// carrierReport reads /v1/reports/carrier as a client, through the pipeline's client endpoint.
func carrierReport(t testing.TB, ingestURL, token string) (map[string]report.Summary, error) {
	status, body := clientGet(t, ingestURL+"/v1/reports/carrier", token)
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/reports/carrier: %d %s", status, body)
	}
	var answer struct {
		Values []report.Summary `json:"values"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("GET /v1/reports/carrier: %w: %s", err, body)
	}
	out := map[string]report.Summary{}
	for _, v := range answer.Values {
		out[v.Value] = v
	}
	return out, nil
}

// TestAClientsPredictionsShowInItsReports runs a pipeline with spec.reporting in local mode (the
// embedded nats-server, the real model, the reporting role of `freightcast report`): two clients
// send events with their own tokens, and each reads, on the pipeline's client endpoint, the
// counts of its own shipments only, with the mean of the predictions it can read back. After a
// restart on the same data directory the role resumes from its snapshot (in the embedded
// JetStream, under the data directory) and counts nothing twice.
func TestAClientsPredictionsShowInItsReports(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("client=acme token=tok-acme\nclient=globex token=tok-globex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mutate := func(p *Pipeline) {
		withReporting(p)
		p.Config.Ingestion.TokensFile = tokens
		// As the operator renders it: the cluster's Service, which local mode replaces.
		p.Config.Ingestion.ReportingURL = "http://orders-reporting.local.svc:8080"
	}
	opts := Options{DataDir: filepath.Join(dir, "data"), Workers: 1}
	// acme: 8 shipments with maersk, 4 with cma; globex: 5 with msc.
	sent := map[string]map[string][]string{"acme": {}, "globex": {}}
	send := func(t *testing.T, url, client, carrier string, from, n int) {
		var body strings.Builder
		for i := from; i < from+n; i++ {
			id := fmt.Sprintf("%s-%s-%02d", client, carrier, i)
			body.WriteString(strings.Replace(eventJSON(id, i), `"shipment":{`, `"shipment":{"carrier":"`+carrier+`",`, 1) + "\n")
			sent[client][carrier] = append(sent[client][carrier], id)
		}
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/events", strings.NewReader(body.String()))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer tok-"+client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST as %s: %d %s", client, resp.StatusCode, data)
		}
	}
	// want is what a client's carrier report must say: the count of its shipments per carrier
	// and the mean of their predictions, read back by id.
	want := func(t *testing.T, url, client string) (map[string]report.Summary, error) {
		out := map[string]report.Summary{}
		for carrier, ids := range sent[client] {
			var sum float64
			for _, id := range ids {
				status, body := clientGet(t, url+"/v1/predictions/"+id, "tok-"+client)
				if status != http.StatusOK {
					return nil, fmt.Errorf("the prediction of %s: %d %s", id, status, body)
				}
				p, err := event.DecodePrediction(body)
				if err != nil {
					return nil, err
				}
				sum += p.Outputs["delay_risk"][0].Num
			}
			out[carrier] = report.Summary{Value: carrier, Stats: report.Stats{Count: uint64(len(ids)), Mean: sum / float64(len(ids))}}
		}
		return out, nil
	}
	check := func(t *testing.T, url string) {
		for _, client := range []string{"acme", "globex"} {
			testenv.Eventually(t, time.Minute, client+"'s carrier report", func() error {
				expected, err := want(t, url, client)
				if err != nil {
					return err
				}
				got, err := carrierReport(t, url, "tok-"+client)
				if err != nil {
					return err
				}
				if len(got) != len(expected) {
					return fmt.Errorf("values %v, want exactly %v", got, expected)
				}
				for carrier, w := range expected {
					g := got[carrier]
					if g.Count != w.Count || math.Abs(g.Mean-w.Mean) > 1e-9 {
						return fmt.Errorf("%s: count %d mean %v, want %d and %v", carrier, g.Count, g.Mean, w.Count, w.Mean)
					}
				}
				return nil
			})
		}
		if status, body := clientGet(t, url+"/v1/reports/carrier?client=acme", "tok-globex"); status != http.StatusForbidden {
			t.Errorf("globex naming acme: %d %s, want 403", status, body)
		}
		if status, _ := clientGet(t, url+"/v1/reports/carrier", ""); status != http.StatusUnauthorized {
			t.Errorf("no token: %d, want 401", status)
		}
	}

	t.Run("before", func(t *testing.T) {
		eps := startWithOptions(t, opts, mutate)
		url := eps.Ingest["orders"]
		if eps.Reports["orders"] == "" || strings.Contains(eps.Reports["orders"], "svc") {
			t.Fatalf("the reporting role's endpoint: %q", eps.Reports["orders"])
		}
		send(t, url, "acme", "maersk", 0, 8)
		send(t, url, "acme", "cma", 0, 4)
		send(t, url, "globex", "msc", 0, 5)
		check(t, url)
		// The role's own port: its probes and metrics, as the pod's.
		if status, body := clientGet(t, eps.Reports["orders"]+"/readyz", ""); status != http.StatusOK {
			t.Errorf("/readyz: %d %s", status, body)
		}
		if status, body := clientGet(t, eps.Reports["orders"]+"/metrics", ""); !strings.Contains(string(body), "freightcast_report_records_applied_total 17") {
			t.Errorf("/metrics: %d, want 17 records applied in:\n%.3000s", status, body)
		}
		// The page needs no token.
		if status, body := clientGet(t, url+"/v1/reports/", ""); status != http.StatusOK || !strings.Contains(string(body), "<title>Freightcast reports</title>") {
			t.Errorf("the page: %d %.200s", status, body)
		}
	})
	t.Run("after a restart", func(t *testing.T) {
		eps := startWithOptions(t, opts, mutate)
		_, js := natstest.Connect(t, eps.NATS)
		store, err := js.ObjectStore(context.Background(), queue.TopologyFor("local", "orders").ReportStore)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.GetInfo(context.Background(), report.SnapshotName); err != nil {
			t.Errorf("the snapshot the first run wrote on stop: %v", err)
		}
		url := eps.Ingest["orders"]
		check(t, url)
		send(t, url, "acme", "maersk", 8, 3)
		check(t, url)
	})
}
