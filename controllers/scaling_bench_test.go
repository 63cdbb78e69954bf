package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// BenchmarkScaleReaction measures, at default autoscaling settings (2 s poll interval, HPA's
// default scale-up behavior), the time from a backlog crossing the target to the operator writing
// the larger pool size: the real manager, a real API server and a real nats-server. KEDA's
// reference is up to 30 s of polling plus the HPA's 15 s sync.
func BenchmarkScaleReaction(b *testing.B) {
	srv := natstest.Start(b)
	ns := newNamespace(b)
	startOperator(b, srv.URL(), ns)
	ctx := context.Background()
	loadedModel(b, ns, "m")
	js := jetStreamFor(b, srv.URL())
	const trials = 8
	var reactions []time.Duration
	round := 0
	for b.Loop() {
		for range trials {
			round++
			name := fmt.Sprintf("p%d", round)
			p := newPipeline(ns, name, "m") // default inference spec: target 100/replica, poll 2s
			mustCreate(b, p)
			// Wait until the autoscaler has sampled the empty queue once, so the trial starts
			// from a steady state at a random phase of its poll interval.
			testenv.Eventually(b, 30*time.Second, name+" sampled", func() error {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
					return err
				}
				if p.Status.Autoscaling == nil {
					return fmt.Errorf("not sampled yet")
				}
				return nil
			})
			time.Sleep(time.Duration(round%7) * 300 * time.Millisecond)
			start := time.Now()
			publishEvents(b, js, queue.TopologyFor(ns, name).Subject, name, 500) // 5× the target
			var reacted time.Time
			testenv.Eventually(b, 30*time.Second, name+" scaled up", func() error {
				d, err := getDeployment(ns, name+"-inference")
				if err != nil {
					return err
				}
				if ptr.Deref(d.Spec.Replicas, 1) <= 1 {
					return fmt.Errorf("not yet")
				}
				reacted = time.Now()
				return nil
			})
			reactions = append(reactions, reacted.Sub(start))
			// Leave nothing for the next trial to sample.
			if err := k8s.Delete(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
	}
	slices.Sort(reactions)
	var sum time.Duration
	for _, r := range reactions {
		sum += r
	}
	b.ReportMetric((sum / time.Duration(len(reactions))).Seconds(), "mean-reaction-s")
	b.ReportMetric(reactions[len(reactions)-1].Seconds(), "max-reaction-s")
	b.ReportMetric(reactions[len(reactions)/2].Seconds(), "p50-reaction-s")
}
