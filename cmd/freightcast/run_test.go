package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/testcerts"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunReadsTheSamples resolves config/samples as `make run` does: the model from its ConfigMap,
// the pipeline's config with its defaults, features from the model.
func TestRunReadsTheSamples(t *testing.T) {
	models, pipelines := resolveSamples(t)
	if len(models) != 1 || models[0].Name != "freight-delay-risk" || models[0].MaxBatchSize != 64 {
		t.Fatalf("models = %+v", models)
	}
	if len(pipelines) != 1 {
		t.Fatalf("pipelines = %+v", pipelines)
	}
	p := pipelines[0]
	if p.Config.Name != "eu-lanes" || len(p.Inputs) != 1 || len(p.Inputs[0].Features) != 12 || p.Inputs[0].Features[0] != "distance_km" ||
		p.Config.Ingestion.RateLimit == nil || p.Config.Queue.MaxDeliver != 5 ||
		p.Autoscale.MaxReplicas != 10 || p.Autoscale.TargetPerReplica != 500 || p.PollInterval != 2*time.Second {
		t.Errorf("pipeline = %+v", p.Config)
	}
}

func TestRunRefusesBadManifests(t *testing.T) {
	const model = `apiVersion: freightcast.io/v1alpha1
kind: PredictionModel
metadata: {name: m}
spec:
  source: {configMap: {name: m-onnx}}
`
	cases := map[string]struct {
		files   map[string]string
		pvcs    map[string]string
		wantErr string
	}{
		"unknown field": {
			files:   map[string]string{"a.yaml": strings.Replace(model, "spec:", "spec:\n  replicaz: 3", 1)},
			wantErr: `unknown field "spec.replicaz"`,
		},
		"unsupported kind": {
			files:   map[string]string{"a.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"},
			wantErr: "not Service",
		},
		"model without its ConfigMap": {
			files:   map[string]string{"a.yaml": model},
			wantErr: "ConfigMap m-onnx is not in the files",
		},
		"pipeline without its model": {
			files:   map[string]string{"a.yaml": "apiVersion: freightcast.io/v1alpha1\nkind: FreightPipeline\nmetadata: {name: p}\nspec: {modelRef: {name: ghost}}\n"},
			wantErr: "its model ghost is not in the files",
		},
		"pvc source without a mapping": {
			files:   map[string]string{"a.yaml": strings.Replace(model, "{configMap: {name: m-onnx}}", "{persistentVolumeClaim: {claimName: models, path: m.onnx}}", 1)},
			wantErr: "--pvc models=DIR",
		},
		"a ConfigMap key that is not a model": {
			files:   map[string]string{"a.yaml": model + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: m-onnx}\ndata: {model.onnx: not-a-model}\n"},
			wantErr: "PredictionModel m",
		},
		"model tls": {
			files:   map[string]string{"a.yaml": model + "  tls: {secretRef: {name: c}}\n"},
			wantErr: "PredictionModel m: spec.tls: local mode serves plain HTTP only",
		},
		"ingestion tls": {
			files:   map[string]string{"a.yaml": "apiVersion: freightcast.io/v1alpha1\nkind: FreightPipeline\nmetadata: {name: p}\nspec: {modelRef: {name: m}, ingestion: {tls: {secretRef: {name: c}}}}\n"},
			wantErr: "FreightPipeline p: spec.ingestion.tls: local mode serves plain HTTP only",
		},
		"model served by another runtime": {
			files:   map[string]string{"a.yaml": model + "  runtime: {image: mlserver:1.6}\n"},
			wantErr: "PredictionModel m: spec.runtime: local mode runs models with its own runtime only",
		},
		"remote scoring": {
			files:   map[string]string{"a.yaml": "apiVersion: freightcast.io/v1alpha1\nkind: FreightPipeline\nmetadata: {name: p}\nspec: {modelRef: {name: m}, inference: {scoring: Remote}}\n"},
			wantErr: "FreightPipeline p: spec.inference.scoring Remote: local mode scores in-process only",
		},
		"a reporting dimension that does not compile": {
			files:   map[string]string{"a.yaml": "apiVersion: freightcast.io/v1alpha1\nkind: FreightPipeline\nmetadata: {name: p}\nspec: {modelRef: {name: m}, reporting: {dimensions: [{name: lane, expression: 'event.shipment.lane +'}], outputs: [{name: delay_risk}]}}\n"},
			wantErr: `FreightPipeline p: spec.reporting: dimension "lane": expression "event.shipment.lane +"`,
		},
		"nothing to run": {
			files:   map[string]string{"a.yaml": "# only a comment\n"},
			wantErr: "no PredictionModel or FreightPipeline",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for n, c := range tc.files {
				writeFile(t, dir, n, c)
			}
			m, err := readManifests([]string{dir})
			if err == nil {
				_, _, err = m.resolve(context.Background(), tc.pvcs, t.TempDir())
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseRunFlags(t *testing.T) {
	if _, err := parseRunFlags(nil); err == nil || !strings.Contains(err.Error(), "-f FILE is required") {
		t.Errorf("no -f: err = %v", err)
	}
	o, err := parseRunFlags([]string{"-f", "a.yaml", "-f", "b", "--pvc", "models=/srv/models", "--workers=4"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.files) != 2 || o.workers != 4 || o.pvcs[0] != "models=/srv/models" || o.ingestAddr != "127.0.0.1:8080" || o.reportAddr != "127.0.0.1:8180" || o.maxStore != 0 {
		t.Errorf("options %+v", o)
	}
	if o, err := parseRunFlags([]string{"-f", "a.yaml", "--store-size=4Gi"}); err != nil || o.maxStore != 4<<30 {
		t.Errorf("--store-size=4Gi: %+v, %v", o, err)
	}
	for _, bad := range []string{"--store-size=-1Gi", "--store-size=lots"} {
		if _, err := parseRunFlags([]string{"-f", "a.yaml", bad}); err == nil || !strings.Contains(err.Error(), "--store-size") {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

// TestRunReadsTokensFromSecretManifests: spec.auth and spec.ingestion.auth take their tokens
// from Secret manifests in the -f set, as the pods take them from the mounted Secret; a Secret
// or key missing from the files is named.
func TestRunReadsTokensFromSecretManifests(t *testing.T) {
	read := func(name string) string { return readSample(t, name) }
	const auth = "spec:\n  auth: {secretRef: {name: api-tokens, key: tokens}}\n"
	const ingestionAuth = "  ingestion:\n    auth: {secretRef: {name: api-tokens, key: ingest}}\n"
	const secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: api-tokens}\nstringData: {tokens: \"model-token\\n\"}\ndata: {ingest: aW5nZXN0LXRva2VuCg==}\n"
	files := func(withSecret bool) string {
		dir := t.TempDir()
		writeFile(t, dir, "model.yaml", strings.Replace(read("freightcast_v1alpha1_predictionmodel.yaml"), "spec:\n", auth, 1))
		writeFile(t, dir, "pipeline.yaml", strings.Replace(read("freightcast_v1alpha1_freightpipeline.yaml"), "  ingestion:\n", ingestionAuth, 1))
		writeFile(t, dir, "cm.yaml", read("freightcast_v1alpha1_model_configmap.yaml"))
		if withSecret {
			writeFile(t, dir, "secret.yaml", secret)
		}
		return dir
	}

	m, err := readManifests([]string{files(true)})
	if err != nil {
		t.Fatal(err)
	}
	models, pipelines, err := m.resolve(context.Background(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for what, file := range map[string]string{"model-token\n": models[0].TokensFile, "ingest-token\n": pipelines[0].Config.Ingestion.TokensFile} {
		got, err := os.ReadFile(file)
		if err != nil || string(got) != what {
			t.Errorf("tokens file %q holds %q (%v), want %q", file, got, err, what)
		}
	}

	m, err = readManifests([]string{files(false)})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = m.resolve(context.Background(), nil, t.TempDir())
	if want := "PredictionModel freight-delay-risk: spec.auth.secretRef: Secret api-tokens is not in the files; add its manifest to the -f set"; err == nil || err.Error() != want {
		t.Errorf("without the Secret: %v, want %q", err, want)
	}
}

// TestRunReadsReporting: a pipeline with spec.reporting resolves to the config the reporting pod
// reads, defaults included, with its queue provisioning the report consumer and store.
func TestRunReadsReporting(t *testing.T) {
	dir := t.TempDir()
	const reporting = "spec:\n  reporting:\n    dimensions: [{name: carrier, expression: event.shipment.carrier}]\n    outputs: [{name: delay_risk}]\n    threshold: \"0.7\"\n"
	writeFile(t, dir, "model.yaml", readSample(t, "freightcast_v1alpha1_predictionmodel.yaml"))
	writeFile(t, dir, "pipeline.yaml", strings.Replace(readSample(t, "freightcast_v1alpha1_freightpipeline.yaml"), "spec:\n", reporting, 1))
	writeFile(t, dir, "cm.yaml", readSample(t, "freightcast_v1alpha1_model_configmap.yaml"))
	m, err := readManifests([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	_, pipelines, err := m.resolve(context.Background(), nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := pipelines[0].Config
	if !cfg.Queue.Reporting || cfg.Reporting == nil {
		t.Fatalf("queue.reporting %v, reporting %+v: want both", cfg.Queue.Reporting, cfg.Reporting)
	}
	want := pipelineconfig.Reporting{Dimensions: []pipelineconfig.ReportDimension{{Name: "carrier", Expression: "event.shipment.carrier"}},
		Outputs: []pipelineconfig.ReportOutput{{Name: "delay_risk"}}, Threshold: 0.7,
		Buckets:   []pipelineconfig.ReportBucket{{Width: "5m", Retention: "48h"}, {Width: "1h", Retention: "2160h"}},
		MaxValues: cfg.Reporting.MaxValues, TopShipments: cfg.Reporting.TopShipments}
	if diff := cmp.Diff(want, *cfg.Reporting); diff != "" || cfg.Reporting.Validate() != nil {
		t.Errorf("reporting (-want +got):\n%s%v", diff, cfg.Reporting.Validate())
	}
}

// TestLocalModeDownloadsWithTheCABundle: local mode reads spec.source.caBundle from the ConfigMaps
// in its files, as the operator mounts it into the pods, and refuses one that is missing or bad.
func TestLocalModeDownloadsWithTheCABundle(t *testing.T) {
	model := []byte("model bytes from a private store")
	ca := testcerts.NewCA(t)
	store := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(model) }))
	store.TLS = ca.ServerConfig(t)
	store.StartTLS()
	defer store.Close()
	sum := sha256.Sum256(model)
	pm := &freightcastv1alpha1.PredictionModel{Spec: freightcastv1alpha1.PredictionModelSpec{Source: freightcastv1alpha1.ModelSource{
		URI: store.URL + "/m.onnx", SHA256: hex.EncodeToString(sum[:]),
		CABundle: &freightcastv1alpha1.CABundleSource{ConfigMap: freightcastv1alpha1.ConfigMapKeySelector{Name: "store-ca"}}}}}
	caMap := func(pem string) map[string]*corev1.ConfigMap {
		return map[string]*corev1.ConfigMap{"store-ca": {ObjectMeta: metav1.ObjectMeta{Name: "store-ca"}, Data: map[string]string{"ca.crt": pem}}}
	}
	cases := map[string]struct {
		configMaps map[string]*corev1.ConfigMap
		wantErr    string
	}{
		"the store's CA":    {configMaps: caMap(string(ca.PEM))},
		"another CA":        {configMaps: caMap(string(testcerts.NewCA(t).PEM)), wantErr: "unknown authority"},
		"no such ConfigMap": {wantErr: "spec.source.caBundle: its ConfigMap store-ca is not in the files"},
		"not a certificate": {configMaps: caMap("hello"), wantErr: `spec.source.caBundle: ConfigMap store-ca key "ca.crt": CA bundle holds no PEM block`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			m := &manifests{configMaps: tc.configMaps}
			got, err := m.modelBytes(context.Background(), pm, nil, t.TempDir())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != string(model) {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

// TestRunReadsLookupTablesFromConfigMapManifests: a lookup table's configMapRef is read from a
// ConfigMap in the -f set, as the operator reads it from the cluster; a missing ConfigMap or a
// value that is not a number is refused by name.
func TestRunReadsLookupTablesFromConfigMapManifests(t *testing.T) {
	read := func(name string) string { return readSample(t, name) }
	pipeline := read("freightcast_v1alpha1_freightpipeline.yaml")
	const inline = "    values:\n      Maersk: \"0.71\"\n      DHL Freight: \"0.94\"\n      Cathay Cargo: \"0.88\"\n"
	if !strings.Contains(pipeline, inline) {
		t.Fatal("the sample pipeline's carrier table changed; update this test")
	}
	pipeline = strings.Replace(pipeline, inline, "    configMapRef: {name: carrier-rates, key: rates.json}\n", 1)
	resolve := func(configMap string) ([]string, error) {
		dir := t.TempDir()
		writeFile(t, dir, "model.yaml", read("freightcast_v1alpha1_predictionmodel.yaml"))
		writeFile(t, dir, "pipeline.yaml", pipeline)
		writeFile(t, dir, "cm.yaml", read("freightcast_v1alpha1_model_configmap.yaml"))
		if configMap != "" {
			writeFile(t, dir, "rates.yaml", configMap)
		}
		m, err := readManifests([]string{dir})
		if err != nil {
			return nil, err
		}
		_, pipelines, err := m.resolve(context.Background(), nil, t.TempDir())
		if err != nil {
			return nil, err
		}
		var got []string
		for _, tb := range pipelines[0].Config.Transforms.Tables {
			got = append(got, tb.Name+"="+tb.Values["DHL Freight"]+tb.Values["NLRTM"])
		}
		return got, nil
	}

	got, err := resolve("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: carrier-rates}\ndata:\n  rates.json: '{\"Maersk\": 0.71, \"DHL Freight\": 0.94}'\n")
	if err != nil || strings.Join(got, ",") != "carrier_on_time_rate=0.94,port_congestion=0.82" {
		t.Errorf("tables %v, %v", got, err)
	}
	if _, err := resolve(""); err == nil || !strings.Contains(err.Error(), `FreightPipeline eu-lanes: spec.lookupTables: lookup table "carrier_on_time_rate": reading ConfigMap carrier-rates: it is not in the files; add its manifest to the -f set`) {
		t.Errorf("without the ConfigMap: %v", err)
	}
	if _, err := resolve("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: carrier-rates}\ndata:\n  rates.json: '{\"Maersk\": \"0.71\"}'\n"); err == nil ||
		!strings.Contains(err.Error(), `table "carrier_on_time_rate": ConfigMap carrier-rates: key "rates.json": the value of "Maersk" is not a number`) {
		t.Errorf("a string for a number: %v", err)
	}
}

// readSample is config/samples/name.
func readSample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
