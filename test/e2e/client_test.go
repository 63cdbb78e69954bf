//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/queue"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

// featureNames is the sample model's feature order (config/samples).
var featureNames = []string{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road",
	"carrier_on_time_rate", "port_congestion_index", "weather_severity", "month_sin", "month_cos",
	"customs_complexity", "dwell_time_hours"}

type freightEvent struct {
	ID       string             `json:"id"`
	Features map[string]float64 `json:"features"`
	Shipment map[string]string  `json:"shipment,omitempty"`
}

// makeEvents returns n plausible events with ids prefix-0 … prefix-(n-1).
func makeEvents(prefix string, n int) []freightEvent {
	r := rand.New(rand.NewPCG(uint64(len(prefix)), uint64(n)))
	events := make([]freightEvent, n)
	for i := range events {
		mode := r.IntN(4)
		f := map[string]float64{
			"distance_km": 100 + r.Float64()*9000, "carrier_on_time_rate": 0.6 + r.Float64()*0.4,
			"port_congestion_index": r.Float64(), "weather_severity": r.Float64(), "month_sin": r.Float64()*2 - 1,
			"month_cos": r.Float64()*2 - 1, "customs_complexity": r.Float64(), "dwell_time_hours": r.Float64() * 72,
		}
		for j, m := range []string{"mode_ocean", "mode_air", "mode_rail", "mode_road"} {
			f[m] = 0
			if j == mode {
				f[m] = 1
			}
		}
		events[i] = freightEvent{ID: prefix + "-" + strconv.Itoa(i), Features: f, Shipment: map[string]string{"lane": "CNSHA-NLRTM"}}
	}
	return events
}

// postEvents sends events as NDJSON bodies of batch events each, retrying 429 and 503 after the
// Retry-After the server gives (the documented client contract), and fails on anything else.
func postEvents(t testing.TB, base string, events []freightEvent, batch int) {
	t.Helper()
	if err := sendEvents(base, events, batch); err != nil {
		t.Fatal(err)
	}
}

// sendEvents is postEvents for goroutines other than the test's, which must not call t.Fatal.
func sendEvents(base string, events []freightEvent, batch int) error {
	for start := 0; start < len(events); start += batch {
		end := min(start+batch, len(events))
		var body bytes.Buffer
		enc := json.NewEncoder(&body)
		for _, e := range events[start:end] {
			_ = enc.Encode(e)
		}
		if err := postWithRetry(base, body.Bytes(), 2*time.Minute); err != nil {
			return fmt.Errorf("posting events %d..%d: %w", start, end-1, err)
		}
	}
	return nil
}

func postWithRetry(base string, body []byte, budget time.Duration) error {
	deadline := time.Now().Add(budget)
	for {
		resp, err := httpClient.Post("http://"+base+"/v1/events", "application/x-ndjson", bytes.NewReader(body))
		var msg []byte
		status := 0
		if err == nil {
			msg, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
			if status == http.StatusAccepted {
				return nil
			}
			if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
				return fmt.Errorf("status %d: %s", status, msg)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %s: status %d %s %v", budget, status, msg, err)
		}
		wait := 200 * time.Millisecond
		if resp != nil {
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
		}
		time.Sleep(wait)
	}
}

// sendConcurrently posts events from workers goroutines, batch events per body.
func sendConcurrently(base string, events []freightEvent, workers, batch int) error {
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	chunk := (len(events) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(events))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- sendEvents(base, events[lo:hi], batch)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// getPrediction reads one prediction by event id; found is false on 404.
func getPrediction(base, id string) (map[string]any, bool, error) {
	resp, err := httpClient.Get("http://" + base + "/v1/predictions/" + id)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusOK:
		var p map[string]any
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, false, fmt.Errorf("prediction %s: %v: %s", id, err, b)
		}
		return p, true, nil
	case http.StatusNotFound:
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("GET prediction %s: %d %s", id, resp.StatusCode, b)
	}
}

// queueClient talks to the in-cluster NATS through its loopback NodePort, to count what the
// pipeline wrote: the ground truth for "every event predicted exactly once".
type queueClient struct {
	nc *nats.Conn
	js jetstream.JetStream
	tp queue.Topology
}

