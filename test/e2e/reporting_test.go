//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// TestReportingPerClientAcrossARestart is issue 19's "done when" on real pods: two clients send
// raw shipments (featurized by the sample's transforms); each reads the report of its own
// shipments only through the ingestion endpoint, in JSON and CSV, and its own riskiest shipments;
// a request without a token is refused; after the reporting pod is deleted, its replacement
// restores the snapshot and replays the stream, and the counts are exactly the old plus the new.
func TestReportingPerClientAcrossARestart(t *testing.T) {
	ns := newNamespace(t, "reporting")
	ctx := context.Background()
	const acme, globex = "acme-report-token", "globex-report-token"
	tokens := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "report-tokens"},
		Data: map[string][]byte{"tokens": []byte("client=acme token=" + acme + "\nclient=globex token=" + globex + "\n")}}
	if err := k8s.Create(ctx, tokens); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "freightcast_v1alpha1_freightpipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The sample's features and lookup tables turn a raw shipment into the model's 12 features.
	_, transforms, ok := strings.Cut(string(sample), "\n  features:\n")
	if !ok {
		t.Fatal("the sample pipeline has no features section")
	}
	deployModel(t, ns)
	manifest := strings.Replace(pipelineYAML("reports", 1, 1, "30s"), "  ingestion:\n",
		"  ingestion:\n    auth: {secretRef: {name: report-tokens}}\n", 1) + `  reporting:
    dimensions:
    - {name: carrier, expression: event.shipment.carrier}
    - {name: lane, expression: event.shipment.lane}
    outputs:
    - {name: delay_risk}
    threshold: "0.5"
    topShipments: 20
  features:
` + transforms
	applyYAML(t, ns, manifest)
	waitPipelineReady(t, ns, "reports", 3*time.Minute)
	waitReportingReady(t, ns, "reports", 2*time.Minute)
	base := "http://" + exposeOnLoopback(t, ns, "reports-ingest", "http")
	httpc := &http.Client{Timeout: 15 * time.Second}

	get := func(path, token string) (int, http.Header, []byte, error) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			return 0, nil, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, body, err
	}
	send := func(token string, events ...string) {
		t.Helper()
		body := []byte("[" + strings.Join(events, ",") + "]")
		eventually(t, 30*time.Second, "POST events", func() error {
			req, err := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := httpc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("%d %s", resp.StatusCode, b)
			}
			return nil
		})
	}
	// sent is what each client sent: per carrier, per lane, and its ids.
	type sent struct {
		carriers, lanes map[string]uint64
		ids             []string
	}
	clients := map[string]*sent{acme: {carriers: map[string]uint64{}, lanes: map[string]uint64{}},
		globex: {carriers: map[string]uint64{}, lanes: map[string]uint64{}}}
	shipments := func(token, prefix, carrier, lane string, n int) {
		t.Helper()
		s := clients[token]
		events := make([]string, n)
		for i := range n {
			id := fmt.Sprintf("%s-%s-%d", prefix, strings.ToLower(strings.ReplaceAll(carrier, " ", "")), len(s.ids))
			events[i] = reportingShipment(id, carrier, lane, i)
			s.ids = append(s.ids, id)
			s.carriers[carrier]++
			s.lanes[lane]++
		}
		send(token, events...)
	}

	// summary reads GET /v1/reports/{dim} as JSON and as CSV, which must agree, as value → count.
	summary := func(token, dim string) (map[string]uint64, error) {
		code, _, body, err := get("/v1/reports/"+dim, token)
		if err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("GET /v1/reports/%s: %d %s %v", dim, code, body, err)
		}
		var ans struct {
			Values []struct {
				Value string `json:"value"`
				Count uint64 `json:"count"`
				Mean  float64
			} `json:"values"`
			OtherValues int  `json:"otherValues"`
			Truncated   bool `json:"truncated"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			return nil, fmt.Errorf("%s: %w", body, err)
		}
		counts := map[string]uint64{}
		for _, v := range ans.Values {
			if v.Mean < 0 || v.Mean > 1 {
				return nil, fmt.Errorf("value %s has mean risk %v, not a probability", v.Value, v.Mean)
			}
			counts[v.Value] = v.Count
		}
		if ans.OtherValues != 0 || ans.Truncated {
			return nil, fmt.Errorf("otherValues %d, truncated %v: %s", ans.OtherValues, ans.Truncated, body)
		}
		code, h, body, err := get("/v1/reports/"+dim+"?format=csv", token)
		if err != nil || code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
			return nil, fmt.Errorf("GET /v1/reports/%s?format=csv: %d %s %s %v", dim, code, h.Get("Content-Type"), body, err)
		}
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil || len(rows) == 0 || strings.Join(rows[0][:2], ",") != "value,count" {
			return nil, fmt.Errorf("CSV %q: %v", body, err)
		}
		fromCSV := map[string]uint64{}
		for _, r := range rows[1:] {
			n, err := strconv.ParseUint(r[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("CSV row %q: %v", r, err)
			}
			fromCSV[r[0]] = n
		}
		if !maps.Equal(counts, fromCSV) {
			return nil, fmt.Errorf("JSON says %v, CSV says %v", counts, fromCSV)
		}
		return counts, nil
	}
	riskiest := func(token string) ([]string, error) {
		code, _, body, err := get("/v1/reports:riskiest?top=50", token)
		if err != nil || code != http.StatusOK {
			return nil, fmt.Errorf("GET /v1/reports:riskiest: %d %s %v", code, body, err)
		}
		var ans struct {
			Shipments []struct {
				ID   string  `json:"id"`
				Risk float64 `json:"risk"`
			} `json:"shipments"`
		}
		if err := json.Unmarshal(body, &ans); err != nil {
			return nil, fmt.Errorf("%s: %w", body, err)
		}
		ids := make([]string, len(ans.Shipments))
		for i, s := range ans.Shipments {
			if i > 0 && s.Risk > ans.Shipments[i-1].Risk {
				return nil, fmt.Errorf("riskiest not in order of risk: %s", body)
			}
			ids[i] = s.ID
		}
		slices.Sort(ids)
		return ids, nil
	}
	// exactly waits until every client's reports hold exactly what it sent, nothing of the
	// other's. Counts only grow while the pipeline works, so the first exact match is final
	// unless something is counted twice, which the last re-read would show.
	exactly := func(what string) time.Duration {
		t.Helper()
		check := func() error {
			for token, s := range clients {
				name, _, _ := strings.Cut(token, "-")
				for dim, want := range map[string]map[string]uint64{"carrier": s.carriers, "lane": s.lanes} {
					got, err := summary(token, dim)
					if err != nil {
						return fmt.Errorf("%s: %w", name, err)
					}
					if !maps.Equal(got, want) {
						return fmt.Errorf("%s's %s counts: %v, want %v", name, dim, got, want)
					}
				}
				ids, err := riskiest(token)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if want := slices.Sorted(slices.Values(s.ids)); !slices.Equal(ids, want) {
					return fmt.Errorf("%s's riskiest shipments: %v, want %v", name, ids, want)
				}
			}
			return nil
		}
		took := eventually(t, 2*time.Minute, what, check)
		time.Sleep(3 * time.Second)
		if err := check(); err != nil {
			t.Fatalf("%s, 3 s later: %v", what, err)
		}
		return took
	}

	shipments(acme, "acme", "Maersk", "CNSHA-NLRTM", 4)
	shipments(acme, "acme", "DHL Freight", "DEHAM-DEMUC", 2)
	shipments(globex, "globex", "Cathay Cargo", "USJFK-HKHKG", 3)
	shipments(globex, "globex", "Globex Lines", "DEHAM-DEMUC", 2)
	took := exactly("each client's reports")
	timings.record("reporting: 11 shipments sent to both clients' exact reports", took)

	// Without a token, with a wrong one, or naming another client: refused.
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v1/reports/carrier", "", http.StatusUnauthorized},
		{"/v1/reports/carrier?format=csv", "", http.StatusUnauthorized},
		{"/v1/reports:riskiest", "", http.StatusUnauthorized},
		{"/v1/reports/carrier", "not-a-token", http.StatusUnauthorized},
		{"/v1/reports/carrier?client=globex", acme, http.StatusForbidden},
	} {
		code, _, body, err := get(c.path, c.token)
		if err != nil || code != c.want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("GET %s with token %q: %d %s %v, want %d", c.path, c.token, code, body, err, c.want)
		}
	}
	// The clients' page, without a token (it asks for one).
	code, h, body, err := get("/v1/reports/", "")
	if err != nil || code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(strings.ToLower(string(body)), "<!doctype html>") || h.Get("Content-Security-Policy") == "" {
		t.Errorf("GET /v1/reports/: %d %v %.200s %v", code, h, body, err)
	}

	// Its metrics are open to the scrapers (spec.networkPolicy.from: here anywhere), its API
	// only to the ingestion pods.
	old := reportingPod(t, ns, "reports")
	probe := startProbe(t, ns, "scraper", nil)
	expectProbe(t, "a scraper reads the reporting pod's metrics", "ok", probe,
		[]string{"http", "http://" + old.Status.PodIP + ":9090/metrics"}, "status 200", "freightcast_report_")
	expectProbe(t, "the reporting pod's API refuses any but the ingestion pods", "refused", probe,
		[]string{"dial", old.Status.PodIP + ":8080"})

	// The reporting pod goes; its replacement restores the snapshot and replays the rest.
	if err := k8s.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 3*time.Minute, "a new reporting pod ready", func() error {
		p := reportingPod(t, ns, "reports")
		if p == nil || p.UID == old.UID {
			return fmt.Errorf("still the old pod")
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("pod %s not ready", p.Name)
	})
	timings.record("reporting: pod deleted to its replacement ready (snapshot restored)", time.Since(start))
	// The old pod wrote its last snapshot on the way out, before the new one started.
	if out, err := kubectl("logs", "-n", ns, reportingPod(t, ns, "reports").Name); err != nil || !strings.Contains(out, "restored the report snapshot") {
		t.Errorf("the new reporting pod did not restore a snapshot: %v\n%s", err, out)
	}
	waitReportingReady(t, ns, "reports", time.Minute)
	shipments(acme, "acme", "Maersk", "CNSHA-NLRTM", 2)
	shipments(acme, "acme", "Evergreen", "TWKHH-USLAX", 1)
	shipments(globex, "globex", "Cathay Cargo", "USJFK-HKHKG", 1)
	exactly("each client's reports after the restart: old plus new, nothing twice")
}

// reportingShipment is a raw shipment event for the sample's transforms; i varies its risk.
func reportingShipment(id, carrier, lane string, i int) string {
	return fmt.Sprintf(`{"id":%q,"shipment":{"carrier":%q,"lane":%q,"mode":"road",`+
		`"origin":{"port":"DEHAM","lat":53.5511,"lon":9.9937,"tz":"Europe/Berlin"},`+
		`"destination":{"port":"DEMUC","lat":48.1351,"lon":11.582},`+
		`"gate_in":"2026-11-27T06:00:00+01:00","departure":"2026-11-27T09:00:00+01:00",`+
		`"weather":{"severity":%g}}}`, id, carrier, lane, float64(i%5)/5)
}

// reportingPod is the pipeline's reporting pod that is not being deleted, nil if none.
func reportingPod(t testing.TB, ns, pipeline string) *corev1.Pod {
	t.Helper()
	pods := &corev1.PodList{}
	if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{
		"app.kubernetes.io/component": "reporting", "freightcast.io/pipeline": pipeline}); err != nil {
		t.Fatal(err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i]
		}
	}
	return nil
}

// waitReportingReady waits for the pipeline's ReportingReady=True.
func waitReportingReady(t testing.TB, ns, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "pipeline "+name+" ReportingReady", func() error {
		p := &freightcastv1alpha1.FreightPipeline{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
			return err
		}
		if c := condition(p.Status.Conditions, freightcastv1alpha1.ConditionReportingReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("ReportingReady is %+v", c)
		}
		return nil
	})
}
