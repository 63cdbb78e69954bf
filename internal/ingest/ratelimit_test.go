package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/ratelimit"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// ingestPod is one ingestion pod of a pipeline: its own NATS connection, heartbeats and handler.
type ingestPod struct {
	*env
	peers *ratelimit.Peers
	tick  chan time.Time
}

// beat makes the pod send a heartbeat and age its peers, as its timer would.
func (p *ingestPod) beat(now time.Time) { p.tick <- now }

// startIngestPods runs n ingestion handlers of one pipeline on one nats-server, as n pods.
func startIngestPods(t *testing.T, n int, clk *testenv.Clock, cfg Config) []*ingestPod {
	t.Helper()
	srv := natstest.Start(t)
	spec := testSpec(1_000_000)
	_, js := natstest.Connect(t, srv.URL())
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	pods := make([]*ingestPod, n)
	for i := range pods {
		nc := connect(t, srv.URL())
		tick := make(chan time.Time)
		peers, err := ratelimit.StartPeers(ratelimit.PeersConfig{Conn: nc, Subject: spec.PeersSubject(),
			Interval: time.Second, Fallback: 10, Now: clk.Now, Tick: tick})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(peers.Stop)
		c := cfg
		c.Conn, c.Topology, c.Features, c.MaxBodyBytes = nc, spec.Topology, testFeatures, 1<<20
		c.Registry, c.Now, c.Peers, c.Logger = prometheus.NewRegistry(), clk.Now, peers.Count, slog.New(slog.DiscardHandler)
		h, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		e := &env{srv: srv, spec: spec, nc: nc, handler: h, http: httptest.NewServer(h)}
		if e.js, err = jetstream.New(nc); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.http.Close)
		pods[i] = &ingestPod{env: e, peers: peers, tick: tick}
	}
	return pods
}

// waitPeers waits until every pod counts want live pods.
func waitPeers(t *testing.T, pods []*ingestPod, want int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, fmt.Sprintf("%d live ingestion pods", want), func() error {
		for i, p := range pods {
			if got := p.peers.Count(); got != want {
				return fmt.Errorf("pod %d counts %d", i, got)
			}
		}
		return nil
	})
}

// TestRateLimitHoldsForThePipeline: three ingestion pods of one pipeline, one nats-server, one
// clock. Together they admit the pipeline's limit, not three times it; each token has a budget
// of its own; a pod that stops beating is dropped from the count, and one that leaves at once.
func TestRateLimitHoldsForThePipeline(t *testing.T) {
	const limit, burst = 60, 30
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("alpha\nbeta\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := testenv.NewClock(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	pods := startIngestPods(t, 3, clk, Config{TokensFile: tokens,
		RateLimit: &pipelineconfig.RateLimit{EventsPerSecond: limit, Burst: burst}})

	// Until a pod has heard its own heartbeat and a whole interval has passed, it does not know
	// who else is alive and takes the fallback share.
	for i, p := range pods {
		if got := p.peers.Count(); got != 10 {
			t.Fatalf("pod %d counts %d pods before any heartbeat round, want the fallback 10", i, got)
		}
	}
	clk.Advance(time.Second)
	for _, p := range pods {
		p.beat(clk.Now())
	}
	waitPeers(t, pods, 3)

	// Each pod is offered 100 events/s with token alpha, one event a request, for 2 s: 600 in
	// all, ten times the limit. Each pod's share is limit/3 events/s and burst/3 at once, so by
	// design the pipeline admits at most limit·T + burst (the buckets start full), and at least
	// limit·T less one event per pod for the share's fractions.
	const step, steps = 10 * time.Millisecond, 200
	admitted, refused := 0, 0
	for range steps {
		for _, p := range pods {
			switch a := p.do(t, http.MethodPost, "/v1/events", ctNDJSON, "alpha", ndjson(fmt.Sprintf("a%d", admitted+refused))); a.Status {
			case http.StatusAccepted:
				admitted++
			case http.StatusTooManyRequests:
				refused++
				if a.RetryAfter == "" {
					t.Fatalf("429 without Retry-After: %+v", a)
				}
			default:
				t.Fatalf("answer %+v", a)
			}
		}
		clk.Advance(step)
	}
	elapsed := (steps - 1) * step.Seconds()
	t.Logf("admitted %d of %d", admitted, admitted+refused)
	if hi, lo := int(limit*elapsed+burst), int(limit*elapsed)-len(pods); admitted > hi || admitted < lo {
		t.Errorf("3 pods admitted %d of %d events in %.2fs, want between %d and %d (the pipeline's %d/s with a burst of %d, not 3 times it)",
			admitted, admitted+refused, elapsed, lo, hi, limit, burst)
	}

	// alpha's buckets are empty; beta's are full: a third of the burst on every pod.
	for i, p := range pods {
		if a := p.do(t, http.MethodPost, "/v1/events", ctNDJSON, "alpha", ndjson(fmt.Sprint("x", i))); a.Status != http.StatusTooManyRequests {
			t.Errorf("pod %d, alpha after its budget: %+v, want 429", i, a)
		}
		if a := p.do(t, http.MethodPost, "/v1/events", ctNDJSON, "beta", ndjson(batchIDs(fmt.Sprint("b", i), burst/3)...)); a.Status != http.StatusAccepted {
			t.Errorf("pod %d, beta's first %d events: %+v, want 202: alpha spent only its own budget", i, burst/3, a)
		}
	}

	// Pod 2 dies without a word: its connection drops, its heartbeats stop. After MissedBeats
	// intervals of the others' beats without it, they count 2 and each takes half the limit.
	pods[2].nc.Close()
	for range ratelimit.MissedBeats + 1 {
		clk.Advance(time.Second)
		for _, p := range pods[:2] {
			p.beat(clk.Now())
		}
	}
	waitPeers(t, pods[:2], 2)
	// Alpha's buckets have refilled to a half of the burst each.
	if a := pods[0].do(t, http.MethodPost, "/v1/events", ctNDJSON, "alpha", ndjson(batchIDs("h", burst/2)...)); a.Status != http.StatusAccepted {
		t.Errorf("alpha's %d events, half the burst, on one of 2 pods: %+v, want 202", burst/2, a)
	}
	if a := pods[0].do(t, http.MethodPost, "/v1/events", ctNDJSON, "alpha", ndjson("h-over")); a.Status != http.StatusTooManyRequests {
		t.Errorf("alpha past half the burst on one of 2 pods: %+v, want 429", a)
	}

	// Pod 1 leaves cleanly: it says goodbye, and pod 0 takes the whole limit without waiting.
	pods[1].peers.Stop()
	waitPeers(t, pods[:1], 1)
}

func batchIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint(prefix, "-", i)
	}
	return ids
}
