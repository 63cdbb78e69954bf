// Package clientflow is issue 16's "done when" as one flow over the documented HTTP API only, so
// that local mode (cmd/freightcast) and the real cluster (test/e2e) are held to the same
// assertions: two clients send raw shipments that the sample pipeline's transforms turn into
// features, follow their predictions and dead letters on the push feed and resume it after a
// disconnect, see a dead-lettered shipment with its reason by status and on the feed, get a 400
// naming the event and the feature for a shipment a transform cannot read, and neither sees the
// other's data.
package clientflow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// API is a pipeline's ingestion API as a client sees it.
type API struct {
	// Base is the API's base URL.
	Base string
	// Acme and Globex are the bearer tokens of two clients of the pipeline's tokens file.
	Acme, Globex string
	// EventsFile is models/freight-delay-risk.events.json: the raw shipments the pipeline's
	// transforms take.
	EventsFile string
	// Wait bounds each wait for an answer (a prediction, a dead letter, the Service answering).
	Wait time.Duration
}

// Run runs the flow against a pipeline that runs the sample model with the sample transforms,
// events ids from acme-/globex- unused before.
func Run(t *testing.T, a API) {
	t.Helper()
	shipment := shipments(t, a.EventsFile)
	status := func(token, id, want string) map[string]any {
		t.Helper()
		var got map[string]any
		testenv.Eventually(t, a.Wait, id+" "+want, func() error {
			_, out, err := a.call(http.MethodGet, "/v1/events/"+id, token, "")
			if got = out; err == nil && out["status"] != want {
				err = fmt.Errorf("%v", out)
			}
			return err
		})
		return got
	}

	// acme follows its feed from the start of the retained predictions.
	feed := a.openFeed(t, a.Acme, "0")
	a.send(t, a.Globex, shipment("globex-1", nil), shipment("globex-2", nil))
	// A weather severity of 3e38 passes every transform (it fits FP32) and makes the model's
	// output NaN: the inference pool dead-letters the shipment instead of storing a prediction.
	a.send(t, a.Acme, shipment("acme-1", nil), shipment("acme-2", nil),
		shipment("acme-poison", func(s map[string]any) { s["weather"] = map[string]any{"severity": 3e38} }))
	dead := status(a.Acme, "acme-poison", "dead_lettered")
	if dl, _ := dead["deadLetter"].(map[string]any); dl["reason"] != "non_finite" || !strings.Contains(fmt.Sprint(dl["detail"]), "NaN") {
		t.Errorf("the dead letter's status: %v", dead)
	}
	status(a.Globex, "globex-2", "predicted")
	p, _ := status(a.Acme, "acme-1", "predicted")["prediction"].(map[string]any)
	if risk, _ := p["outputs"].(map[string]any)["delay_risk"].([]any); len(risk) != 1 || !strings.Contains(fmt.Sprint(p["shipment"]), "carrier:Maersk") {
		t.Errorf("acme-1's prediction: %v", p)
	}

	// A shipment without a departure time fails the month transforms at ingestion: 400 naming
	// the event's index and the feature, and nothing of the body is queued.
	code, out, err := a.call(http.MethodPost, "/v1/events", a.Acme, "["+shipment("acme-whole", nil)+","+
		shipment("acme-undated", func(s map[string]any) { delete(s, "departure") })+"]")
	if err != nil || code != http.StatusBadRequest || fmt.Sprint(out["index"]) != "1" || out["field"] != "features.month_sin" ||
		!strings.Contains(fmt.Sprint(out["error"]), "no such key: departure") {
		t.Errorf("a shipment without departure: %d %v %v", code, out, err)
	}
	if code, out, err := a.call(http.MethodGet, "/v1/events/acme-whole", a.Acme, ""); err != nil || code != http.StatusNotFound {
		t.Errorf("the valid shipment of the refused body: %d %v %v", code, out, err)
	}

	got, deads, last := feed.untilAll(t, []string{"acme-1", "acme-2"}, "acme-poison")
	if s := sorted(got); s != "acme-1,acme-2" {
		t.Errorf("acme's feed: predictions %v, want acme-1, acme-2 and nothing else (none of globex's)", got)
	}
	if !slices.Equal(deads, []string{"acme-poison non_finite"}) {
		t.Errorf("acme's feed: dead letters %v, want acme-poison's alone (non_finite)", deads)
	}
	// A disconnect: what is predicted meanwhile comes on the resumed feed, after the last id
	// read, once each (on a cluster, through whichever ingestion pod the Service picks).
	feed.close()
	a.send(t, a.Acme, shipment("acme-3", nil), shipment("acme-4", nil))
	status(a.Acme, "acme-4", "predicted")
	resumed := a.openFeed(t, a.Acme, last)
	a.send(t, a.Acme, shipment("acme-last", nil))
	if got, deads, _ := resumed.untilAll(t, []string{"acme-3", "acme-4", "acme-last"}); sorted(got) != "acme-3,acme-4,acme-last" || len(deads) != 0 {
		t.Errorf("acme's feed resumed after %s: %v and dead letters %v, want acme-3, acme-4, acme-last once each and no dead letter again", last, got, deads)
	}

	// globex sees nothing of acme's: by id, by status, by batchGet, on its feed from the start.
	for _, path := range []string{"/v1/predictions/acme-1", "/v1/events/acme-1", "/v1/events/acme-poison"} {
		if code, out, err := a.call(http.MethodGet, path, a.Globex, ""); err != nil || code != http.StatusNotFound {
			t.Errorf("globex GET %s: %d %v %v", path, code, out, err)
		}
	}
	code, out, err = a.call(http.MethodPost, "/v1/predictions:batchGet", a.Globex, `{"ids":["acme-1","globex-1"]}`)
	if results := fmt.Sprint(out["results"]); err != nil || code != http.StatusOK ||
		!strings.Contains(results, "id:acme-1 status:not_found") || !strings.Contains(results, "status:predicted") {
		t.Errorf("globex batchGet: %d %v %v", code, out, err)
	}
	theirs := a.openFeed(t, a.Globex, "0")
	a.send(t, a.Globex, shipment("globex-last", nil))
	if got, deads, _ := theirs.untilAll(t, []string{"globex-last"}); sorted(got) != "globex-1,globex-2,globex-last" || len(deads) != 0 {
		t.Errorf("globex's feed: %v, dead letters %v (want none)", got, deads)
	}
}

