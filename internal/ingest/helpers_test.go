package ingest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
)

// testFeatures is the model of every test: three inputs in this order.
var testFeatures = []string{"port_congestion_index", "weather_severity", "distance_km"}

// env is one pipeline's ingestion in front of a real nats-server.
type env struct {
	srv     *natstest.Server
	spec    queue.Spec
	nc      *nats.Conn
	js      jetstream.JetStream
	handler *Handler
	http    *httptest.Server
}

func testSpec(maxMessages int64) queue.Spec {
	return queue.Spec{
		Topology: queue.TopologyFor("ns1", "orders"),
		Limits: queue.Limits{
			MaxMessages:         maxMessages,
			MaxBytes:            64 << 20,
			MaxAge:              time.Hour,
			DuplicateWindow:     10 * time.Minute,
			AckWait:             30 * time.Second,
			MaxDeliver:          5,
			MaxAckPending:       1000,
			PredictionRetention: time.Hour,
		},
	}
}

// connect dials the way `freightcast ingest` does: reconnect for ever, no reconnect buffer.
func connect(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// newEnv starts a server, provisions the pipeline's queue and serves a Handler built from cfg
// (Conn, Topology, Features, MaxBodyBytes and Registry are filled in when unset).
func newEnv(tb testing.TB, spec queue.Spec, cfg Config) *env {
	tb.Helper()
	e := &env{srv: natstest.Start(tb), spec: spec}
	e.nc = connect(tb, e.srv.URL())
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		tb.Fatal(err)
	}
	if _, err := queue.Provision(context.Background(), e.js, spec); err != nil {
		tb.Fatal(err)
	}
	cfg.Conn = e.nc
	cfg.Topology = spec.Topology
	if cfg.Features == nil {
		cfg.Features = testFeatures
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if e.handler, err = New(cfg); err != nil {
		tb.Fatal(err)
	}
	e.http = httptest.NewServer(e.handler)
	tb.Cleanup(e.http.Close)
	return e
}

// answer is what a test compares: status, Retry-After and the decoded body.
type answer struct {
	Status     int
	RetryAfter string
	// Challenge is the WWW-Authenticate header.
	Challenge string
	Body      map[string]any
}

// do sends a request with a client timeout 10 s beyond the handler's own publish deadline: a
// guard against a hang, not a timing check.
func (e *env) do(tb testing.TB, method, path, contentType, token, body string) answer {
	tb.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: e.handler.cfg.PublishTimeout + 10*time.Second}
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After"), Challenge: resp.Header.Get("WWW-Authenticate")}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.Body); err != nil {
			tb.Fatalf("%s %s: answer %q is not JSON: %v", method, path, data, err)
		}
	}
	return a
}

func (e *env) post(tb testing.TB, contentType, body string) answer {
	tb.Helper()
	return e.do(tb, http.MethodPost, "/v1/events", contentType, "", body)
}

// streamMsgs is how many messages the events stream holds.
func (e *env) streamMsgs(tb testing.TB) uint64 {
	tb.Helper()
	s, err := e.js.Stream(context.Background(), e.spec.Stream)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Msgs
}

// streamIDs returns the message ids in the events stream, in stream order.
func (e *env) streamIDs(tb testing.TB) []string {
	tb.Helper()
	var ids []string
	for _, m := range e.streamMessages(tb) {
		ids = append(ids, m.Header.Get(nats.MsgIdHdr))
	}
	return ids
}

// streamMessages returns the messages of the events stream, in stream order.
func (e *env) streamMessages(tb testing.TB) []*jetstream.RawStreamMsg {
	tb.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, e.spec.Stream)
	if err != nil {
		tb.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			tb.Fatalf("message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// ev renders one event with the test model's features.
func ev(id string) string {
	return `{"id":"` + id + `","features":{"port_congestion_index":0.7,"weather_severity":3,"distance_km":1200.5},"shipment":{"from":"NLRTM","to":"SGSIN"}}`
}

func array(ids ...string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = ev(id)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func ndjson(ids ...string) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(ev(id))
		b.WriteByte('\n')
	}
	return b.String()
}
