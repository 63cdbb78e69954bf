//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	freightcastv1alpha1 "github.com/freightcast/freightcast/api/v1alpha1"
)

// The tests of this file need the chart's 3-server NATS (install: nats.replicas=3), whose
// servers are named after their pods (server_name: $POD_NAME).

// queuePipelineYAML is a pipeline over the sample model with the queue settings given as YAML
// lines under spec.queue.
func queuePipelineYAML(name, queue string, minReplicas int, activation int64) string {
	return fmt.Sprintf(`apiVersion: freightcast.io/v1alpha1
kind: FreightPipeline
metadata:
  name: %s
spec:
  modelRef:
    name: freight-delay-risk
  queue:
    ackWait: 10s
%s
  ingestion:
    replicas: 2
    resources:
      requests: {cpu: 50m, memory: 64Mi}
      limits: {memory: 256Mi}
  inference:
    minReplicas: %d
    maxReplicas: 3
    activationQueueDepth: %d
    pollInterval: 1s
    batchSize: 64
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 500m, memory: 256Mi}
`, name, queue, minReplicas, activation)
}

func getPipeline(ctx context.Context, ns, name string) (*freightcastv1alpha1.FreightPipeline, error) {
	p := &freightcastv1alpha1.FreightPipeline{}
	return p, k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)
}

// waitQueueReplicated waits until status.queue shows replicas with a leader and no lagging
// replica, and returns the leader.
func waitQueueReplicated(t testing.TB, ns, name string, replicas int32, timeout time.Duration) string {
	t.Helper()
	var leader string
	eventually(t, timeout, fmt.Sprintf("pipeline %s's stream at %d replicas, all current", name, replicas), func() error {
		p, err := getPipeline(context.Background(), ns, name)
		if err != nil {
			return err
		}
		q := p.Status.Queue
		if q == nil || q.Replicas != replicas || q.Leader == "" || len(q.LaggingReplicas) != 0 {
			return fmt.Errorf("status.queue %+v", q)
		}
		leader = q.Leader
		return nil
	})
	return leader
}

// outcome is one POST of a body.
type outcome struct {
	start, end time.Time
	status     int
	retryAfter string
}

// postRecorded sends body until it gets 202, as a client honouring Retry-After does, and returns
// every attempt.
func postRecorded(ctx context.Context, base string, body []byte) ([]outcome, error) {
	var out []outcome
	for ctx.Err() == nil {
		o := outcome{start: time.Now()}
		resp, err := httpClient.Post("http://"+base+"/v1/events", "application/x-ndjson", bytes.NewReader(body))
		o.end = time.Now()
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			o.status, o.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
		}
		out = append(out, o)
		switch {
		case o.status == http.StatusAccepted:
			return out, nil
		case err != nil, o.status == http.StatusServiceUnavailable:
			time.Sleep(500 * time.Millisecond)
		default:
			return out, fmt.Errorf("status %d", o.status)
		}
	}
	return out, ctx.Err()
}

func ndjson(events []freightEvent) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, e := range events {
		_ = enc.Encode(e)
	}
	return b.Bytes()
}

// TestNATSPodDeletedMidTraffic sends 10,000 events into an R3 pipeline and deletes the NATS pod
// that leads its stream mid-stream: every accepted event is predicted exactly once, every refusal
// is a 503 with Retry-After, the stream gets a new leader and the deleted server catches up when
// its pod is back.
func TestNATSPodDeletedMidTraffic(t *testing.T) {
	ns := newNamespace(t, "failover")
	deployModel(t, ns)
	applyYAML(t, ns, queuePipelineYAML("lanes", "    replicas: 3", 1, 0))
	ingest, q := pipelineEndpoints(t, ns, "lanes")
	leader := waitQueueReplicated(t, ns, "lanes", 3, 2*time.Minute)

	const total, perBody, senders = 10_000, 100, 4
	events := makeEvents("failover", total)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var outcomes []outcome
	var next, accepted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(perBody)) - perBody
				if from >= total {
					return
				}
				out, err := postRecorded(ctx, ingest, ndjson(events[from:min(from+perBody, total)]))
				mu.Lock()
				outcomes = append(outcomes, out...)
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
				accepted.Add(perBody)
			}
		}()
	}
	eventually(t, 5*time.Minute, "a third of the events accepted", func() error {
		if n := accepted.Load(); n < total/3 {
			return fmt.Errorf("%d accepted", n)
		}
		return nil
	})
	deleted := time.Now()
	if out, err := kubectl("delete", "pod", "-n", systemNamespace, leader, "--wait=false"); err != nil {
		t.Fatalf("deleting the leader's pod %s: %v: %s", leader, err, out)
	}
	newLeader := eventually(t, 2*time.Minute, "another server leads the stream", func() error {
		p, err := getPipeline(ctx, ns, "lanes")
		if err != nil {
			return err
		}
		if q := p.Status.Queue; q == nil || q.Leader == "" || q.Leader == leader {
			return fmt.Errorf("status.queue %+v", q)
		}
		return nil
	})
	timings.record("failover: leader's NATS pod deleted to another leader in status.queue", newLeader)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	took := waitAllPredicted(t, q, events, 0, 10*time.Minute)
	t.Logf("all %d events predicted exactly once, %s after the last was accepted", total, took)
	back := waitQueueReplicated(t, ns, "lanes", 3, 5*time.Minute)
	timings.record("failover: leader's NATS pod deleted to all 3 replicas current again", time.Since(deleted))
	t.Logf("the stream is led by %s; the deleted %s is back and current", back, leader)

	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(outcomes, func(a, b outcome) int { return a.start.Compare(b.start) })
	var refusals int
	var longest time.Duration
	var runStart time.Time
	for _, o := range outcomes {
		if o.status == http.StatusAccepted {
			runStart = time.Time{}
			continue
		}
		refusals++
		if o.status != http.StatusServiceUnavailable || o.retryAfter == "" {
			t.Errorf("a refusal that is not 503 with Retry-After: status %d, Retry-After %q", o.status, o.retryAfter)
		}
		if runStart.IsZero() {
			runStart = o.start
		}
		longest = max(longest, o.end.Sub(runStart))
	}
	t.Logf("%d refusals in %d requests; the longest run of refusals lasted %s", refusals, len(outcomes), longest)
	timings.record("failover: longest run of 503s while the leader's pod went away", longest)
}

