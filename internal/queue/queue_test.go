package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func testSpec(name string) Spec {
	return Spec{
		Topology: TopologyFor("ns1", name),
		Limits: Limits{
			MaxMessages:         1000,
			MaxBytes:            1 << 20,
			MaxAge:              time.Hour,
			DuplicateWindow:     2 * time.Minute,
			AckWait:             30 * time.Second,
			MaxDeliver:          5,
			MaxAckPending:       1000,
			PredictionRetention: 24 * time.Hour,
		},
	}
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	c := NewConnector("queue-test")
	t.Cleanup(c.Close)
	js, err := c.JetStream(url)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestProvisionIsIdempotentAndFollowsTheSpec(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("orders")

	res, err := Provision(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed {
		t.Fatal("first Provision reported no change")
	}
	res, err = Provision(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed {
		t.Fatal("second Provision of the same spec wrote to the server")
	}

	spec.MaxMessages = 5
	spec.AckWait = 10 * time.Second
	spec.PredictionRetention = time.Hour
	if res, err = Provision(ctx, js, spec); err != nil || !res.Changed {
		t.Fatalf("Provision after a limit change: changed=%v err=%v", res.Changed, err)
	}
	stream, err := js.Stream(ctx, spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().Config.MaxMsgs; got != 5 {
		t.Errorf("stream MaxMsgs = %d, want 5", got)
	}
	consumer, err := js.Consumer(ctx, spec.Stream, spec.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := consumer.CachedInfo().Config.AckWait; got != 10*time.Second {
		t.Errorf("consumer AckWait = %s, want 10s", got)
	}
	kv, err := js.KeyValue(ctx, spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.TTL() != time.Hour {
		t.Errorf("bucket TTL = %s, want 1h", status.TTL())
	}
}

func TestStreamDeduplicatesAndRefusesWhenFull(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("full")
	spec.MaxMessages = 3
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ack, err := js.Publish(ctx, spec.Subject, []byte("{}"), jetstream.WithMsgID(fmt.Sprintf("e%d", i)))
		if err != nil || ack.Duplicate {
			t.Fatalf("publish e%d: ack=%+v err=%v", i, ack, err)
		}
	}
	ack, err := js.Publish(ctx, spec.Subject, []byte("{}"), jetstream.WithMsgID("e1"))
	if err != nil || !ack.Duplicate {
		t.Fatalf("republishing e1: want a duplicate ack, got ack=%+v err=%v", ack, err)
	}
	if _, err := js.Publish(ctx, spec.Subject, []byte("{}"), jetstream.WithMsgID("e3")); err == nil {
		t.Fatal("a publish into a full stream succeeded; DiscardNew must refuse it")
	}
	stream, err := js.Stream(ctx, spec.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().State.Msgs; got != 3 {
		t.Errorf("stream holds %d messages, want 3", got)
	}
	// The server counts a consumer's pending messages after the store, on its
	// own goroutine, so the consumer may briefly trail the stream.
	testenv.Eventually(t, 5*time.Second, "the consumer counts the stored messages", func() error {
		lag, err := ReadLag(ctx, js, spec.Stream, spec.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		if lag.Total() != 3 {
			return fmt.Errorf("lag = %+v, want 3 pending", lag)
		}
		return nil
	})
}

func TestReadLagTellsMissingAndUnreachableFromZero(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("lag")

	if _, err := ReadLag(ctx, js, spec.Stream, spec.Consumer); !errors.Is(err, ErrConsumerMissing) {
		t.Fatalf("lag of a missing consumer: err = %v, want ErrConsumerMissing", err)
	}
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	lag, err := ReadLag(ctx, js, spec.Stream, spec.Consumer)
	if err != nil || lag.Total() != 0 {
		t.Fatalf("lag of an empty queue = %+v, %v; want 0, nil", lag, err)
	}
	// A consumer deleted from a stream that is still there: missing too, not unknown.
	if err := js.DeleteConsumer(ctx, spec.Stream, spec.Consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadLag(ctx, js, spec.Stream, spec.Consumer); !errors.Is(err, ErrConsumerMissing) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("lag of a deleted consumer: err = %v, want ErrConsumerMissing only", err)
	}
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := ReadLag(ctx, js, spec.Stream, spec.Consumer); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("lag with the server down: err = %v, want ErrUnreachable", err)
	}

	// A server that comes back is usable through the same connection.
	srv.Restart(t)
	testenv.Eventually(t, 10*time.Second, "lag after restart", func() error {
		_, err := ReadLag(context.Background(), js, spec.Stream, spec.Consumer)
		return err
	})
}

func TestConnectorReportsUnreachable(t *testing.T) {
	c := NewConnector("queue-test")
	defer c.Close()
	// Port 1 on loopback: nothing listens there, so the dial is refused at once.
	if _, err := c.JetStream("nats://127.0.0.1:1"); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

// TestConnectorDialsOutsideTheLock: a server that accepts the TCP connection and never answers
// holds up its own callers only; a pipeline on a healthy server connects meanwhile.
func TestConnectorDialsOutsideTheLock(t *testing.T) {
	srv := natstest.Start(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := silent.Accept(); err == nil {
			accepted <- conn
		}
	}()

	c := NewConnector("queue-test")
	defer c.Close()
	// Long enough that only closing the silent connection ends that dial.
	c.timeout = time.Minute
	stuck := make(chan error, 1)
	go func() {
		_, err := c.JetStream("nats://" + silent.Addr().String())
		stuck <- err
	}()
	held := <-accepted

	if _, err := c.JetStream(srv.URL()); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	select {
	case err := <-stuck:
		t.Fatalf("the silent server's dial ended before it was released: %v", err)
	default:
	}
	held.Close()
	if err := <-stuck; !errors.Is(err, ErrUnreachable) {
		t.Fatalf("silent server: err = %v, want ErrUnreachable", err)
	}
}

func TestConnectorRefusesAfterClose(t *testing.T) {
	srv := natstest.Start(t)
	c := NewConnector("queue-test")
	c.Close()
	if _, err := c.JetStream(srv.URL()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("after Close: err = %v, want ErrUnreachable", err)
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		mutate func(*Spec)
		ok     bool
	}{
		"valid":                     {mutate: func(*Spec) {}, ok: true},
		"no stream":                 {mutate: func(s *Spec) { s.Stream = "" }},
		"zero messages":             {mutate: func(s *Spec) { s.MaxMessages = 0 }},
		"zero bytes":                {mutate: func(s *Spec) { s.MaxBytes = 0 }},
		"duplicate window over age": {mutate: func(s *Spec) { s.DuplicateWindow = 2 * s.MaxAge }},
		"zero ack wait":             {mutate: func(s *Spec) { s.AckWait = 0 }},
		"zero max deliver":          {mutate: func(s *Spec) { s.MaxDeliver = 0 }},
		"zero ack pending":          {mutate: func(s *Spec) { s.MaxAckPending = 0 }},
		"zero prediction retention": {mutate: func(s *Spec) { s.PredictionRetention = 0 }},
		"reporting":                 {mutate: func(s *Spec) { s.Reporting = true }, ok: true},
		"reporting without names":   {mutate: func(s *Spec) { s.Reporting, s.ReportStore = true, "" }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := testSpec("v")
			tc.mutate(&s)
			if err := s.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestThroughputMeter(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	var m ThroughputMeter
	steps := []struct {
		name     string
		acked    uint64
		at       time.Time
		replicas int32
		want     float64
	}{
		{"first sample", 100, t0, 2, 0},
		{"600 in 2s over 3 replicas", 700, t0.Add(2 * time.Second), 3, 100},
		{"no replica", 800, t0.Add(3 * time.Second), 0, 0},
		{"no time passed", 900, t0.Add(3 * time.Second), 1, 0},
		{"clock stepped back", 950, t0.Add(time.Second), 1, 0},
		{"ack floor went back", 10, t0.Add(2 * time.Second), 1, 0},
		{"measures from the last sample again", 60, t0.Add(4 * time.Second), 1, 25},
	}
	for _, s := range steps {
		if got := m.Sample(Lag{Acknowledged: s.acked}, s.at, s.replicas); got != s.want {
			t.Errorf("%s: throughput %v, want %v", s.name, got, s.want)
		}
	}
}

// TestPredictionKeySubjectWritesTheBucketKey checks the subject layout against the KeyValue API:
// a message published to PredictionKeySubject(id) is what Get(id) reads, and a second write
// that expects the key absent is refused.
func TestPredictionKeySubjectWritesTheBucketKey(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("orders")
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	subject := spec.PredictionKeySubject("shp-1.a")
	if _, err := js.Publish(ctx, subject, []byte("first"), jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
		t.Fatal(err)
	}
	_, err := js.Publish(ctx, subject, []byte("second"), jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Errorf("second write of the key: %v, want a wrong-last-sequence refusal", err)
	}
	kv, err := js.KeyValue(ctx, spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, "shp-1.a")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(entry.Value()); got != "first" {
		t.Errorf("Get reads %q, want the first write", got)
	}
}

// TestTheBucketIsBoundedAndDropsItsOldest: the predictions bucket reserves maxBytes like the
// other streams, and a full one drops its oldest predictions instead of refusing the worker's
// next write (which would stall the pipeline). A bucket made by an earlier version through the
// key-value API, unbounded, is brought under the cap with its predictions kept.
func TestTheBucketIsBoundedAndDropsItsOldest(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("bounded")
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: spec.Bucket, History: 1, TTL: spec.PredictionRetention, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Create(ctx, "before", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(ctx, js, spec); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, spec.BucketStream())
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if cfg.MaxBytes != spec.MaxBytes || cfg.Discard != jetstream.DiscardOld || cfg.Metadata[MetadataRole] != RolePredictions {
		t.Fatalf("the bucket's stream: max bytes %d, discard %v, metadata %v; want %d, DiscardOld, role predictions",
			cfg.MaxBytes, cfg.Discard, cfg.Metadata, spec.MaxBytes)
	}
	kv, err := js.KeyValue(ctx, spec.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := kv.Get(ctx, "before"); err != nil || string(e.Value()) != "kept" {
		t.Fatalf("the prediction written before the bucket was bounded: %v, %v", e, err)
	}

	// 1 MiB of cap, 64 KiB predictions: the 40 written overflow it about two and a half times.
	value := make([]byte, 64<<10)
	const writes = 40
	for i := range writes {
		if _, err := js.Publish(ctx, spec.PredictionKeySubject(fmt.Sprintf("e%d", i)), value, jetstream.WithExpectLastSequencePerSubject(0)); err != nil {
			t.Fatalf("write %d into a full bucket: %v", i, err)
		}
	}
	if _, err := kv.Get(ctx, "e0"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the oldest prediction: %v, want it dropped", err)
	}
	if e, err := kv.Get(ctx, fmt.Sprintf("e%d", writes-1)); err != nil || len(e.Value()) != len(value) {
		t.Errorf("the newest prediction: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int64(info.State.Bytes) > spec.MaxBytes {
		t.Errorf("the bucket holds %d bytes, over its cap of %d", info.State.Bytes, spec.MaxBytes)
	}
}

// TestProvisionWithReporting: a pipeline with reporting gets its snapshot store and its reporting
// consumer, reserves one stream more, leaves the consumer where the reporting role put it, and
// Delete removes the store.
func TestProvisionWithReporting(t *testing.T) {
	srv := natstest.Start(t)
	js := connect(t, srv.URL())
	ctx := context.Background()
	spec := testSpec("reported")
	spec.Reporting = true
	if got, want := spec.Reservation(), 4*spec.MaxBytes; got != want {
		t.Errorf("Reservation() = %d, want %d (four streams)", got, want)
	}
	res, err := Provision(ctx, js, spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{spec.OutputStream, spec.BucketStream(), spec.Stream, spec.Stream + "/" + spec.Consumer,
		spec.ReportStoreStream(), spec.BucketStream() + "/" + spec.ReportConsumer}
	if fmt.Sprint(res.Created) != fmt.Sprint(want) {
		t.Errorf("Created = %v, want %v", res.Created, want)
	}
	store, err := js.ObjectStore(ctx, spec.ReportStore)
	if err != nil {
		t.Fatalf("the report store is not an object store: %v", err)
	}
	if _, err := store.PutBytes(ctx, "snapshot", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// The reporting role re-creates its consumer at its snapshot's sequence; Provision keeps it.
	if err := js.DeleteConsumer(ctx, spec.BucketStream(), spec.ReportConsumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, spec.BucketStream(), ReportConsumerConfig(spec, 41)); err != nil {
		t.Fatal(err)
	}
	if res, err := Provision(ctx, js, spec); err != nil || res.Changed {
		t.Fatalf("second Provision: changed=%v err=%v, want no change", res.Changed, err)
	}
	c, err := js.Consumer(ctx, spec.BucketStream(), spec.ReportConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.OptStartSeq; got != 42 {
		t.Errorf("reporting consumer starts at %d after Provision, want 42 (where the role put it)", got)
	}
	deleted, err := Delete(ctx, js, spec.Topology, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted.Streams) != 4 || deleted.Streams[3] != spec.ReportStoreStream() {
		t.Errorf("Delete removed %v, want the report store among them", deleted.Streams)
	}
}
