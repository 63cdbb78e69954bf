package queue

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// TestProvisionMovesAnEarlierPipelineToEventSubjects: a pipeline provisioned by the release before
// events had subjects of their own (the events stream on the root subject, the consumer filtered
// to it, dead letters on one subject) is brought to the per-event and per-id subjects in place,
// and its consumer then gets both an event queued before and one queued after.
func TestProvisionMovesAnEarlierPipelineToEventSubjects(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("orders")
	// The earlier release's layout.
	events := eventsStreamConfig(spec)
	events.Subjects = []string{spec.Subject}
	out := outputStreamConfig(spec)
	out.Subjects = []string{spec.PredictionSubject, spec.DeadLetterSubject}
	for _, c := range []jetstream.StreamConfig{events, out, bucketStreamConfig(spec)} {
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	consumer := consumerConfig(spec)
	consumer.FilterSubject = spec.Subject
	if _, err := js.CreateConsumer(ctx, spec.Stream, consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, spec.Subject, []byte("before"), jetstream.WithMsgID("before")); err != nil {
		t.Fatal(err)
	}

	res, err := Provision(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Error("Provision reported no change")
	}
	for name, want := range map[string][]string{spec.Stream: spec.EventSubjects(),
		spec.OutputStream: {spec.PredictionSubject, spec.DeadLetterSubject, spec.DeadLetterKeySubject(">")}} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Subjects; !slices.Equal(got, want) {
			t.Errorf("stream %s subjects %v, want %v", name, got, want)
		}
	}
	if _, err := js.Publish(ctx, spec.EventSubject("after"), []byte("after"), jetstream.WithMsgID("after")); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.CachedInfo().Config.FilterSubject; f != "" {
		t.Errorf("the consumer keeps its filter %q", f)
	}
	batch, err := c.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
	}
	if !slices.Equal(got, []string{"before", "after"}) {
		t.Errorf("the consumer got %v, want the event queued before the upgrade and the one after", got)
	}
}
