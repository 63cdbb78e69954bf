//go:build e2e

package e2e

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/otlptest"
)

// TestTracesFromRealPods turns tracing on through the chart and checks that one client trace
// reaches the OTLP endpoint from the ingestion pod, from the inference worker on the far side of
// NATS, and from a model-serving pod.
func TestTracesFromRealPods(t *testing.T) {
	nodeIP := os.Getenv("FREIGHTCAST_E2E_NODE_IP")
	if net.ParseIP(nodeIP) == nil {
		t.Fatalf("FREIGHTCAST_E2E_NODE_IP %q is not an address (make e2e sets it)", nodeIP)
	}
	// Pods reach this machine at its own address: the receiver listens there.
	recv := otlptest.NewReceiver(t, net.JoinHostPort(nodeIP, "0"))
	start := time.Now()
	if err := helmRelease("--set", "tracing.otlpEndpoint="+recv.URL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := helmRelease("--set", "tracing.otlpEndpoint="); err != nil {
			t.Errorf("turning tracing off again: %v", err)
		}
	})
	if err := waitDeploymentAvailable(ctxWithTimeout(3*time.Minute), systemNamespace, managerName); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, "tracing")
	deployModel(t, ns)
	applyYAML(t, ns, pipelineYAML("traced", 1, 2, "30s"))
	ingest, _ := pipelineEndpoints(t, ns, "traced")
	timings.record("tracing: chart upgraded with an OTLP endpoint to a traced pipeline Ready", time.Since(start))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + traceID + "-00f067aa0ba902b7-01"
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, e := range makeEvents("traced", 20) {
		_ = enc.Encode(e)
	}
	post := func(url, contentType string, payload []byte, want int) {
		t.Helper()
		eventually(t, 30*time.Second, "POST "+url, func() error {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("traceparent", traceparent)
			resp, err := httpClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	post("http://"+ingest+"/v1/events", "application/x-ndjson", body.Bytes(), http.StatusAccepted)
	model := exposeOnLoopback(t, ns, "freight-delay-risk-predictor", "http")
	request, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	post("http://"+model+"/v2/models/freight-delay-risk/infer", "application/json", request, http.StatusOK)

	// Every service must have exported a span of the client's trace: the batch span of the worker
	// joins it through the context that crossed NATS in the message headers.
	took := eventually(t, time.Minute, "spans of the client's trace from ingestion, worker and model serving", func() error {
		_, spans := recv.Received()
		seen := map[string]bool{}
		for _, s := range spans {
			if hex.EncodeToString(s.TraceId) == traceID {
				seen[s.Service] = true
			}
		}
		var missing []string
		for _, svc := range []string{"freightcast-ingest", "freightcast-inference", "freightcast-predictor"} {
			if !seen[svc] {
				missing = append(missing, svc)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no span of trace %s from %s (%d spans received)", traceID, strings.Join(missing, ", "), len(spans))
		}
		return nil
	})
	timings.record("tracing: request to spans of one trace from ingestion, worker and serving pods", took)
}
