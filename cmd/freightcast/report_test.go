package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
)

// TestReportRoleServesAClientsReportsAndSnapshotsOnStop runs `freightcast report` as the binary
// would: it turns ready, serves a client its own reports with its token, exports its metrics,
// and on stop writes the snapshot a restart resumes from.
func TestReportRoleServesAClientsReportsAndSnapshotsOnStop(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv.URL())
	spec := pipelinetest.Spec("freight", "lanes", 1)
	spec.Reporting = true
	ctx := context.Background()
	if _, err := queue.Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, c := range []string{"acme", "acme", "globex"} {
		data, err := event.EncodePrediction(event.Prediction{ID: "e" + string(rune('0'+i)), Model: "delay", ModelVersion: "1",
			Outputs: map[string][]event.Value{"delay_risk": event.Numbers(0.9)}, Shipment: []byte(`{"lane":"CNSHA-NLRTM"}`), ReceivedAt: now, PredictedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(spec.PredictionKeySubject("e" + string(rune('0'+i))))
		m.Data = data
		m.Header.Set(queue.HeaderClient, c)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("client=acme token=tok-acme\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := pipelineconfig.Config{Namespace: "freight", Name: "lanes", NATSURL: srv.URL(), Queue: spec,
		Model:     pipelineconfig.Model{Name: "delay", Features: []string{"a"}},
		Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 1 << 20, TokensFile: tokens}, Inference: pipelineconfig.Inference{BatchSize: 8},
		Reporting: &pipelineconfig.Reporting{Dimensions: []pipelineconfig.ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}},
			Outputs: []pipelineconfig.ReportOutput{{Name: "delay_risk"}}, Threshold: 0.5,
			Buckets: []pipelineconfig.ReportBucket{{Width: "1h", Retention: "48h"}}, MaxValues: 10, TopShipments: 5}}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pipeline.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runReport(runCtx, []string{"--addr=" + addr, "--config=" + cfgPath}) }()
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := get("/v1/reports/lane", "tok-acme")
		if status == 200 && strings.Contains(body, `"count":2`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acme's report: %d %s, want its 2 predictions", status, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The clients' page needs no token (its API calls do).
	if status, body := get("/v1/reports/", ""); status != 200 || !strings.Contains(body, "<title>Freightcast reports</title>") {
		t.Errorf("the page: %d %.200s", status, body)
	}
	if status, _ := get("/readyz", ""); status != 200 {
		t.Errorf("/readyz = %d once serving", status)
	}
	if status, body := get("/metrics", ""); status != 200 || !strings.Contains(body, "freightcast_report_records_applied_total 3") {
		t.Errorf("/metrics: %d, want freightcast_report_records_applied_total 3 in:\n%.2000s", status, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, spec.BucketStream(), spec.ReportConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if floor := c.CachedInfo().AckFloor.Stream; floor != 3 {
		t.Errorf("ack floor after a clean stop = %d, want 3: the last snapshot covers everything", floor)
	}
}
