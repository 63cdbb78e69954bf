package queue_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// window is a span of time in which ingestion may refuse events.
type window struct{ from, to time.Time }

func (w window) overlaps(o pipelinetest.Outcome) bool {
	return !o.End.Before(w.from) && !o.Start.After(w.to)
}

// recorder keeps what the test observes from its goroutines.
type recorder struct {
	mu       sync.Mutex
	windows  []window  // the ingestion connection moving to another server
	down     time.Time // the ingestion connection's last disconnect, zero while connected
	outcomes []pipelinetest.Outcome
	lags     []lagRead
	// noLeader is the windows in which the stream's leader did not answer, as sampled; leaderless
	// is the start of the current one, zero while it answers.
	noLeader   []window
	leaderless time.Time
}

// sampledHealth records one read of the stream's health: a window without a leader lasts from
// the first read that found none to the first that found one again.
func (r *recorder) sampledHealth(quorum bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch now := time.Now(); {
	case !quorum && r.leaderless.IsZero():
		r.leaderless = now
	case quorum && !r.leaderless.IsZero():
		r.noLeader = append(r.noLeader, window{r.leaderless, now})
		r.leaderless = time.Time{}
	}
}

type lagRead struct {
	at  time.Time
	lag queue.Lag
	err error
}

func (r *recorder) disconnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = time.Now()
}

func (r *recorder) reconnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down.IsZero() {
		r.windows = append(r.windows, window{r.down, time.Now()})
		r.down = time.Time{}
	}
}

// sample calls read every 50 ms, each call with timeout, until the returned stop is called; stop
// returns once the last call has.
func sample(timeout time.Duration, read func(context.Context)) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			read(ctx)
			cancel()
		}
	}()
	return func() { close(quit); <-done }
}