// streamGone reports whether none of the pipeline's streams is left on NATS.
func streamGone(ctx context.Context, q *queueClient) error {
	for _, name := range []string{q.tp.Stream, q.tp.OutputStream, q.tp.BucketStream()} {
		_, err := q.js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			return err
		default:
			return fmt.Errorf("stream %s is still there", name)
		}
	}
	return nil
}

// TestPipelinesComeAndGo creates and deletes 20 default pipelines one after the other on the
// chart's NATS: each is provisioned, and each deletion gives its storage back, so the last is
// provisioned as the first was (before deletion policies, the store was full after a few).
func TestPipelinesComeAndGo(t *testing.T) {
	ns := newNamespace(t, "churn")
	deployModel(t, ns)
	natsAddr := exposeOnLoopback(t, systemNamespace, "nats", "client")
	ctx := context.Background()
	start := time.Now()
	for i := range 20 {
		name := fmt.Sprintf("trial-%d", i)
		applyYAML(t, ns, queuePipelineYAML(name, "    deletionPolicy: Delete", 1, 0))
		eventually(t, 2*time.Minute, "pipeline "+name+" QueueReady", func() error {
			p, err := getPipeline(ctx, ns, name)
			if err != nil {
				return err
			}
			if c := condition(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady); c == nil || c.Status != metav1.ConditionTrue {
				return fmt.Errorf("QueueReady is %+v", c)
			}
			return nil
		})
		q := newQueueClient(t, natsAddr, ns, name)
		p, err := getPipeline(ctx, ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := k8s.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 2*time.Minute, "pipeline "+name+" and its streams gone", func() error {
			if _, err := getPipeline(ctx, ns, name); !apierrors.IsNotFound(err) {
				return fmt.Errorf("the pipeline is still there: %v", err)
			}
			return streamGone(ctx, q)
		})
	}
	timings.record("queue: 20 default pipelines created and deleted, one after the other", time.Since(start))
}

// TestRetainedStreamsAreAdopted deletes a pipeline with deletionPolicy Retain while its events
// wait, and creates it again: the new pipeline adopts the streams and predicts every event
// exactly once.
func TestRetainedStreamsAreAdopted(t *testing.T) {
	ns := newNamespace(t, "retain")
	deployModel(t, ns)
	// The pool stays at zero until a million events wait: these wait.
	kept := queuePipelineYAML("kept", "    deletionPolicy: Retain", 0, 1_000_000)
	applyYAML(t, ns, kept)
	ingest, q := pipelineEndpoints(t, ns, "kept")
	events := makeEvents("retained", 2000)
	postEvents(t, ingest, events, 250)
	ctx := context.Background()
	p, err := getPipeline(ctx, ns, "kept")
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the pipeline gone", func() error {
		if _, err := getPipeline(ctx, ns, "kept"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return nil
	})
	if _, _, lag, err := q.counts(ctx); err != nil || lag != int64(len(events)) {
		t.Fatalf("the retained stream: lag %d, %v; want the %d events", lag, err, len(events))
	}
	// Again, with a pool that runs: it adopts the stream and its events.
	applyYAML(t, ns, queuePipelineYAML("kept", "    deletionPolicy: Retain", 1, 0))
	waitPipelineReady(t, ns, "kept", 3*time.Minute)
	waitAllPredicted(t, q, events, 0, 5*time.Minute)
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool { return e.Reason == freightcastv1alpha1.EventReasonQueueAdopted }) {
		t.Errorf("no %s event", freightcastv1alpha1.EventReasonQueueAdopted)
	}
}

// TestDeletionWaitsForPendingEvents deletes a pipeline whose events wait: the deletion holds,
// saying so, until the spec allows dropping them.
func TestDeletionWaitsForPendingEvents(t *testing.T) {
	ns := newNamespace(t, "pending")
	deployModel(t, ns)
	applyYAML(t, ns, queuePipelineYAML("held", "    deletionPolicy: Delete", 0, 1_000_000))
	ingest, q := pipelineEndpoints(t, ns, "held")
	postEvents(t, ingest, makeEvents("held", 500), 250)
	ctx := context.Background()
	p, err := getPipeline(ctx, ns, "held")
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "QueueReady=False PendingEvents", func() error {
		p, err := getPipeline(ctx, ns, "held")
		if err != nil {
			return err
		}
		c := condition(p.Status.Conditions, freightcastv1alpha1.ConditionQueueReady)
		if c == nil || c.Reason != freightcastv1alpha1.ReasonPendingEvents {
			return fmt.Errorf("QueueReady is %+v", c)
		}
		return nil
	})
	if _, _, lag, err := q.counts(ctx); err != nil || lag != 500 {
		t.Fatalf("while the deletion waits: lag %d, %v; want the 500 events", lag, err)
	}
	patch := []byte(`{"spec":{"queue":{"pendingEventsOnDelete":"Drop"}}}`)
	if err := k8s.Patch(ctx, p, client.RawPatch("application/merge-patch+json", patch)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the pipeline and its streams gone", func() error {
		if _, err := getPipeline(ctx, ns, "held"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there: %v", err)
		}
		return streamGone(ctx, q)
	})
}
