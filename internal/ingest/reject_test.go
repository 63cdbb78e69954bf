package ingest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/httpauth"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
)

func TestRejectedBodiesPublishNothing(t *testing.T) {
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokensFile, []byte("# clients\ngood-token\n\ndrained-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A frozen clock: buckets never refill, so what the table sees does not depend on timing.
	frozen := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	e := newEnv(t, testSpec(1000), Config{
		MaxBodyBytes: 20000, // above one event's largest shipment (16 KiB)
		TokensFile:   tokensFile,
		RateLimit:    &pipelineconfig.RateLimit{EventsPerSecond: 1, Burst: 10},
		Now:          func() time.Time { return frozen },
	})
	// Use up most of drained-token's bucket: 8 of 10.
	if a := e.do(t, "POST", "/v1/events", ctNDJSON, "drained-token", ndjson("d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8")); a.Status != 202 {
		t.Fatalf("draining: %+v", a)
	}

	idx := func(i float64) any { return i }
	errBody := func(msg string, index any, field string) map[string]any {
		m := map[string]any{"error": msg}
		if index != nil {
			m["index"] = index
		}
		if field != "" {
			m["field"] = field
		}
		return m
	}
	const good = "good-token"
	feats := `"features":{"port_congestion_index":0.7,"weather_severity":3,"distance_km":1200.5}`
	cases := map[string]struct {
		contentType, token, body string
		want                     answer
	}{
		"truncated JSON": {ctJSON, good, `{"id":"a",`,
			answer{Status: 400, Body: errBody("invalid JSON: the input ends where a string should be", idx(0), "")}},
		"not an object": {ctJSON, good, `"hello"`,
			answer{Status: 400, Body: errBody(`invalid JSON at byte 0: found '"' where an event object or an array of them should be`, nil, "")}},
		"empty body": {ctJSON, good, "  ",
			answer{Status: 400, Body: errBody("the body is empty", nil, "")}},
		"empty array": {ctJSON, good, "[ ]",
			answer{Status: 400, Body: errBody("the array holds no events", nil, "")}},
		"blank ndjson": {ctNDJSON, good, "\n\n",
			answer{Status: 400, Body: errBody("the body holds no events", nil, "")}},
		"trailing data": {ctJSON, good, ev("a") + " x",
			answer{Status: 400, Body: errBody(`invalid JSON at byte 135: found 'x' where the end of the body should be`, nil, "")}},
		"id is a number": {ctJSON, good, `{"id":5,` + feats + `}`,
			answer{Status: 400, Body: errBody("must be a string", idx(0), "id")}},
		"empty id": {ctJSON, good, `{"id":"",` + feats + `}`,
			answer{Status: 400, Body: errBody("is empty", idx(0), "id")}},
		"id with a space": {ctJSON, good, `{"id":"a b",` + feats + `}`,
			answer{Status: 400, Body: errBody("has ' ' at offset 1; ids use only [A-Za-z0-9_=.-]", idx(0), "id")}},
		"id with a wildcard": {ctJSON, good, `{"id":"a.>",` + feats + `}`,
			answer{Status: 400, Body: errBody("has '>' at offset 2; ids use only [A-Za-z0-9_=.-]", idx(0), "id")}},
		"id too long": {ctJSON, good, `{"id":"` + strings.Repeat("x", 129) + `",` + feats + `}`,
			answer{Status: 400, Body: errBody("is 129 bytes long, the limit is 128", idx(0), "id")}},
		"id missing": {ctJSON, good, `{` + feats + `}`,
			answer{Status: 400, Body: errBody("missing", idx(0), "id")}},
		"features not an object": {ctJSON, good, `{"id":"a","features":[1,2,3]}`,
			answer{Status: 400, Body: errBody("must be an object of feature name to number", idx(0), "features")}},
		"features missing": {ctJSON, good, `{"id":"a"}`,
			answer{Status: 400, Body: errBody("missing", idx(0), "features")}},
		"a feature missing": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":0.7,"weather_severity":3}}`,
			answer{Status: 400, Body: errBody("missing; the model needs every feature", idx(0), "features.distance_km")}},
		"unknown feature": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":0.7,"colour":1,"weather_severity":3,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("unknown feature; the model has no such input", idx(0), "features.colour")}},
		"feature given twice": {ctJSON, good, `{"id":"a","features":{"distance_km":1,"port_congestion_index":0.7,"weather_severity":3,"distance_km":2}}`,
			answer{Status: 400, Body: errBody("given twice", idx(0), "features.distance_km")}},
		"NaN as a string": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":0.7,"weather_severity":"NaN","distance_km":1}}`,
			answer{Status: 400, Body: errBody("is a string; features are JSON numbers (NaN and Infinity are not accepted)", idx(0), "features.weather_severity")}},
		"number as a string": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":"0.7","weather_severity":3,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("is a string; features are JSON numbers (NaN and Infinity are not accepted)", idx(0), "features.port_congestion_index")}},
		"bare NaN": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":NaN,"weather_severity":3,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("is not a number", idx(0), "features.port_congestion_index")}},
		"null feature": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":null,"weather_severity":3,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("is null; every feature needs a number", idx(0), "features.port_congestion_index")}},
		"number beyond float64": {ctJSON, good, `{"id":"a","features":{"port_congestion_index":1e400,"weather_severity":3,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("1e400 is out of the float64 range", idx(0), "features.port_congestion_index")}},
		// A float64 the model's FP32 input cannot hold would reach it as an infinity: the event
		// could never be predicted, so it is refused here rather than dead-lettered later.
		"feature beyond FP32": {ctJSON, good, `[` + ev("a") + `,{"id":"b","features":{"port_congestion_index":0.7,"weather_severity":3,"distance_km":1e300}}]`,
			answer{Status: 400, Body: errBody("is 1e300, beyond the range of FP32 (±3.4028235e+38), the type of the model's input", idx(1), "features.distance_km")}},
		"feature just beyond FP32": {ctNDJSON, good, `{"id":"a","features":{"port_congestion_index":0.7,"weather_severity":-3.5e38,"distance_km":1}}`,
			answer{Status: 400, Body: errBody("is -3.5e38, beyond the range of FP32 (±3.4028235e+38), the type of the model's input", idx(0), "features.weather_severity")}},
		// JSON is UTF-8: bytes that are not would come back raw in the prediction record.
		"shipment not UTF-8": {ctJSON, good, `{"id":"a",` + feats + `,"shipment":{"ref":"MSKU` + "\xff\xfe" + `"}}`,
			answer{Status: 400, Body: errBody("holds text that is not UTF-8 (byte 116)", idx(0), "shipment")}},
		"shipment key not UTF-8": {ctNDJSON, good, ev("a") + "\n" + `{"id":"b",` + feats + `,"shipment":{"r` + "\xc3" + `":1}}`,
			answer{Status: 400, Body: errBody("holds text that is not UTF-8 (byte 107)", idx(1), "shipment")}},
		"feature name not UTF-8": {ctJSON, good, `{"id":"a","features":{"distance` + "\xe2\x82" + `":1}}`,
			answer{Status: 400, Body: errBody(`invalid JSON at byte 31: found '\xe2' where UTF-8 text should be`, idx(0), "")}},
		"id not UTF-8": {ctJSON, good, `{"id":"a` + "\xff" + `",` + feats + `}`,
			answer{Status: 400, Body: errBody("is not UTF-8 text", idx(0), "id")}},
		"unknown field": {ctJSON, good, `{"id":"a",` + feats + `,"priority":1}`,
			answer{Status: 400, Body: errBody("unknown field; an event has id, features and shipment", idx(0), "priority")}},
		"shipment too large": {ctJSON, good, `{"id":"a",` + feats + `,"shipment":"` + strings.Repeat("x", 16<<10) + `"}`,
			answer{Status: 400, Body: errBody("is 16386 bytes, the limit is 16384", idx(0), "shipment")}},
		"invalid shipment": {ctJSON, good, `{"id":"a",` + feats + `,"shipment":{"to":}}`,
			answer{Status: 400, Body: errBody(`invalid JSON at byte 110: found '}' where a JSON value should be`, idx(0), "")}},
		"second array element bad": {ctJSON, good, `[` + ev("a") + `,{"id":"b"}]`,
			answer{Status: 400, Body: errBody("missing", idx(1), "features")}},
		"third ndjson line bad": {ctNDJSON, good, ev("a") + "\n\n" + `{"id":"c d",` + feats + "}\n",
			answer{Status: 400, Body: errBody("has ' ' at offset 1; ids use only [A-Za-z0-9_=.-]", idx(2), "id")}},
		"two events on one ndjson line": {ctNDJSON, good, ev("a") + ev("b"),
			answer{Status: 400, Body: errBody(`invalid JSON at byte 134: found '{' where the end of the line after the event should be`, idx(0), "")}},
		"too large body": {ctNDJSON, good, manyEvents(150),
			answer{Status: 413, Body: errBody("the body is larger than 20000 bytes; send fewer events per request", nil, "")}},
		"more events than the burst": {ctNDJSON, good, ndjson("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11"),
			answer{Status: 413, Body: errBody("the body holds 11 events, more than the rate limit's burst of 10; send smaller bodies", nil, "")}},
		"text/plain": {"text/plain", good, ev("a"),
			answer{Status: 415, Body: errBody(`Content-Type "text/plain" is not supported; send application/json or application/x-ndjson`, nil, "")}},
		"latin-1": {"application/json; charset=iso-8859-1", good, ev("a"),
			answer{Status: 415, Body: errBody(`charset "iso-8859-1" is not supported, only utf-8; send application/json or application/x-ndjson`, nil, "")}},
		"no content type": {"", good, ev("a"),
			answer{Status: 415, Body: errBody("Content-Type is missing; send application/json or application/x-ndjson", nil, "")}},
		"no token": {ctJSON, "", ev("a"),
			answer{Status: 401, Challenge: `Bearer realm="freightcast"`, Body: errBody("missing or unknown bearer token", nil, "")}},
		"wrong token": {ctJSON, "good-token-", ev("a"),
			answer{Status: 401, Challenge: `Bearer realm="freightcast"`, Body: errBody("missing or unknown bearer token", nil, "")}},
		"rate limited": {ctNDJSON, "drained-token", ndjson("r1", "r2", "r3"),
			answer{Status: 429, RetryAfter: "1", Body: errBody("rate limit of 1 events/s for the pipeline exceeded", nil, "")}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := e.streamMsgs(t)
			got := e.do(t, "POST", "/v1/events", tc.contentType, tc.token, tc.body)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if after := e.streamMsgs(t); after != before {
				t.Errorf("a refused body changed the stream from %d to %d messages", before, after)
			}
		})
	}
}

// manyEvents is an NDJSON body of n distinct events.
func manyEvents(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "many-" + strconv.Itoa(i)
	}
	return ndjson(ids...)
}

func TestTokensFileIsReread(t *testing.T) {
	tokensFile := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokensFile, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	e := newEnv(t, testSpec(1000), Config{TokensFile: tokensFile, Now: func() time.Time { return now }})
	if a := e.do(t, "POST", "/v1/events", ctJSON, "old", ev("t1")); a.Status != 202 {
		t.Fatalf("old token: %+v", a)
	}
	// A Secret update swaps the file; mtime and size change.
	if err := os.WriteFile(tokensFile, []byte("rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tokensFile, now.Add(time.Minute), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * httpauth.CheckInterval)
	if a := e.do(t, "POST", "/v1/events", ctJSON, "old", ev("t2")); a.Status != 401 {
		t.Errorf("old token after rotation: %+v, want 401", a)
	}
	if a := e.do(t, "POST", "/v1/events", ctJSON, "rotated", ev("t3")); a.Status != 202 {
		t.Errorf("new token after rotation: %+v, want 202", a)
	}
	if a := e.do(t, "GET", "/v1/predictions/t3", "", "", ""); a.Status != 401 || a.Challenge == "" {
		t.Errorf("prediction without a token: %+v, want 401 with a Bearer challenge", a)
	}
}

// TestRateLimitIsSharedWithoutTokens: without authentication there is no client to tell apart
// (an address says little behind a Service), so every request draws on the pipeline's one budget.
func TestRateLimitIsSharedWithoutTokens(t *testing.T) {
	frozen := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	e := newEnv(t, testSpec(1000), Config{
		RateLimit: &pipelineconfig.RateLimit{EventsPerSecond: 2, Burst: 3},
		Now:       func() time.Time { return frozen },
	})
	post := func(remoteAddr, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", ctNDJSON)
		req.RemoteAddr = remoteAddr
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		return rec.Code, rec.Header().Get("Retry-After")
	}
	type result struct {
		Code       int
		RetryAfter string
	}
	var got []result
	for _, step := range []struct{ addr, body string }{
		{"10.0.0.1:4000", ndjson("a1", "a2", "a3")},
		{"10.0.0.1:4001", ndjson("a4")},
		{"10.0.0.2:4000", ndjson("b1")}, // another address: the same budget
	} {
		code, retry := post(step.addr, step.body)
		got = append(got, result{code, retry})
	}
	// The next event is half a second away at 2/s; Retry-After rounds up to whole seconds.
	want := []result{{202, ""}, {429, "1"}, {429, "1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}

// TestAFullQueueDoesNotChargeTheRateLimit: a 503 for a full stream tells the client to retry
// later, so the events it did not store must not use up the budget the retry needs.
func TestAFullQueueDoesNotChargeTheRateLimit(t *testing.T) {
	frozen := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	e := newEnv(t, testSpec(3), Config{
		RateLimit: &pipelineconfig.RateLimit{EventsPerSecond: 1, Burst: 10},
		Now:       func() time.Time { return frozen },
	})
	if a := e.post(t, ctJSON, array("a1", "a2")); a.Status != 202 {
		t.Fatalf("filling the stream: %+v", a)
	}
	// 8 tokens left. The first body stores one event and is refused the rest; then the
	// stream is full, and each later body stores nothing. Charged in full, the third body
	// would find 8-4-4 = 0 tokens and get 429.
	for i, want := range []float64{1, 0, 0} {
		a := e.post(t, ctJSON, array("b1", "b2", "b3", "b4"))
		if a.Status != http.StatusServiceUnavailable {
			t.Fatalf("body %d into a full stream: %+v, want 503", i, a)
		}
		if stored := a.Body["accepted"]; want > 0 && stored != want {
			t.Fatalf("body %d: accepted %v, want %v", i, stored, want)
		}
	}
	// Stored or duplicate: b1 three times, so 8-3 = 5 tokens are left for a body of 5, which
	// is refused for the full queue, not for the rate.
	if a := e.post(t, ctNDJSON, ndjson("c1", "c2", "c3", "c4", "c5")); a.Status != http.StatusServiceUnavailable {
		t.Fatalf("after the refusals: %+v, want 503 (the queue is full), not 429", a)
	}
}
