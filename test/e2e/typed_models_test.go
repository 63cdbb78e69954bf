//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// TestTypedModelsInPipelines applies the examples of models teams bring (docs/examples: an
// XGBoost classifier with ZipMap, a PyTorch net with an FP32 and an INT64 input) as a user
// would, sends the fixture's rows as events, and checks every prediction record against the
// answers of the framework that trained the model; the model's OIP metadata lists each input
// with its datatype.
func TestTypedModelsInPipelines(t *testing.T) {
	for _, c := range []struct{ dir, model, pipeline, fixture string }{
		{"xgboost-late", "xgboost-late", "late-arrivals", "xgb_binary_zipmap"},
		{"torch-tabular", "torch-tabular", "tabular-lanes", "torch_tabular_opset17"},
	} {
		t.Run(c.dir, func(t *testing.T) {
			fx := modelfixtures.Load(t, c.fixture)
			ns := newNamespace(t, c.dir)
			start := time.Now()
			applyFile(t, ns, filepath.Join(repoRoot, "docs", "examples", c.dir))
			waitModelReady(t, ns, c.model, 3*time.Minute)
			waitPipelineReady(t, ns, c.pipeline, 3*time.Minute)
			timings.record("typed models: "+c.dir+" pipeline Ready after apply", time.Since(start))

			model := exposeOnLoopback(t, ns, c.model+"-predictor", "http")
			var meta struct {
				Inputs []struct {
					Name     string `json:"name"`
					DataType string `json:"datatype"`
				} `json:"inputs"`
			}
			eventually(t, 30*time.Second, "OIP model metadata", func() error {
				resp, err := httpClient.Get("http://" + model + "/v2/models/" + c.model)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d: %s", resp.StatusCode, body)
				}
				return json.Unmarshal(body, &meta)
			})
			if len(meta.Inputs) != len(fx.Inputs) {
				t.Fatalf("metadata lists %d inputs, the model has %d: %+v", len(meta.Inputs), len(fx.Inputs), meta.Inputs)
			}
			for i, in := range fx.Inputs {
				if meta.Inputs[i].Name != in.Name || meta.Inputs[i].DataType != in.Datatype {
					t.Errorf("metadata input %d is %+v, the model's is %s %s", i, meta.Inputs[i], in.Name, in.Datatype)
				}
			}

			names := fx.FeatureNames()
			if c.dir == "xgboost-late" {
				names = [][]string{{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road", "carrier_on_time_rate",
					"port_congestion_index", "weather_severity", "month_sin", "month_cos", "customs_complexity", "dwell_time_hours"}}
			}
			rows := fx.CompleteRows()
			rows = rows[:min(len(rows), 16)]
			ingest := exposeOnLoopback(t, ns, c.pipeline+"-ingest", "http")
			body := fx.EventsNDJSON(rows, names)
			sent := time.Now()
			eventually(t, 30*time.Second, "ingestion accepts the fixture's rows", func() error {
				resp, err := httpClient.Post("http://"+ingest+"/v1/events", "application/x-ndjson", strings.NewReader(body))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				answer, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != http.StatusAccepted {
					return fmt.Errorf("status %d: %s", resp.StatusCode, answer)
				}
				return nil
			})
			for _, r := range rows {
				var record []byte
				eventually(t, time.Minute, fmt.Sprintf("prediction of row %d", r), func() error {
					resp, err := httpClient.Get(fmt.Sprintf("http://%s/v1/predictions/row-%d", ingest, r))
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					record, _ = io.ReadAll(resp.Body)
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				})
				fx.CheckRecord(t, record, r)
			}
			timings.record("typed models: "+c.dir+" rows predicted, first POST to last record readable", time.Since(sent))
		})
	}
}
