package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// `freightcast run -f docs/examples/X` on the examples of typed models: the YAML as a cluster gets
// it, the model from its generated ConfigMap, events of the fixture's rows in over HTTP, and every
// prediction record holding the framework's answers.
func TestRunServesTheExamples(t *testing.T) {
	for dir, fixture := range map[string]string{"xgboost-late": "xgb_binary_zipmap", "torch-tabular": "torch_tabular_opset17"} {
		t.Run(dir, func(t *testing.T) {
			fx := modelfixtures.Load(t, fixture)
			objs, err := readManifests([]string{filepath.Join("..", "..", "docs", "examples", dir)})
			if err != nil {
				t.Fatal(err)
			}
			models, pipelines, err := objs.resolve(context.Background(), nil, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			// The examples name their features; the fixture's rows are written under these names.
			names := fx.FeatureNames()
			if dir == "xgboost-late" {
				names = [][]string{pipelines[0].Inputs[0].Features}
			}
			eps := startLocalRun(t, models, pipelines)
			url := eps.Ingest[pipelines[0].Config.Name]
			rows := fx.CompleteRows()[:8]
			resp, err := http.Post(url+"/v1/events", "application/x-ndjson", strings.NewReader(fx.EventsNDJSON(rows, names)))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("POST: %d %s", resp.StatusCode, answer)
			}
			for _, r := range rows {
				var record []byte
				testenv.Eventually(t, time.Minute, fmt.Sprintf("prediction of row %d", r), func() error {
					resp, err := http.Get(fmt.Sprintf("%s/v1/predictions/row-%d", url, r))
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
		})
	}
}
