package worker

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/event"
)

const benchBatch = 64

// BenchmarkRecord encodes the prediction records of a full batch, as Handle does after each
// model run.
func BenchmarkRecord(b *testing.B) {
	h := newHarness(b, time.Minute)
	w, _, _ := h.newWorker(benchBatch)
	for _, out := range w.out {
		for k := range out {
			out[k] = float32(k) / benchBatch
		}
	}
	ev := event.Event{ID: "shp-20261127-0001", ReceivedAt: time.Now(),
		Shipment: json.RawMessage(`{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk"}`)}
	now := time.Now()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range benchBatch {
			var err error
			if buf, err = w.record(buf, ev, i, now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkHandle scores, stores and acknowledges one full batch on a real server. Queueing and
// fetching the batch's events is not timed.
func BenchmarkHandle(b *testing.B) {
	h := newHarness(b, time.Minute)
	w, _, _ := h.newWorker(benchBatch)
	ctx := context.Background()
	consumer, err := h.js.Consumer(ctx, h.spec.Stream, h.spec.Consumer)
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]jetstream.Msg, 0, benchBatch)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		for j := range benchBatch {
			id := "b" + strconv.Itoa(i) + "-" + strconv.Itoa(j)
			data, err := event.Encode(&event.Event{ID: id, Features: features(j), ReceivedAt: time.Now(),
				Shipment: []byte(`{"ref":"` + id + `"}`)})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.js.PublishAsync(h.spec.Subject, data, jetstream.WithMsgID(id)); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-h.js.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
			b.Fatal("events not stored within 10s")
		}
		msgs = msgs[:0]
		for len(msgs) < benchBatch {
			batch, err := consumer.Fetch(benchBatch-len(msgs), jetstream.FetchMaxWait(5*time.Second))
			if err != nil {
				b.Fatal(err)
			}
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			if err := batch.Error(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		w.Handle(ctx, msgs)
	}
}
