package event_test

import (
	"fmt"
	"time"

	"github.com/freightcast/freightcast/internal/event"
)

// A worker decodes each queue message, checks the feature count against its model, predicts,
// and stores the record under the event id in the predictions bucket.
func Example() {
	msg := []byte(`{"v":1,"id":"evt-1","features":[0.7,3,1200.5],"shipment":{"to":"SGSIN"},"receivedAt":"2026-11-27T08:41:36Z"}`)
	ev, err := event.Decode(msg)
	if err != nil {
		fmt.Println("dead-letter:", err)
		return
	}
	const modelInputs = 3
	if len(ev.Features) != modelInputs {
		fmt.Println("dead-letter: wrong feature count")
		return
	}
	record, err := event.EncodePrediction(event.Prediction{
		ID: ev.ID, Model: "delay", ModelVersion: "3",
		Outputs:    map[string][]event.Value{"delay_risk": event.Numbers(0.82)},
		Shipment:   ev.Shipment,
		ReceivedAt: ev.ReceivedAt,
		// A worker uses its clock; a fixed time keeps the example's output stable.
		PredictedAt: time.Date(2026, 11, 27, 8, 41, 37, 0, time.UTC),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// kv.Put(ctx, ev.ID, record) in the worker.
	fmt.Println(string(record))
	// Output:
	// {"v":1,"id":"evt-1","model":"delay","modelVersion":"3","outputs":{"delay_risk":[0.82]},"shipment":{"to":"SGSIN"},"receivedAt":"2026-11-27T08:41:36Z","predictedAt":"2026-11-27T08:41:37Z"}
}