func sorted(ids []string) string {
	return strings.Join(slices.Sorted(slices.Values(ids)), ",")
}

// call answers the status and the JSON body of one request.
func (a API) call(method, path, token, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, a.Base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%d %q: %w", resp.StatusCode, data, err)
	}
	return resp.StatusCode, out, nil
}

// send posts events as one JSON array until it is accepted (a Service may not answer at once).
func (a API) send(t *testing.T, token string, events ...string) {
	t.Helper()
	body := "[" + strings.Join(events, ",") + "]"
	testenv.Eventually(t, a.Wait, "POST events", func() error {
		code, out, err := a.call(http.MethodPost, "/v1/events", token, body)
		if err == nil && code != http.StatusAccepted {
			err = fmt.Errorf("%d %v", code, out)
		}
		return err
	})
}

// shipments returns a function that writes the first raw shipment of the events file under
// another id, changed by edit when it is not nil.
func shipments(t *testing.T, file string) func(id string, edit func(shipment map[string]any)) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var events []struct {
		Shipment json.RawMessage `json:"shipment"`
	}
	if err := json.Unmarshal(data, &events); err != nil || len(events) == 0 {
		t.Fatalf("the sample events %s: %v", file, err)
	}
	return func(id string, edit func(map[string]any)) string {
		var s map[string]any
		if err := json.Unmarshal(events[0].Shipment, &s); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(s)
		}
		out, err := json.Marshal(map[string]any{"id": id, "shipment": s})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
}

type feed struct {
	sc    *bufio.Scanner
	close func()
	// wait bounds each untilAll: a feed that stops delivering fails the test with what it did
	// deliver, instead of holding it until the connection's own deadline.
	wait time.Duration
}

// openFeed follows GET /v1/predictions:stream after last until the test ends or close.
func (a API) openFeed(t *testing.T, token, last string) *feed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var resp *http.Response
	testenv.Eventually(t, a.Wait, "the feed", func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.Base+"/v1/predictions:stream", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Last-Event-ID", last)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return fmt.Errorf("feed: %d %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		return nil
	})
	f := &feed{sc: bufio.NewScanner(resp.Body), close: func() { cancel(); resp.Body.Close() }, wait: a.Wait}
	t.Cleanup(f.close)
	return f
}

// untilAll reads the feed until it has seen a prediction of every id of stop and a dead letter
// of every id of stopDead; it returns the ids of the predictions read and the "id reason" of the
// dead letters, in the feed's order, and the feed's id (position) of the last. Any other event
// fails the test.
func (f *feed) untilAll(t *testing.T, stop []string, stopDead ...string) (ids, deads []string, last string) {
	t.Helper()
	timeout := time.AfterFunc(f.wait, f.close)
	defer timeout.Stop()
	var seq, event string
	for f.sc.Scan() {
		line := f.sc.Text()
		if s, ok := strings.CutPrefix(line, "id: "); ok {
			seq = s
			continue
		}
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var rec struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal([]byte(data), &rec); err != nil || (event != "prediction" && event != "dead_letter") || seq == "" {
			t.Fatalf("feed event %q id %q data %q: %v", event, seq, data, err)
		}
		if event == "prediction" {
			ids = append(ids, rec.ID)
		} else {
			deads = append(deads, rec.ID+" "+rec.Reason)
		}
		last, seq, event = seq, "", ""
		if !slices.ContainsFunc(stop, func(id string) bool { return !slices.Contains(ids, id) }) &&
			!slices.ContainsFunc(stopDead, func(id string) bool {
				return !slices.ContainsFunc(deads, func(d string) bool { return strings.HasPrefix(d, id+" ") })
			}) {
			return ids, deads, last
		}
	}
	t.Fatalf("the feed ended (or gave nothing more for %v) before %v and the dead letters of %v: %v %v (%v)", f.wait, stop, stopDead, ids, deads, f.sc.Err())
	return nil, nil, ""
}
