//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSamplesServePredictions applies the shipped samples, as the README tells users to, and uses
// both endpoints the way clients do: events in, predictions out by id, and OIP calls to the model.
func TestSamplesServePredictions(t *testing.T) {
	ns := newNamespace(t, "samples")
	start := time.Now()
	applyFile(t, ns, filepath.Join(repoRoot, "config", "samples"))
	timings.record("samples: model Ready after apply", waitModelReady(t, ns, "freight-delay-risk", 3*time.Minute))
	waitPipelineReady(t, ns, "eu-lanes", 3*time.Minute)
	timings.record("samples: pipeline Ready after apply", time.Since(start))

	out, err := kubectl("get", "fp,pm", "-n", ns)
	if err != nil {
		t.Fatalf("kubectl get fp,pm: %v: %s", err, out)
	}
	t.Logf("kubectl get fp,pm:\n%s", out)
	for _, want := range []string{"freightpipeline.freightcast.io/eu-lanes", "predictionmodel.freightcast.io/freight-delay-risk", "True"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get fp,pm does not show %q", want)
		}
	}

	ingest := exposeOnLoopback(t, ns, "eu-lanes-ingest", "http")
	sample, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.events.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The sample events are raw shipments, which the sample pipeline's transforms turn into
	// the model's features; only their ids matter here.
	var events []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(sample, &events); err != nil || len(events) == 0 {
		t.Fatalf("the sample events: %d read (%v)", len(events), err)
	}
	sent := time.Now()
	// kube-proxy may need a moment before a new NodePort answers.
	eventually(t, 30*time.Second, "ingestion accepts the sample events", func() error {
		resp, err := httpClient.Post("http://"+ingest+"/v1/events", "application/json", bytes.NewReader(sample))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return nil
	})
	for _, e := range events {
		eventually(t, time.Minute, "prediction of "+e.ID, func() error {
			p, found, err := getPrediction(ingest, e.ID)
			if err != nil || !found {
				return fmt.Errorf("not yet (%v)", err)
			}
			if p["id"] != e.ID || p["model"] != "freight-delay-risk" || p["shipment"] == nil {
				return fmt.Errorf("prediction %v does not match event %s", p, e.ID)
			}
			return nil
		})
	}
	timings.record("samples: sample events predicted, first POST to last prediction readable", time.Since(sent))

	model := exposeOnLoopback(t, ns, "freight-delay-risk-predictor", "http")
	request, err := os.ReadFile(filepath.Join(repoRoot, "models", "freight-delay-risk.request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var answer struct {
		ModelName string `json:"model_name"`
		ID        string `json:"id"`
		Outputs   []struct {
			Name  string    `json:"name"`
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	eventually(t, 30*time.Second, "OIP infer on the model Service", func() error {
		resp, err := httpClient.Post("http://"+model+"/v2/models/freight-delay-risk/infer", "application/json", bytes.NewReader(request))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return json.Unmarshal(body, &answer)
	})
	if answer.ModelName != "freight-delay-risk" || answer.ID != "sample-1" || len(answer.Outputs) == 0 {
		t.Fatalf("unexpected OIP answer %+v", answer)
	}
	for _, o := range answer.Outputs {
		if len(o.Shape) == 0 || o.Shape[0] != 2 {
			t.Errorf("output %s has shape %v, want 2 rows", o.Name, o.Shape)
		}
		for _, v := range o.Data {
			if v < 0 || v > 1 {
				t.Errorf("output %s value %v is not a probability", o.Name, v)
			}
		}
	}

	// The model Service answers OIP metadata and readiness too, as KServe clients expect.
	for _, path := range []string{"/v2/health/ready", "/v2/models/freight-delay-risk", "/v2/models/freight-delay-risk/ready"} {
		resp, err := httpClient.Get("http://" + model + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", path, resp.StatusCode)
		}
	}
}
