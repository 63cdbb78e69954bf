package controllers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/clientflow"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestSampleClientsFollowTheirPredictions is issue 16's "done when" on envtest and a
// nats-server: the operator reconciles the sample model and pipeline (with a tokens Secret), and
// ingestion and a worker run on the configuration it rendered — its transforms, its streams, the
// Secret's tokens as the pod mounts them — for the flow a client runs over the documented API
// (clientflow, the same as local mode's and the real cluster's).
func TestSampleClientsFollowTheirPredictions(t *testing.T) {
	srv := natstest.Start(t)
	ns := newNamespace(t)
	startOperator(t, srv.URL(), ns)
	const tokens = "client=acme token=acme-envtest-token\nclient=globex token=globex-envtest-token\n"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ingest-tokens"}, Data: map[string][]byte{"tokens": []byte(tokens)}}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"freightcast_v1alpha1_model_configmap.yaml", "freightcast_v1alpha1_predictionmodel.yaml", "freightcast_v1alpha1_freightpipeline.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "config", "samples", f))
		if err != nil {
			t.Fatal(err)
		}
		yaml := strings.Replace(string(data), "  ingestion:\n", "  ingestion:\n    auth: {secretRef: {name: ingest-tokens}}\n", 1)
		if err := os.WriteFile(filepath.Join(dir, f), []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	applyDir(t, ns, dir)
	// No kubelet here: the model's pods are said rolled out, as they would be, for the pipeline
	// to follow.
	mustEventuallyGetDeployment(t, ns, "freight-delay-risk-predictor")
	markDeploymentRolledOut(t, ns, "freight-delay-risk-predictor")

	var cfg pipelineconfig.Config
	testenv.Eventually(t, 30*time.Second, "the pipeline's configuration with its transforms and tokens", func() error {
		cm := &corev1.ConfigMap{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "eu-lanes-pipeline"}, cm); err != nil {
			return err
		}
		c, err := pipelineconfig.Parse([]byte(cm.Data[pipelineconfig.FileName]))
		if err == nil && (c.Ingestion.TokensFile == "" || len(c.Transforms.Features) != 12) {
			err = fmt.Errorf("tokens file %q, %d transforms", c.Ingestion.TokensFile, len(c.Transforms.Features))
		}
		cfg = c
		return err
	})
	// The Secret's key where the pod would find it mounted.
	mounted := filepath.Join(t.TempDir(), filepath.Base(cfg.Ingestion.TokensFile))
	if err := os.WriteFile(mounted, secret.Data["tokens"], 0o600); err != nil {
		t.Fatal(err)
	}
	spec := pipelinetest.Spec(ns, "eu-lanes", 1)
	spec.Topology = cfg.Queue.Topology
	dial := func() *nats.Conn { return pipelinetest.Dial(t, srv.URL(), spec.Topology, queue.Credentials{}) }
	p := pipelinetest.Start(t, spec, dial(), dial, 1, func(c *ingest.Config) {
		c.Transforms, c.TokensFile = cfg.Transforms, mounted
	})
	clientflow.Run(t, clientflow.API{Base: p.URL, Acme: "acme-envtest-token", Globex: "globex-envtest-token",
		EventsFile: filepath.Join("..", "models", "freight-delay-risk.events.json"), Wait: time.Minute})
}