func newQueueClient(t testing.TB, natsAddr, ns, pipeline string) *queueClient {
	t.Helper()
	var nc *nats.Conn
	// A new NodePort answers once kube-proxy has synced its rules.
	eventually(t, 30*time.Second, "NATS through its NodePort "+natsAddr, func() (err error) {
		// Only through the NodePort: the servers' own addresses, which they tell clients, are
		// the pods' and not reachable from the host.
		nc, err = nats.Connect("nats://"+natsAddr, nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond), nats.IgnoreDiscoveredServers())
		return err
	})
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &queueClient{nc: nc, js: js, tp: queue.TopologyFor(ns, pipeline)}
}

// counts returns the predictions stored (one per key of the predictions bucket, which a worker
// writes only when the key is absent), the dead letters in the output stream, and the
// consumer's lag.
func (q *queueClient) counts(ctx context.Context) (predictions, deadLetters uint64, lag int64, err error) {
	bucket, err := q.js.Stream(ctx, q.tp.BucketStream())
	if err != nil {
		return 0, 0, 0, err
	}
	binfo, err := bucket.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	predictions = binfo.State.Msgs
	s, err := q.js.Stream(ctx, q.tp.OutputStream)
	if err != nil {
		return 0, 0, 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	// The output stream holds dead letters only, each under its event's subject
	// (Topology.DeadLetterKeySubject).
	deadLetters = info.State.Msgs
	l, err := queue.ReadLag(ctx, q.js, q.tp.Stream, q.tp.Consumer)
	if err != nil {
		return predictions, deadLetters, 0, err
	}
	return predictions, deadLetters, l.Total(), nil
}

// predictedIDs returns how many predictions of each event id the bucket's stream holds, each
// checked to be the prediction of the event its key names.
func (q *queueClient) predictedIDs(ctx context.Context) (map[string]int, error) {
	cons, err := q.js.OrderedConsumer(ctx, q.tp.BucketStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	s, err := q.js.Stream(ctx, q.tp.BucketStream())
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	want := info.State.Msgs
	prefix := q.tp.PredictionKeySubject("")
	ids := map[string]int{}
	for got := uint64(0); got < want; {
		batch, err := cons.FetchNoWait(1000)
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			var p struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(m.Data(), &p); err != nil {
				return nil, fmt.Errorf("prediction record is not JSON: %v", err)
			}
			if key := strings.TrimPrefix(m.Subject(), prefix); key != p.ID {
				return nil, fmt.Errorf("bucket key %s holds the prediction of %s", key, p.ID)
			}
			ids[p.ID]++
			n++
		}
		if batch.Error() != nil {
			return nil, batch.Error()
		}
		if n == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		got += uint64(n)
	}
	return ids, nil
}

// waitAllPredicted waits until every event has exactly one prediction and nothing is dead-lettered
// or pending, and returns how long that took.
func waitAllPredicted(t testing.TB, q *queueClient, events []freightEvent, already int, timeout time.Duration) time.Duration {
	t.Helper()
	want := uint64(len(events) + already)
	took := eventually(t, timeout, fmt.Sprintf("%d predictions", want), func() error {
		p, dl, lag, err := q.counts(context.Background())
		if err != nil {
			return err
		}
		if dl != 0 {
			return fmt.Errorf("%d dead letters", dl)
		}
		if p < want || lag != 0 {
			return fmt.Errorf("%d of %d predictions, lag %d", p, want, lag)
		}
		return nil
	})
	// The read goes through a new ephemeral consumer; on a NATS cluster its pull requests can
	// meet "no responders" until the consumer leader's interest has reached the server this client
	// talks to. Such an error is retried; any other fails the test at once.
	var ids map[string]int
	var readErr error
	eventually(t, time.Minute, "the predictions read back", func() error {
		ids, readErr = q.predictedIDs(context.Background())
		if errors.Is(readErr, nats.ErrNoResponders) || errors.Is(readErr, nats.ErrTimeout) || errors.Is(readErr, context.DeadlineExceeded) {
			return readErr
		}
		return nil
	})
	if readErr != nil {
		t.Fatal(readErr)
	}
	var dup, missing []string
	for _, e := range events {
		switch ids[e.ID] {
		case 1:
		case 0:
			missing = append(missing, e.ID)
		default:
			dup = append(dup, e.ID)
		}
	}
	if len(ids) != int(want) || len(dup) > 0 || len(missing) > 0 {
		t.Fatalf("exactly once broken: %d distinct ids for %d events; duplicated %v; missing %v",
			len(ids), want, head(dup), head(missing))
	}
	return took
}

func head(s []string) string {
	if len(s) > 5 {
		return strings.Join(s[:5], ",") + fmt.Sprintf(" (+%d)", len(s)-5)
	}
	return strings.Join(s, ",")
}
