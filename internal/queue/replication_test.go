package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// streamReplicas reads the replica count of each of the pipeline's streams.
func streamReplicas(t *testing.T, js jetstream.JetStream, spec Spec) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, name := range []string{spec.Stream, spec.OutputStream, spec.BucketStream()} {
		s, err := js.Stream(clusterCtx(t), name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = s.CachedInfo().Config.Replicas
	}
	return out
}

// clusterCtx bounds a test's calls to a cluster. A replica change or an election on a loaded
// machine may take longer than the JetStream API's 2 s default, which applies without a deadline.
func clusterCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// callCtx bounds one call in a loop that waits for the cluster: a request that reached no leader
// during an election is never answered.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProvisionScalesReplicasInPlace(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	js := connect(t, c.URL())
	ctx := clusterCtx(t)
	spec := testSpec("replicated")
	spec.Replicas = 1
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, spec.Subject, 20)

	spec.Replicas = 3
	res, err := Provision(ctx, js, spec)

	if err != nil {
		t.Fatal(err)
	}
	var scaled []string
	for _, r := range res.Rescaled {
		if r.From != 1 || r.To != 3 {
			t.Errorf("rescale %+v, want 1 → 3", r)
		}
		scaled = append(scaled, r.Stream)
	}
	slices.Sort(scaled)
	want := []string{spec.BucketStream(), spec.Stream, spec.OutputStream}
	slices.Sort(want)
	if !slices.Equal(scaled, want) {
		t.Fatalf("rescaled %v, want %v", scaled, want)
	}
	for name, r := range streamReplicas(t, js, spec) {
		if r != 3 {
			t.Errorf("stream %s has %d replicas after scaling to 3", name, r)
		}
	}
	// The scale-up copies the streams to two more servers; the consumer follows when it is done.
	testenv.Eventually(t, 60*time.Second, "the consumer scaled too", func() error {
		res, err := Provision(ctx, js, spec)
		switch {
		case err != nil:
			t.Fatal(err)
		case res.Converging:
			return errors.New("still converging")
		}
		return nil
	})
	testenv.Eventually(t, 30*time.Second, "both new replicas current", func() error {
		h, err := ReadStreamHealth(callCtx(t), js, spec.Stream)
		if err != nil {
			return err
		}
		if len(h.Followers) != 2 || len(h.Lagging()) != 0 || !h.Quorum() {
			return fmt.Errorf("health %+v, lagging %v", h, h.Lagging())
		}
		return nil
	})
	s, err := js.Stream(ctx, spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != 20 {
		t.Errorf("the stream holds %d events after scaling up, want 20", got)
	}
	// The consumer follows its stream; its new peers show once they have joined its group.
	testenv.Eventually(t, 30*time.Second, "the consumer on three servers", func() error {
		cons, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
		if err != nil {
			return err
		}
		if cl := cons.CachedInfo().Cluster; cl == nil || cl.Leader == "" || len(cl.Replicas) != 2 {
			return fmt.Errorf("consumer cluster info %+v, want a leader and 2 replicas", cl)
		}
		return nil
	})
	if res, err := Provision(ctx, js, spec); err != nil || res.Changed {
		t.Fatalf("provisioning the scaled pipeline again: changed=%v err=%v", res.Changed, err)
	}

	spec.Replicas = 1
	if res, err = Provision(ctx, js, spec); err != nil || len(res.Rescaled) != 3 {
		t.Fatalf("scaling down: %+v, %v", res, err)
	}
	for name, r := range streamReplicas(t, js, spec) {
		if r != 1 {
			t.Errorf("stream %s has %d replicas after scaling to 1", name, r)
		}
	}

	// Five replicas on three servers cannot be placed: said as such, nothing changed.
	spec.Replicas = 5
	if _, err := Provision(ctx, js, spec); !errors.Is(err, ErrNotEnoughServers) {
		t.Fatalf("5 replicas on 3 servers: err = %v, want ErrNotEnoughServers", err)
	}
	for name, r := range streamReplicas(t, js, spec) {
		if r != 1 {
			t.Errorf("stream %s has %d replicas after a refused scale-up", name, r)
		}
	}
}

