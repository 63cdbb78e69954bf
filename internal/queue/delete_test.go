package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/natstest"
)

func publishN(t *testing.T, js jetstream.JetStream, subject string, n int) {
	t.Helper()
	for i := range n {
		if _, err := js.Publish(context.Background(), subject, []byte("{}"), jetstream.WithMsgID(fmt.Sprint("e", i))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeleteRefusesWhileEventsWait(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("doomed")
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, spec.Subject, 3)

	_, err := Delete(ctx, js, spec.Topology, false)
	var unacked *UnackedEventsError
	if !errors.As(err, &unacked) || !errors.Is(err, ErrUnackedEvents) || unacked.Events != 3 {
		t.Fatalf("deleting with 3 events waiting: err = %v, want an UnackedEventsError of 3", err)
	}
	if names := streamNames(t, js); len(names) != 3 {
		t.Fatalf("a refused delete removed streams: %v left", names)
	}

	// Acknowledged events are gone from a work-queue stream: nothing blocks the delete then.
	cons, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(3)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Delete(ctx, js, spec.Topology, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{spec.Stream, spec.OutputStream, spec.BucketStream()}; !slices.Equal(got.Streams, want) || got.DroppedEvents != 0 {
		t.Errorf("deleted %+v, want %v and nothing dropped", got, want)
	}
	if names := streamNames(t, js); len(names) != 0 {
		t.Errorf("streams left after Delete: %v", names)
	}
	// Again: nothing left to delete is no error.
	if got, err := Delete(ctx, js, spec.Topology, false); err != nil || len(got.Streams) != 0 {
		t.Errorf("a second Delete: %+v, %v", got, err)
	}
}

func TestDeleteDropsEventsWhenTold(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("dropped")
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, spec.Subject, 4)
	got, err := Delete(ctx, js, spec.Topology, true)
	if err != nil || got.DroppedEvents != 4 || len(got.Streams) != 3 {
		t.Fatalf("Delete(drop) = %+v, %v; want 3 streams and 4 dropped events", got, err)
	}
}

// TestRecreatedPipelineAdoptsItsRetainedStreams: the streams of a deleted pipeline stay (the
// Retain policy); a pipeline of the same name provisions on top of them and finds its events.
func TestRecreatedPipelineAdoptsItsRetainedStreams(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("kept")
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	publishN(t, js, spec.Subject, 5)

	// Re-created with another limit: adopted, updated, and the events are still there.
	spec.MaxMessages = 500
	res, err := Provision(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.EventsStreamExisted || res.Events != 5 || len(res.Created) != 0 || !res.Changed {
		t.Fatalf("re-provisioning: %+v; want the existing stream adopted with its 5 events, updated, nothing created", res)
	}
	lag, err := ReadLag(ctx, js, spec.Stream, spec.Consumer)
	if err != nil || lag.Pending != 5 {
		t.Fatalf("the adopted consumer's lag = %+v, %v; want the 5 events pending", lag, err)
	}
}
