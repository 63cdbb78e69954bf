package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/clientflow"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestLocalModeClientsFollowTheirOwnPredictions is issue 16's "done when" in local mode:
// `freightcast run -f` on the sample manifests with a tokens Secret beside them, used through the
// documented API only (clientflow: raw shipments from two clients, the feed resumed after a
// disconnect, a dead letter with its reason, a transform's 400, no client seeing the other's).
func TestLocalModeClientsFollowTheirOwnPredictions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "model.yaml", readSample(t, "freightcast_v1alpha1_predictionmodel.yaml"))
	writeFile(t, dir, "cm.yaml", readSample(t, "freightcast_v1alpha1_model_configmap.yaml"))
	writeFile(t, dir, "pipeline.yaml", strings.Replace(readSample(t, "freightcast_v1alpha1_freightpipeline.yaml"),
		"  ingestion:\n", "  ingestion:\n    auth: {secretRef: {name: ingest-tokens}}\n", 1))
	writeFile(t, dir, "tokens.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: ingest-tokens}\n"+
		"stringData:\n  tokens: |\n    client=acme token=acme-local-token\n    client=globex token=globex-local-token\n")
	ingestAddr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	dataDir, natsAddr, inferAddr := t.TempDir(), freePort(t), freePort(t)
	stopped, runErr := runUntilCleanup(t, cancel, func() error {
		return runLocal(ctx, []string{"-f", dir, "--data-dir", dataDir, "--store-size", "1Gi", "--log-level", "warn",
			"--nats-addr", natsAddr, "--ingest-addr", ingestAddr, "--infer-addr", inferAddr})
	})
	base := "http://" + ingestAddr
	testenv.Eventually(t, time.Minute, "local mode's ingestion", func() error {
		select {
		case <-stopped:
			t.Fatalf("run stopped: %v", *runErr)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %d", resp.StatusCode)
		}
		return nil
	})
	clientflow.Run(t, clientflow.API{Base: base, Acme: "acme-local-token", Globex: "globex-local-token",
		EventsFile: filepath.Join("..", "..", "models", "freight-delay-risk.events.json"), Wait: time.Minute})
}
