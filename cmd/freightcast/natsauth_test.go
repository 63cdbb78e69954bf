package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/natsauth"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// TestNATSAuthCommands walks the platform engineer's steps: init, start a server on the
// configuration it wrote (as the chart renders it), connect as the operator, and as a pipeline.
func TestNATSAuthCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats-keys")
	var out bytes.Buffer
	if err := natsAuth(&out, []string{"init", "--dir", dir, "--store-limit", "64Mi"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "--set-file nats.auth.config="+dir+"/auth.conf") {
		t.Errorf("init does not say how to install the config:\n%s", out.String())
	}
	if err := natsAuth(&out, []string{"init", "--dir", dir}); err == nil {
		t.Fatal("a second init over the same keys succeeded")
	}

	// A nats.conf that includes auth.conf, as the chart's does.
	conf := writeFile(t, dir, "nats.conf", "include auth.conf\n")
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		fromFile, err := server.ProcessConfigFile(conf)
		if err != nil {
			t.Fatalf("the servers' configuration: %v", err)
		}
		fromFile.Host, fromFile.Port, fromFile.JetStream, fromFile.StoreDir = o.Host, o.Port, true, o.StoreDir
		fromFile.NoLog, fromFile.NoSigs = true, true
		*o = *fromFile
	}))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, js := natstest.Connect(t, srv.URL(), nats.UserCredentials(filepath.Join(dir, "operator.creds")),
		nats.CustomInboxPrefix(queue.OperatorInboxPrefix))
	spec := queue.Spec{Topology: queue.TopologyFor("freight", "lanes"), Limits: queue.Limits{MaxMessages: 10, MaxBytes: 1 << 20,
		MaxAge: time.Hour, DuplicateWindow: time.Minute, AckWait: time.Minute, MaxDeliver: 1, MaxAckPending: 1, PredictionRetention: time.Hour}}
	if _, err := queue.Provision(ctx, js, spec); err != nil {
		t.Fatalf("the operator's credentials: %v", err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil || info.Limits.MaxStore != 64<<20 {
		t.Fatalf("the account's store limit: %+v, %v; want 64 MiB", info, err)
	}

	var creds bytes.Buffer
	if err := natsAuth(&creds, []string{"pipeline", "--dir", dir, "--namespace", "freight", "--name", "lanes"}); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "creds", creds.String())
	opts, err := queue.PipelineOptions(spec.Topology, queue.Credentials{CredsFile: path})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(srv.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pjs, _ := jetstream.New(nc)
	if _, err := pjs.Publish(ctx, spec.Subject, []byte(`{}`), jetstream.WithMsgID("e1")); err != nil {
		t.Fatalf("publishing with the pipeline's credentials: %v", err)
	}

	for _, bad := range [][]string{{}, {"pipeline", "--dir", dir}, {"operator"}, {"frobnicate", "--dir", dir}, {"init", "--dir", t.TempDir(), "--store-limit", "-1Gi"}} {
		if err := natsAuth(&out, bad); err == nil {
			t.Errorf("nats-auth %q succeeded", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "signing.nk")); err != nil {
		t.Fatal(err)
	}
}

// TestRunIngestWithPipelineCredentials: the ingestion pod connects with the credentials file the
// pipeline config names, and with them reaches its own stream only: another pipeline's
// credentials never make it ready.
func TestRunIngestWithPipelineCredentials(t *testing.T) {
	keys, err := natsauth.New(-1)
	if err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		if err := keys.ServerOptions(o); err != nil {
			t.Fatal(err)
		}
	}))
	issue := func(f func() ([]byte, error)) string {
		creds, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, t.TempDir(), "creds", string(creds))
	}
	spec := queue.Spec{Topology: queue.TopologyFor("ns1", "p1"), Limits: queue.Limits{
		MaxMessages: 100, MaxBytes: 1 << 20, MaxAge: time.Hour, DuplicateWindow: time.Minute,
		AckWait: time.Minute, MaxDeliver: 3, MaxAckPending: 10, PredictionRetention: time.Hour,
	}}
	_, js := natstest.Connect(t, srv.URL(), nats.UserCredentials(issue(keys.IssueOperator)), nats.CustomInboxPrefix(queue.OperatorInboxPrefix))
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	config := func(credsFile string) pipelineconfig.Config {
		return pipelineconfig.Config{Namespace: "ns1", Name: "p1", NATSURL: srv.URL(), Queue: spec,
			NATSCredentials: queue.Credentials{CredsFile: credsFile},
			Model:           pipelineconfig.Model{Name: "delay", Version: "1", Features: []string{"a", "b"}},
			Ingestion:       pipelineconfig.Ingestion{MaxBodyBytes: 1 << 16}, Inference: pipelineconfig.Inference{BatchSize: 8}}
	}

	own := issue(func() ([]byte, error) { return keys.IssuePipeline("ns1", "p1") })
	addr, stop := startIngest(t, config(own))
	testenv.Eventually(t, 15*time.Second, "readyz with the pipeline's own credentials", ingestStatus(addr)("/readyz", http.StatusOK))
	resp, err := http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(`{"id":"e1","features":{"a":1,"b":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST with the pipeline's credentials = %d, want 202", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Another pipeline's credentials: connected, but its stream is not theirs to see.
	other := issue(func() ([]byte, error) { return keys.IssuePipeline("ns1", "p2") })
	addr, _ = startIngest(t, config(other))
	testenv.Eventually(t, 15*time.Second, "livez", ingestStatus(addr)("/livez", http.StatusOK))
	if code := ingestGet(addr, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with another pipeline's credentials = %d, want 503", code)
	}
	resp, err = http.Post("http://"+addr+"/v1/events", "application/json", strings.NewReader(`{"id":"e2","features":{"a":1,"b":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST with another pipeline's credentials = %d, want 503", resp.StatusCode)
	}
}
