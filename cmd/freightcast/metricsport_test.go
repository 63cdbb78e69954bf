package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// getBody is GET url's status and body; 0 when nothing answers.
func getBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsOnAPortOfTheirOwn: with --metrics-addr, /metrics moves off the API port of both
// data-plane servers, so that a NetworkPolicy can admit the scraper to one port and clients to
// the other.
func TestMetricsOnAPortOfTheirOwn(t *testing.T) {
	t.Run("infer", func(t *testing.T) {
		o := defaultOptions(freightFeatures)
		o.metricsAddr = freePort(t)
		base, _, cancel := startInfer(t, o)
		defer cancel()
		waitReady(t, base)
		if code, _ := getBody(base + "/metrics"); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the API port = %d, want 404", code)
		}
		if code, body := getBody("http://" + o.metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "freightcast_inference_") {
			t.Errorf("GET /metrics on the metrics port = %d %.200s", code, body)
		}
		if code, _ := postSample(t, base); code != http.StatusOK {
			t.Errorf("infer on the API port = %d", code)
		}
	})
	t.Run("ingest", func(t *testing.T) {
		srv := natstest.Start(t)
		cfg := pipelineconfig.Config{Namespace: "ns1", Name: "p1", NATSURL: srv.URL(),
			Queue: queue.Spec{Topology: queue.TopologyFor("ns1", "p1"), Limits: queue.Limits{MaxMessages: 100, MaxBytes: 1 << 20,
				MaxAge: time.Hour, DuplicateWindow: time.Minute, AckWait: time.Minute, MaxDeliver: 3, MaxAckPending: 10, PredictionRetention: time.Hour}},
			Model:     pipelineconfig.Model{Name: "delay", Version: "1", Features: []string{"a", "b"}},
			Ingestion: pipelineconfig.Ingestion{MaxBodyBytes: 1 << 16}, Inference: pipelineconfig.Inference{BatchSize: 8}}
		metricsAddr := freePort(t)
		addr, _ := startIngest(t, cfg, "--metrics-addr="+metricsAddr)
		testenv.Eventually(t, 15*time.Second, "livez", ingestStatus(addr)("/livez", http.StatusOK))
		if code := ingestGet(addr, "/metrics"); code != http.StatusNotFound {
			t.Errorf("GET /metrics on the API port = %d, want 404", code)
		}
		if code, body := getBody("http://" + metricsAddr + "/metrics"); code != http.StatusOK || !strings.Contains(body, "freightcast_ingest_") {
			t.Errorf("GET /metrics on the metrics port = %d %.200s", code, body)
		}
	})
}