func TestProvisionReplicasOnASingleServer(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	spec := testSpec("single")
	spec.Replicas = 3
	_, err := Provision(context.Background(), js, spec)
	if !errors.Is(err, ErrNotEnoughServers) {
		t.Fatalf("3 replicas on one server: err = %v, want ErrNotEnoughServers", err)
	}
	// Nothing half-provisioned.
	if names := streamNames(t, js); len(names) != 0 {
		t.Fatalf("a refused pipeline left streams behind: %v", names)
	}
}

func streamNames(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	l := js.StreamNames(context.Background())
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestStreamHealthThroughTheLossOfServers: with one of three servers down the stream keeps its
// quorum and names the lost replica; with two down it has none, and neither the health read nor
// the lag read passes that off as a healthy or empty queue.
func TestStreamHealthThroughTheLossOfServers(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	js := connect(t, c.URL())
	ctx := clusterCtx(t)
	spec := testSpec("health")
	spec.Replicas = 3
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, spec.Subject, 7)
	leader := c.WaitStreamLeader(t, "", spec.Stream, 10*time.Second)
	var followers []*natstest.Server
	for _, s := range c.Servers {
		if s != leader {
			followers = append(followers, s)
		}
	}

	c.Kill(t, c.Index(followers[0]))
	testenv.Eventually(t, 30*time.Second, "the stopped follower shows as lagging", func() error {
		h, err := ReadStreamHealth(callCtx(t), js, spec.Stream)
		if err != nil {
			return err
		}
		if !h.Quorum() || h.Leader != leader.Name() || !slices.Equal(h.Lagging(), []string{followers[0].Name()}) {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})

	c.Kill(t, c.Index(followers[1]))
	readCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	testenv.Eventually(t, 30*time.Second, "no quorum", func() error {
		h, err := ReadStreamHealth(readCtx, js, spec.Stream)
		if err == nil && h.Quorum() {
			return fmt.Errorf("health %+v still claims a quorum", h)
		}
		if err != nil && !errors.Is(err, ErrUnreachable) {
			t.Fatalf("health without quorum: err = %v, want one wrapping ErrUnreachable", err)
		}
		return nil
	})
	lagCtx, cancelLag := context.WithTimeout(ctx, 3*time.Second)
	defer cancelLag()
	if lag, err := ReadLag(lagCtx, js, spec.Stream, spec.Consumer); err == nil && lag.Total() != 7 {
		t.Fatalf("lag without quorum = %+v with no error: neither the 7 events nor unknown", lag)
	} else if err != nil && !errors.Is(err, ErrUnreachable) {
		t.Fatalf("lag without quorum: err = %v, want one wrapping ErrUnreachable", err)
	}

	c.RestartAll(t)
	testenv.Eventually(t, 60*time.Second, "quorum again, every replica current", func() error {
		h, err := ReadStreamHealth(callCtx(t), js, spec.Stream)
		if err != nil {
			return err
		}
		if !h.Quorum() || len(h.Lagging()) != 0 {
			return fmt.Errorf("health %+v", h)
		}
		return nil
	})
	// The consumer elects its own leader, maybe after the stream's: until then its lag is
	// unknown, never 0.
	testenv.Eventually(t, 60*time.Second, "the lag of the 7 events", func() error {
		lag, err := ReadLag(callCtx(t), js, spec.Stream, spec.Consumer)
		switch {
		case err != nil && !errors.Is(err, ErrUnreachable):
			t.Fatalf("lag after the restart: err = %v, want one wrapping ErrUnreachable", err)
		case err != nil:
			return err
		case lag.Total() != 7:
			t.Fatalf("lag after the restart = %+v, want the 7 events", lag)
		}
		return nil
	})
}