// TestNothingAcceptedIsLostWhenANATSServerDies sends 10,000 events through ingestion and two
// workers on a 3-server JetStream cluster with R3 streams, and disrupts the cluster mid-stream
// while the workers hold batches: every event is accepted in the end and predicted exactly once;
// ingestion answers 503 with Retry-After only while the stream has no leader (or while its own
// connection moves off a server that went away); and the lag read, the autoscaler's input, is
// never the leader election read as an empty or an endless queue.
func TestNothingAcceptedIsLostWhenANATSServerDies(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3-server cluster and 10,000 events")
	}
	cases := map[string]struct {
		// disrupt breaks the cluster and returns once it is broken; heal, if set, mends it.
		disrupt func(t *testing.T, c *natstest.Cluster, stream string)
		heal    func(t *testing.T, c *natstest.Cluster)
		// quorumLost: the stream loses its leader, so refusals are expected.
		quorumLost bool
	}{
		"the stream leader's server dies": {
			disrupt: func(t *testing.T, c *natstest.Cluster, stream string) {
				c.Kill(t, c.Index(c.WaitStreamLeader(t, "", stream, 10*time.Second)))
			},
			quorumLost: true,
		},
		"a follower's server dies": {
			// The stream keeps its quorum: nothing but the connections that were on the dead
			// server may see a refusal.
			disrupt: func(t *testing.T, c *natstest.Cluster, stream string) {
				leader := c.WaitStreamLeader(t, "", stream, 10*time.Second)
				for i, s := range c.Servers {
					if s != leader {
						c.Kill(t, i)
						return
					}
				}
			},
		},
		"all three servers restart": {
			disrupt: func(t *testing.T, c *natstest.Cluster, _ string) { c.KillAll(t) },
			heal: func(t *testing.T, c *natstest.Cluster) {
				// Long enough for clients to meet the outage and retry through it.
				time.Sleep(2 * time.Second)
				c.RestartAll(t)
			},
			quorumLost: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			const events, perBody, senders = 10_000, 100, 4
			c := natstest.StartCluster(t, 3)
			spec := pipelinetest.Spec("freight", "lanes", 3)
			operator := queue.NewConnector("freightcast-operator")
			t.Cleanup(operator.Close)
			js, err := operator.JetStream(c.URL())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := queue.Provision(context.Background(), js, spec); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			ingestConn := pipelinetest.Dial(t, c.URL(), spec.Topology, queue.Credentials{},
				nats.DisconnectErrHandler(func(*nats.Conn, error) { rec.disconnected() }),
				nats.ReconnectHandler(func(*nats.Conn) { rec.reconnected() }))
			p := pipelinetest.Start(t, spec, ingestConn, func() *nats.Conn {
				return pipelinetest.Dial(t, c.URL(), spec.Topology, queue.Credentials{})
			}, 2)

			// The lag reader samples as the autoscaler does, on the operator's connection.
			stopLag := sample(time.Second, func(ctx context.Context) {
				lag, err := queue.ReadLag(ctx, js, spec.Stream, spec.Consumer)
				rec.mu.Lock()
				rec.lags = append(rec.lags, lagRead{time.Now(), lag, err})
				rec.mu.Unlock()
			})
			// The stream's leader, sampled: after a restart of every server, the stream may elect
			// more than once before it settles, and each election is a window without quorum.
			stopHealth := sample(500*time.Millisecond, func(ctx context.Context) {
				h, err := queue.ReadStreamHealth(ctx, js, spec.Stream)
				rec.sampledHealth(err == nil && h.Quorum())
			})

			// Senders take bodies in order until all are accepted.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var next, accepted atomic.Int64
			var wg sync.WaitGroup
			for range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						body := int(next.Add(1) - 1)
						if body*perBody >= events {
							return
						}
						out := pipelinetest.Send(ctx, t, p.URL, body*perBody, (body+1)*perBody)
						rec.mu.Lock()
						rec.outcomes = append(rec.outcomes, out...)
						rec.mu.Unlock()
						accepted.Add(perBody)
					}
				}()
			}

			// Mid-stream, the workers hold their batches (delivered, unacknowledged), so that the
			// true queue depth is known to be at least what it was, and the cluster breaks.
			testenv.Eventually(t, 2*time.Minute, "a third of the events accepted", func() error {
				if n := accepted.Load(); n < events/3 {
					return fmt.Errorf("%d accepted", n)
				}
				return nil
			})
			p.Gate.Close()
			// Batches already past the gate finish first.
			testenv.Eventually(t, time.Minute, "both workers held", func() error {
				if n := p.Gate.Waiting(); n != 2 {
					return fmt.Errorf("%d held", n)
				}
				return nil
			})
			// With the workers held no prediction is stored: every event the stream took and the
			// bucket does not hold stays unacknowledged, so the depth is at least their number
			// from now on (more when the last acks are still on their way).
			var floor int64
			testenv.Eventually(t, 30*time.Second, "the depth's lower bound", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				events, err := js.Stream(ctx, spec.Stream)
				if err != nil {
					return err
				}
				kv, err := js.KeyValue(ctx, spec.Bucket)
				if err != nil {
					return err
				}
				st, err := kv.Status(ctx)
				if err != nil {
					return err
				}
				floor = int64(events.CachedInfo().State.LastSeq) - int64(st.Values())
				if floor <= 0 {
					return fmt.Errorf("no unpredicted event yet: %d taken, %d predicted", events.CachedInfo().State.LastSeq, st.Values())
				}
				return nil
			})
			disrupted := time.Now()
			tc.disrupt(t, c, spec.Stream)
			if tc.heal != nil {
				tc.heal(t, c)
			}
			// Quorum is back when the stream's leader answers again.
			testenv.Eventually(t, 2*time.Minute, "the stream's leader answers", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				h, err := queue.ReadStreamHealth(ctx, js, spec.Stream)
				if err != nil || !h.Quorum() {
					return fmt.Errorf("health %+v, %v", h, err)
				}
				return nil
			})
			healed := time.Now()
			// A lag read after the election, before the workers go on: the floor still holds.
			testenv.Eventually(t, time.Minute, "a lag read after the disruption", func() error {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				if n := len(rec.lags); n == 0 || rec.lags[n-1].err != nil || rec.lags[n-1].at.Before(healed) {
					return errors.New("none yet")
				}
				return nil
			})
			p.Gate.Open()
			wg.Wait()
			stopLag()
			stopHealth()
			p.CheckExactlyOnce(t, js, events, 2*time.Minute)
			p.Stop()

			rec.mu.Lock()
			defer rec.mu.Unlock()
			// The queue depth while the workers were held: unknown (an error) or at least what it
			// was, never zero; and never more than every event sent.
			var readDuring, failedDuring int
			for _, l := range rec.lags {
				if l.at.Before(disrupted) || l.at.After(healed) {
					continue
				}
				readDuring++
				switch {
				case l.err != nil && !errors.Is(l.err, queue.ErrUnreachable):
					t.Errorf("lag read at +%s: %v, an error that does not say the depth is unknown", l.at.Sub(disrupted), l.err)
				case l.err != nil:
					failedDuring++
				case l.lag.Total() < floor || l.lag.Total() > events:
					t.Errorf("lag read at +%s = %d with the workers held; the queue held at least %d and at most %d", l.at.Sub(disrupted), l.lag.Total(), floor, events)
				}
			}
			// Refusals: only 503 with Retry-After, only in the windows that explain them.
			windows := append(slices.Clone(rec.windows), rec.noLeader...)
			// A request in flight at the instant a server dies may lose its answer with it: the
			// publish was sent to, or replicated through, the server that went away.
			windows = append(windows, window{disrupted, disrupted})
			if tc.quorumLost {
				windows = append(windows, window{disrupted, healed})
			}
			var refused, longest time.Duration
			var refusals int
			for _, o := range rec.outcomes {
				if o.Status == http.StatusAccepted {
					continue
				}
				refusals++
				if o.Status != http.StatusServiceUnavailable || o.RetryAfter == "" {
					t.Errorf("a refusal that is not 503 with Retry-After: %+v", o)
				}
				explained := false
				for _, w := range windows {
					explained = explained || w.overlaps(o)
				}
				if !explained {
					t.Errorf("503 from +%s to +%s, outside every window without quorum or connection %v", o.Start.Sub(disrupted), o.End.Sub(disrupted), windows)
				}
				refused += o.End.Sub(o.Start)
				longest = max(longest, o.End.Sub(o.Start))
			}
			t.Logf("disrupted for %s; %d lag reads meanwhile, %d of them unknown; %d refusals (longest %s); %d connection moves; %d sampled windows without a leader",
				healed.Sub(disrupted).Round(time.Millisecond), readDuring, failedDuring, refusals, longest.Round(time.Millisecond), len(rec.windows), len(rec.noLeader))
		})
	}
}
