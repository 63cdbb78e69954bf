package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// Tokens of the clients in these tests: two clients, an operator with the read-all scope, and
// a bare token of the format before tokens named clients.
const (
	acme   = "acme-secret"
	globex = "globex-secret"
	ops    = "ops-secret"
	legacy = "legacy-secret"
)

// clientsPipeline runs ingestion with the tokens above and real workers on the freight model,
// in front of a real nats-server.
func clientsPipeline(t *testing.T, configure ...func(*ingest.Config)) *pipelinetest.Pipeline {
	t.Helper()
	p, _ := clientsPipelineJS(t, configure...)
	return p
}

// clientsPipelineJS is clientsPipeline, with a JetStream client of its server.
func clientsPipelineJS(t *testing.T, configure ...func(*ingest.Config)) (*pipelinetest.Pipeline, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	spec := pipelinetest.Spec("ns1", "clients", 1)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := queue.Provision(context.Background(), js, spec); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	file := fmt.Sprintf("client=acme token=%s\nclient=globex token=%s\nclient=ops token=%s scopes=read-all\n%s\n", acme, globex, ops, legacy)
	if err := os.WriteFile(tokens, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	dial := func() *nats.Conn {
		c, err := nats.Connect(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	return pipelinetest.Start(t, spec, nc, dial, 1, append([]func(*ingest.Config){func(c *ingest.Config) { c.TokensFile = tokens }}, configure...)...), js
}

type reply struct {
	Status int
	Body   map[string]any
}

func call(t *testing.T, p *pipelinetest.Pipeline, method, path, token, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/x-ndjson")
		if strings.HasPrefix(body, "{\"ids\"") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{Status: resp.StatusCode}
	if err := json.Unmarshal(data, &r.Body); err != nil {
		t.Fatalf("%s %s: %q is not JSON: %v", method, path, data, err)
	}
	return r
}

func send(t *testing.T, p *pipelinetest.Pipeline, token string, from, to int) {
	t.Helper()
	if r := call(t, p, http.MethodPost, "/v1/events", token, string(pipelinetest.NDJSON(from, to))); r.Status != http.StatusAccepted {
		t.Fatalf("POST events %d..%d: %+v", from, to-1, r)
	}
}

// TestClientsReadOnlyTheirOwnData: a client reads the status and prediction of its own events,
// and another client's answer 404 with the same body as an id never sent, by GET and by
// batchGet; read-all tokens (and bare tokens, which keep their old powers) read every one.
func TestClientsReadOnlyTheirOwnData(t *testing.T) {
	p := clientsPipeline(t)
	p.Gate.Close()
	send(t, p, acme, 0, 2)   // ev-0, ev-1
	send(t, p, globex, 2, 3) // ev-2

	if r := call(t, p, http.MethodGet, "/v1/events/ev-0", acme, ""); r.Status != 200 || r.Body["status"] != "queued" {
		t.Errorf("acme's queued event, as acme: %+v", r)
	}
	unknown := call(t, p, http.MethodGet, "/v1/events/never-sent", acme, "")
	if unknown.Status != 404 || unknown.Body["error"] == nil {
		t.Fatalf("an unknown id: %+v", unknown)
	}
	hidden := call(t, p, http.MethodGet, "/v1/events/ev-2", acme, "")
	if diff := cmp.Diff(unknown.Body["error"], strings.ReplaceAll(hidden.Body["error"].(string), "ev-2", "never-sent")); hidden.Status != 404 || diff != "" {
		t.Errorf("globex's queued event, as acme: %+v; differs from an unknown id's answer: %s", hidden, diff)
	}

	p.Gate.Open()
	testenv.Eventually(t, 30*time.Second, "acme's and globex's predictions", func() error {
		for _, c := range []struct{ token, id string }{{acme, "ev-0"}, {acme, "ev-1"}, {globex, "ev-2"}} {
			if r := call(t, p, http.MethodGet, "/v1/events/"+c.id, c.token, ""); r.Body["status"] != "predicted" {
				return fmt.Errorf("%s: %v", c.id, r.Body)
			}
		}
		return nil
	})
	own := call(t, p, http.MethodGet, "/v1/events/ev-0", acme, "")
	if pred, _ := own.Body["prediction"].(map[string]any); pred["id"] != "ev-0" || pred["outputs"] == nil {
		t.Errorf("acme's status of ev-0 carries no prediction: %+v", own.Body)
	}
	cases := map[string]struct {
		token, path string
		want        int
	}{
		"own prediction":                   {acme, "/v1/predictions/ev-0", 200},
		"another's prediction":             {acme, "/v1/predictions/ev-2", 404},
		"another's status":                 {globex, "/v1/events/ev-1", 404},
		"another's prediction, other side": {globex, "/v1/predictions/ev-0", 404},
		"read-all, a prediction":           {ops, "/v1/predictions/ev-0", 200},
		"read-all, a status":               {ops, "/v1/events/ev-2", 200},
		"bare token, a prediction":         {legacy, "/v1/predictions/ev-2", 200},
		"unknown token":                    {"nobody", "/v1/predictions/ev-0", 401},
	}
	for name, tc := range cases {
		if r := call(t, p, http.MethodGet, tc.path, tc.token, ""); r.Status != tc.want {
			t.Errorf("%s: %d %v, want %d", name, r.Status, r.Body, tc.want)
		}
	}
	if r := call(t, p, http.MethodGet, "/v1/predictions/ev-2", acme, ""); r.Body["error"] != "no prediction for event ev-2 (yet)" {
		t.Errorf("another's prediction answers %v, not what an absent one answers", r.Body)
	}

	batch := call(t, p, http.MethodPost, "/v1/predictions:batchGet", acme, `{"ids":["ev-1","ev-2","never-sent","ev-0"]}`)
	var statuses []string
	results, _ := batch.Body["results"].([]any)
	for _, r := range results {
		m := r.(map[string]any)
		statuses = append(statuses, fmt.Sprint(m["id"], "=", m["status"]))
		if m["status"] == "not_found" && !strings.Contains(m["error"].(string), "no event "+m["id"].(string)+" is known") {
			t.Errorf("a not_found result without its error: %v", m)
		}
	}
	want := []string{"ev-1=predicted", "ev-2=not_found", "never-sent=not_found", "ev-0=predicted"}
	if diff := cmp.Diff(want, statuses); batch.Status != 200 || diff != "" {
		t.Errorf("batchGet as acme: %d (-want +got):\n%s", batch.Status, diff)
	}
	all := call(t, p, http.MethodPost, "/v1/predictions:batchGet", ops, `{"ids":["ev-1","ev-2"]}`)
	if fmt.Sprint(all.Body["results"]) == "" || strings.Contains(fmt.Sprint(all.Body["results"]), "not_found") {
		t.Errorf("batchGet as read-all: %+v", all)
	}
}

func TestBatchGetRefusesBadBodies(t *testing.T) {
	p := clientsPipeline(t)
	many := `{"ids":["a"` + strings.Repeat(`,"a"`, ingest.MaxBatchGetIDs) + `]}`
	cases := map[string]struct {
		body string
		want map[string]any
	}{
		"too many ids": {many, map[string]any{"error": "ids holds 101 ids, the limit is 100; split the request", "field": "ids"}},
		"no ids":       {`{"ids":[]}`, map[string]any{"error": "ids is empty; name 1 to 100 event ids", "field": "ids"}},
		"a bad id":     {`{"ids":["ok","a*b"]}`, map[string]any{"error": "id has '*' at offset 1; ids use only [A-Za-z0-9_=.-]", "field": "ids", "index": 1.0}},
		"unknown key":  {`{"ids":["a"],"all":true}`, map[string]any{"error": `the body is not {"ids": ["id", ...]}: unknown key "all"`}},
		"two values":   {`{"ids":["a"]} {"ids":["b"]}`, map[string]any{"error": "the body holds more than one JSON value: text follows the object at byte 14"}},
		// encoding/json kept the last of the two lists: which ids were asked for is ambiguous.
		"a key twice": {`{"ids":["a"],"ids":["b"]}`, map[string]any{"error": `the body is not {"ids": ["id", ...]}: the key "ids" is given twice`}},
		"no ids key":  {`{}`, map[string]any{"error": `the body is not {"ids": ["id", ...]}: no key "ids"`, "field": "ids"}},
		"ids null":    {`{"ids":null}`, map[string]any{"error": `the body is not {"ids": ["id", ...]}: invalid JSON at byte 7: found 'n' where '[' should be`}},
		"a number id": {`{"ids":["a",7]}`, map[string]any{"error": `ids[1] is not a string: invalid JSON at byte 12: found '7' where a string should be`, "field": "ids", "index": 1.0}},
		"not JSON":    {`ids=a`, map[string]any{"error": `the body is not {"ids": ["id", ...]}: invalid JSON at byte 0: found 'i' where '{' should be`}},
	}
	for name, tc := range cases {
		r := call(t, p, http.MethodPost, "/v1/predictions:batchGet", acme, tc.body)
		if diff := cmp.Diff(reply{Status: 400, Body: tc.want}, r); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
}

// TestDeadLetteredStatus: an event the inference pool cannot predict (ingestion here takes a
// feature the model does not, so the worker refuses every event) answers dead_lettered with the
// reason, the error and the deliveries, to its client only.
func TestDeadLetteredStatus(t *testing.T) {
	p := clientsPipeline(t, func(c *ingest.Config) { c.Features = append(append([]string(nil), c.Features...), "extra") })
	body := bytes.ReplaceAll(pipelinetest.NDJSON(0, 1), []byte(`"features":{`), []byte(`"features":{"extra":1,`))
	if r := call(t, p, http.MethodPost, "/v1/events", acme, string(body)); r.Status != http.StatusAccepted {
		t.Fatalf("POST: %+v", r)
	}
	var got reply
	testenv.Eventually(t, 30*time.Second, "the dead letter", func() error {
		if got = call(t, p, http.MethodGet, "/v1/events/ev-0", acme, ""); got.Body["status"] != "dead_lettered" {
			return fmt.Errorf("%v", got.Body)
		}
		return nil
	})
	want := reply{Status: 200, Body: map[string]any{"id": "ev-0", "status": "dead_lettered", "deadLetter": map[string]any{
		"reason": "feature_count", "detail": "event has 13 features, the model takes 12", "deliveries": 1.0}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if r := call(t, p, http.MethodGet, "/v1/events/ev-0", globex, ""); r.Status != 404 {
		t.Errorf("acme's dead letter, as globex: %+v", r)
	}
}

// TestRateLimitIsPerClient: each client spends a budget of its own; all tokens of one client
// share theirs.
func TestRateLimitIsPerClient(t *testing.T) {
	stopped := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC) // no refill during the test
	p := clientsPipeline(t, func(c *ingest.Config) {
		c.RateLimit = &pipelineconfig.RateLimit{EventsPerSecond: 1, Burst: 2}
		c.Now = func() time.Time { return stopped }
	})
	send(t, p, acme, 0, 2)
	if r := call(t, p, http.MethodPost, "/v1/events", acme, string(pipelinetest.NDJSON(2, 3))); r.Status != http.StatusTooManyRequests {
		t.Errorf("acme over its budget: %+v", r)
	}
	send(t, p, globex, 3, 5)
}
