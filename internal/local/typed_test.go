package local

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// The models teams bring, end to end in local mode: events with the features of each input
// (the PyTorch net's mode as an INT64 input beside its FP32 columns) go in over HTTP, through the
// embedded NATS and the workers, and every prediction record holds the framework's answers.
func TestPipelinesServeFixturesLikeTheirFrameworks(t *testing.T) {
	for _, name := range []string{"xgb_binary_zipmap", "skl_impute_onehot", "skl_rf_delay_hours", "torch_tabular_opset17"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := modelfixtures.Load(t, name)
			rt, err := model.LoadFile(fx.Path)
			if err != nil {
				t.Fatal(err)
			}
			p := testPipeline(t, rt)
			p.Config.Model.Name = name
			for k, names := range fx.FeatureNames() {
				in := pipelineconfig.Input{Name: fx.Inputs[k].Name, Features: names}
				if fx.Inputs[k].Datatype != "FP32" {
					in.DataType = fx.Inputs[k].Datatype
				}
				p.Config.Model.Inputs = append(p.Config.Model.Inputs, in)
			}
			if err := p.Config.Validate(); err != nil && !strings.Contains(err.Error(), "natsURL") {
				t.Fatal(err)
			}
			declared := make([]model.FeatureInput, len(p.Config.Model.Inputs))
			for k, in := range p.Config.Model.Inputs {
				declared[k] = model.FeatureInput(in)
			}
			if p.Inputs, err = model.ResolveInputs(nil, declared, rt.Metadata()); err != nil {
				t.Fatal(err)
			}
			p.Model, p.Features = rt, nil
			eps := runLocal(t, Options{Workers: 1}, []Model{{Name: name, Version: "1", Runtime: rt, MaxBatchSize: 64}}, []Pipeline{p})
			url := eps.Ingest[p.Config.Name]

			rows := fx.CompleteRows()
			var body strings.Builder
			for _, r := range rows {
				fmt.Fprintf(&body, `{"id":"row-%d","features":%s}`+"\n", r, fx.EventFeatures(r))
			}
			if a := post(t, url, "application/x-ndjson", body.String()); a.Accepted != len(rows) {
				t.Fatalf("accepted %d of %d", a.Accepted, len(rows))
			}
			for _, r := range rows {
				var record []byte
				testenv.Eventually(t, time.Minute, "prediction of row "+fmt.Sprint(r), func() error {
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
