package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/ingest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

// sse is one server-sent event (or comment) read from a feed.
type sse struct {
	ID, Event, Data, Comment string
}

// feedReader follows GET /v1/predictions:stream.
type feedReader struct {
	resp   *http.Response
	sc     *bufio.Scanner
	cancel context.CancelFunc
}

func openFeed(t *testing.T, p *pipelinetest.Pipeline, token, lastEventID string) (*feedReader, reply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v1/predictions:stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer cancel()
		defer resp.Body.Close()
		var r reply
		r.Status = resp.StatusCode
		if err := json.NewDecoder(resp.Body).Decode(&r.Body); err != nil {
			t.Fatalf("%d answer is not JSON: %v", resp.StatusCode, err)
		}
		return nil, r
	}
	f := &feedReader{resp: resp, sc: bufio.NewScanner(resp.Body), cancel: cancel}
	t.Cleanup(f.Close)
	return f, reply{Status: 200}
}

func (f *feedReader) Close() {
	f.cancel()
	f.resp.Body.Close()
}

// next reads the next event or comment; ok is false at the end of the feed.
func (f *feedReader) next(t *testing.T) (sse, bool) {
	t.Helper()
	var e sse
	for f.sc.Scan() {
		line := f.sc.Text()
		switch {
		case line == "":
			if e != (sse{}) {
				return e, true
			}
		case strings.HasPrefix(line, ":"):
			e.Comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "id: "):
			e.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			e.Event = line[7:]
		case strings.HasPrefix(line, "data: "):
			e.Data += line[6:]
		}
	}
	return e, false
}

// until reads predictions until the one of id stop, and returns the event ids and the stream
// sequence of each.
func (f *feedReader) until(t *testing.T, stop string) (ids []string, seqs []string) {
	t.Helper()
	for {
		e, ok := f.next(t)
		if !ok {
			t.Fatalf("the feed ended before %s; read %v", stop, ids)
		}
		if e.Event != "prediction" {
			continue
		}
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(e.Data), &rec); err != nil {
			t.Fatalf("data %q: %v", e.Data, err)
		}
		ids, seqs = append(ids, rec.ID), append(seqs, e.ID)
		if rec.ID == stop {
			return ids, seqs
		}
	}
}

func predicted(t *testing.T, p *pipelinetest.Pipeline, token string, ids ...string) {
	t.Helper()
	reach(t, p, token, "predicted", ids...)
}

func deadLettered(t *testing.T, p *pipelinetest.Pipeline, token string, ids ...string) {
	t.Helper()
	reach(t, p, token, "dead_lettered", ids...)
}

// reach waits until every event of ids has the status want.
func reach(t *testing.T, p *pipelinetest.Pipeline, token, want string, ids ...string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, fmt.Sprint(want, " ", ids), func() error {
		for _, id := range ids {
			if r := call(t, p, http.MethodGet, "/v1/events/"+id, token, ""); r.Body["status"] != want {
				return fmt.Errorf("%s: %v", id, r.Body)
			}
		}
		return nil
	})
}

// TestFeedShowsEachClientItsOwnAndResumes: a client's feed carries its predictions only, in
// order, each once; a reader that reconnects with Last-Event-ID gets the rest and nothing twice;
// another client's Last-Event-ID shows it nothing of the first client's.
func TestFeedShowsEachClientItsOwnAndResumes(t *testing.T) {
	p := clientsPipeline(t)
	send(t, p, globex, 0, 2) // ev-0, ev-1
	predicted(t, p, globex, "ev-0", "ev-1")
	send(t, p, acme, 2, 5) // ev-2 … ev-4
	predicted(t, p, acme, "ev-2", "ev-3", "ev-4")
	send(t, p, globex, 5, 6)
	predicted(t, p, globex, "ev-5")
	send(t, p, acme, 6, 7) // acme's last: every earlier one is before it in the feed
	predicted(t, p, acme, "ev-6")

	f, _ := openFeed(t, p, acme, "0")
	ids, seqs := f.until(t, "ev-6")
	if diff := cmp.Diff([]string{"ev-2", "ev-3", "ev-4", "ev-6"}, sortedCopy(ids)); diff != "" {
		t.Errorf("acme's feed (-want +got):\n%s", diff)
	}
	f.Close()

	// Resume after the second prediction: the rest, once each.
	f, _ = openFeed(t, p, acme, seqs[1])
	rest, _ := f.until(t, "ev-6")
	if diff := cmp.Diff(ids[2:], rest); diff != "" {
		t.Errorf("resumed after %s (-want +got):\n%s", seqs[1], diff)
	}
	f.Close()

	// globex resuming from just before acme's first prediction sees its own only.
	first := predSeq(t, seqs[0])
	f, _ = openFeed(t, p, globex, strconv.FormatUint(first-1, 10))
	send(t, p, globex, 7, 8)
	theirs, _ := f.until(t, "ev-7")
	if diff := cmp.Diff([]string{"ev-5", "ev-7"}, theirs); diff != "" {
		t.Errorf("globex's feed from acme's sequence (-want +got):\n%s", diff)
	}
	f.Close()

	// read-all sees everyone's; a new reader without Last-Event-ID starts with what comes next.
	f, _ = openFeed(t, p, ops, "")
	send(t, p, acme, 8, 9)
	if got, _ := f.until(t, "ev-8"); !slices.Equal(got, []string{"ev-8"}) {
		t.Errorf("a new read-all reader got %v, want only what came after it", got)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func TestFeedRefusals(t *testing.T) {
	p := clientsPipeline(t, func(c *ingest.Config) { c.FeedReaders = 1 })
	cases := map[string]struct {
		token, last string
		want        reply
	}{
		"not a number": {acme, "abc", reply{Status: 400, Body: map[string]any{"field": "Last-Event-ID",
			"error": `Last-Event-ID "abc" is not an id this feed sent: its prediction position "abc" is not a sequence number (want PRED.DEAD, two of them)`}}},
		"no dead-letter position": {acme, "12.", reply{Status: 400, Body: map[string]any{"field": "Last-Event-ID",
			"error": `Last-Event-ID "12." is not an id this feed sent: its dead-letter position "" is not a sequence number (want PRED.DEAD, two of them)`}}},
		"three parts": {acme, "1.2.3", reply{Status: 400, Body: map[string]any{"field": "Last-Event-ID",
			"error": `Last-Event-ID "1.2.3" is not an id this feed sent: its dead-letter position "2.3" is not a sequence number (want PRED.DEAD, two of them)`}}},
		"out of range": {acme, "18446744073709551615", reply{Status: 400, Body: map[string]any{"field": "Last-Event-ID",
			"error": `Last-Event-ID "18446744073709551615" is out of range: its prediction position 18446744073709551615 does not fit a stream sequence`}}},
		"dead-letter position out of range": {acme, "1.99999999999999999999", reply{Status: 400, Body: map[string]any{"field": "Last-Event-ID",
			"error": `Last-Event-ID "1.99999999999999999999" is out of range: its dead-letter position 99999999999999999999 does not fit a stream sequence`}}},
		"no token": {"nobody", "", reply{Status: 401, Body: map[string]any{"error": "missing or unknown bearer token"}}},
	}
	for name, tc := range cases {
		if _, got := openFeed(t, p, tc.token, tc.last); !cmp.Equal(tc.want, got) {
			t.Errorf("%s: %s", name, cmp.Diff(tc.want, got))
		}
	}
	first, _ := openFeed(t, p, acme, "")
	if first == nil {
		t.Fatal("the first reader was refused")
	}
	if _, got := openFeed(t, p, globex, ""); got.Status != 503 || !strings.Contains(fmt.Sprint(got.Body["error"]), "as many feed readers as it may (1)") {
		t.Errorf("a second reader beyond the bound: %+v", got)
	}
	first.Close()
	testenv.Eventually(t, 10*time.Second, "the slot freed", func() error {
		f, got := openFeed(t, p, globex, "")
		if f == nil {
			return fmt.Errorf("%+v", got)
		}
		f.Close()
		return nil
	})
}

// TestFeedClosesAReaderTooFarBehind: a reader more predictions behind than the feed keeps one
// for gets an error event naming why and where to resume, and the feed ends.
func TestFeedClosesAReaderTooFarBehind(t *testing.T) {
	p := clientsPipeline(t, func(c *ingest.Config) { c.FeedMaxLag = 2 })
	send(t, p, acme, 0, 5)
	predicted(t, p, acme, "ev-0", "ev-1", "ev-2", "ev-3", "ev-4")
	f, _ := openFeed(t, p, acme, "0")
	var last sse
	for {
		e, ok := f.next(t)
		if !ok {
			break
		}
		last = e
	}
	if last.Event != "error" || !strings.Contains(last.Data, "this reader is 4 predictions behind, more than the feed keeps a reader for (2); reconnect with Last-Event-ID 0.0 to resume") {
		t.Errorf("last event %+v, want the error naming the lag", last)
	}
}

// TestFeedOutlivesTheServersTimeouts: heartbeats keep an idle feed alive past the server's read
// and write timeouts, and a prediction still arrives after them.
func TestFeedOutlivesTheServersTimeouts(t *testing.T) {
	p := clientsPipeline(t, func(c *ingest.Config) { c.FeedHeartbeat = 20 * time.Millisecond })
	srv := httptest.NewUnstartedServer(p.Handler)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 50*time.Millisecond, 50*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	f, _ := openFeed(t, p, acme, "")
	beats := 0
	for beats < 10 { // ten heartbeats: past both timeouts
		e, ok := f.next(t)
		if !ok {
			t.Fatal("the feed ended")
		}
		if e.Comment == "heartbeat" {
			beats++
		}
	}
	send(t, p, acme, 0, 1)
	if got, _ := f.until(t, "ev-0"); !slices.Equal(got, []string{"ev-0"}) {
		t.Errorf("after the heartbeats: %v", got)
	}
}

// TestFeedTellsAReaderWhatItMissed: a reader resuming after predictions the store no longer
// holds (removed by retention, here purged the same way) gets a gap event naming them before
// the rest; one resuming with an id beyond anything the store holds (the store created anew)
// is told so and gets every retained prediction, not silence until the new store catches up.
func TestFeedTellsAReaderWhatItMissed(t *testing.T) {
	p, js := clientsPipelineJS(t)
	send(t, p, acme, 0, 4)
	predicted(t, p, acme, "ev-0", "ev-1", "ev-2", "ev-3")
	f, _ := openFeed(t, p, acme, "0")
	ids, seqs := f.until(t, "ev-3")
	f.Close()
	order := map[string]string{}
	for i, id := range ids {
		order[seqs[i]] = id
	}
	first, third := predSeq(t, seqs[0]), predSeq(t, seqs[2])
	stream, err := js.Stream(context.Background(), p.Spec.BucketStream())
	if err != nil {
		t.Fatal(err)
	}
	// Retention takes the oldest first: the first two predictions go.
	if err := stream.Purge(context.Background(), jetstream.WithPurgeSequence(third)); err != nil {
		t.Fatal(err)
	}

	f, _ = openFeed(t, p, acme, seqs[0])
	gap := nextEvent(t, f)
	want := fmt.Sprintf(`{"message":"the predictions stored after %d up to %d left the store before this reader came back (spec.output.predictionRetention): those of this client among them are not on the feed; it goes on with the oldest retained, %d","of":"prediction","from":%d,"to":%d}`,
		first, third-1, third, first+1, third-1)
	if gap.Event != "gap" || gap.ID != "" || gap.Data != want {
		t.Errorf("resuming after a removed prediction: %+v, want a gap event %s", gap, want)
	}
	if rest, _ := f.until(t, "ev-3"); !slices.Equal(rest, []string{order[seqs[2]], order[seqs[3]]}) {
		t.Errorf("after the gap: %v", rest)
	}
	f.Close()

	// Resuming after the newest prediction, or from 0, is no gap.
	for i, last := range []string{seqs[3], "0"} {
		f, _ = openFeed(t, p, acme, last)
		send(t, p, acme, 4+i, 5+i)
		if e := nextEvent(t, f); e.Event != "prediction" {
			t.Errorf("resuming after %s: %+v first, want a prediction", last, e)
		}
		f.Close()
	}

	// An id from a store that was created anew.
	f, _ = openFeed(t, p, acme, "999999")
	if gap := nextEvent(t, f); gap.Event != "gap" || !strings.Contains(gap.Data, `Last-Event-ID's prediction position 999999 is beyond the newest the store has held`) ||
		!strings.Contains(gap.Data, `"from":1000000}`) {
		t.Errorf("resuming after a sequence the store never gave: %+v", gap)
	}
	if e := nextEvent(t, f); e.Event != "prediction" || predSeq(t, e.ID) != third {
		t.Errorf("after a store created anew, the feed starts with %+v, want the oldest retained (%d)", e, third)
	}
}

// nextEvent is the feed's next event, past comments.
func nextEvent(t *testing.T, f *feedReader) sse {
	t.Helper()
	for {
		e, ok := f.next(t)
		if !ok {
			t.Fatal("the feed ended")
		}
		if e.Comment == "" {
			return e
		}
	}
}

// entry is a prediction or dead letter read from a feed: its kind, the event's id, and the
// feed's id (position) of it.
type entry struct {
	Kind, ID, At string
	Data         string
}

// entries reads the feed's predictions and dead letters until done says it has them all.
func (f *feedReader) entries(t *testing.T, done func([]entry) bool) []entry {
	t.Helper()
	var got []entry
	for !done(got) {
		e, ok := f.next(t)
		if !ok {
			t.Fatalf("the feed ended; read %v", got)
		}
		if e.Event != "prediction" && e.Event != "dead_letter" {
			continue
		}
		var rec struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(e.Data), &rec); err != nil {
			t.Fatalf("data %q: %v", e.Data, err)
		}
		got = append(got, entry{Kind: e.Event, ID: rec.ID, At: e.ID, Data: e.Data})
	}
	return got
}

// upTo is done once the feed has given a prediction of every id of preds and a dead letter of
// every id of deads.
func upTo(preds, deads []string) func([]entry) bool {
	return func(got []entry) bool {
		for kind, ids := range map[string][]string{"prediction": preds, "dead_letter": deads} {
			for _, id := range ids {
				if !slices.ContainsFunc(got, func(e entry) bool { return e.Kind == kind && e.ID == id }) {
					return false
				}
			}
		}
		return true
	}
}

// ofKind lists, in the feed's order, the ids of the entries of one kind.
func ofKind(es []entry, kind string) []string {
	var ids []string
	for _, e := range es {
		if e.Kind == kind {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

var severity = regexp.MustCompile(`"weather_severity":[^,}]*`)

// poison sends events from to to-1 with a weather severity that makes the model's output NaN:
// the inference pool dead-letters each (non_finite).
func poison(t *testing.T, p *pipelinetest.Pipeline, token string, from, to int) {
	t.Helper()
	body := severity.ReplaceAllString(string(pipelinetest.NDJSON(from, to)), `"weather_severity":3e38`)
	if r := call(t, p, http.MethodPost, "/v1/events", token, body); r.Status != http.StatusAccepted {
		t.Fatalf("POST poisoned events %d..%d: %+v", from, to-1, r)
	}
}

// TestFeedCarriesTheClientsDeadLetters: a dead-lettered event reaches its own client's feed
// once, with the status endpoint's reason and detail, and no other client's; read-all sees
// every client's, in the order they were dead-lettered.
func TestFeedCarriesTheClientsDeadLetters(t *testing.T) {
	p := clientsPipeline(t)
	feeds := map[string]*feedReader{}
	for _, token := range []string{acme, globex, ops} {
		feeds[token], _ = openFeed(t, p, token, "")
	}
	send(t, p, acme, 0, 1)
	poison(t, p, acme, 1, 2)
	deadLettered(t, p, acme, "ev-1")
	poison(t, p, globex, 2, 3)
	deadLettered(t, p, globex, "ev-2")
	send(t, p, acme, 3, 4)
	send(t, p, globex, 4, 5)
	predicted(t, p, acme, "ev-0", "ev-3")
	predicted(t, p, globex, "ev-4")

	acmes := feeds[acme].entries(t, upTo([]string{"ev-0", "ev-3"}, []string{"ev-1"}))
	// A last prediction after them: anything read before it that is not acme's, or twice, fails.
	send(t, p, acme, 5, 6)
	acmes = append(acmes, feeds[acme].entries(t, upTo([]string{"ev-5"}, nil))...)
	if diff := cmp.Diff([]string{"ev-0", "ev-3", "ev-5"}, ofKind(acmes, "prediction")); diff != "" {
		t.Errorf("acme's predictions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ev-1"}, ofKind(acmes, "dead_letter")); diff != "" {
		t.Errorf("acme's dead letters (-want +got):\n%s", diff)
	}
	var dl map[string]any
	for _, e := range acmes {
		if e.Kind == "dead_letter" {
			_ = json.Unmarshal([]byte(e.Data), &dl)
		}
	}
	status := call(t, p, http.MethodGet, "/v1/events/ev-1", acme, "").Body["deadLetter"].(map[string]any)
	status["id"] = "ev-1"
	if diff := cmp.Diff(status, dl); diff != "" || dl["reason"] != "non_finite" {
		t.Errorf("acme's dead letter on the feed differs from its status (-status +feed):\n%s", diff)
	}

	send(t, p, globex, 6, 7)
	globexes := feeds[globex].entries(t, upTo([]string{"ev-4", "ev-6"}, []string{"ev-2"}))
	if diff := cmp.Diff([]entry{{Kind: "dead_letter", ID: "ev-2"}, {Kind: "prediction", ID: "ev-4"}, {Kind: "prediction", ID: "ev-6"}}, globexes,
		cmpopts.IgnoreFields(entry{}, "At", "Data")); diff != "" {
		t.Errorf("globex's feed (-want +got):\n%s", diff)
	}
	all := feeds[ops].entries(t, upTo([]string{"ev-6"}, []string{"ev-1", "ev-2"}))
	if diff := cmp.Diff([]string{"ev-1", "ev-2"}, ofKind(all, "dead_letter")); diff != "" {
		t.Errorf("the read-all feed's dead letters (-want +got):\n%s", diff)
	}
}

// TestFeedResumesBothKindsExactly: a reader that reconnects with the id of any entry it read
// gets, of each kind, exactly the entries that came after it; one that holds an id of the older
// form (a prediction sequence alone) resumes its predictions exactly and gets the dead letters
// stored from its reconnection on; dead letters that left the store are named by a gap event.
func TestFeedResumesBothKindsExactly(t *testing.T) {
	p, js := clientsPipelineJS(t)
	f, _ := openFeed(t, p, acme, "")
	send(t, p, acme, 0, 1)
	first := f.entries(t, upTo([]string{"ev-0"}, nil))
	f.Close()

	// Disconnected: predictions and dead letters of acme's, and globex's, go by.
	send(t, p, acme, 1, 2)
	poison(t, p, acme, 2, 3)
	poison(t, p, globex, 3, 4)
	send(t, p, acme, 4, 5)
	poison(t, p, acme, 5, 6)
	predicted(t, p, acme, "ev-1", "ev-4")
	deadLettered(t, p, acme, "ev-2", "ev-5")
	deadLettered(t, p, globex, "ev-3")

	f, _ = openFeed(t, p, acme, first[len(first)-1].At)
	read := f.entries(t, upTo([]string{"ev-1", "ev-4"}, []string{"ev-2", "ev-5"}))
	send(t, p, acme, 6, 7)
	read = append(read, f.entries(t, upTo([]string{"ev-6"}, nil))...)
	f.Close()
	if diff := cmp.Diff([]string{"ev-1", "ev-4", "ev-6"}, ofKind(read, "prediction")); diff != "" {
		t.Errorf("predictions resumed after %s (-want +got):\n%s", first[len(first)-1].At, diff)
	}
	if diff := cmp.Diff([]string{"ev-2", "ev-5"}, ofKind(read, "dead_letter")); diff != "" {
		t.Errorf("dead letters resumed after %s (-want +got):\n%s", first[len(first)-1].At, diff)
	}

	// From the id of each entry read: of each kind, what came after it, once each.
	for i, e := range read[:len(read)-1] {
		f, _ = openFeed(t, p, acme, e.At)
		rest := read[i+1:]
		got := f.entries(t, upTo(ofKind(rest, "prediction"), ofKind(rest, "dead_letter")))
		f.Close()
		for _, kind := range []string{"prediction", "dead_letter"} {
			if diff := cmp.Diff(ofKind(rest, kind), ofKind(got, kind)); diff != "" {
				t.Errorf("%ss resumed after %s (%s %s) (-want +got):\n%s", kind, e.At, e.Kind, e.ID, diff)
			}
		}
	}

	// The older form: the predictions after it, exactly; dead letters from now on.
	pred, _, _ := strings.Cut(first[len(first)-1].At, ".")
	f, _ = openFeed(t, p, acme, pred)
	poison(t, p, acme, 7, 8)
	deadLettered(t, p, acme, "ev-7")
	send(t, p, acme, 8, 9)
	predicted(t, p, acme, "ev-8")
	old := f.entries(t, upTo([]string{"ev-8"}, []string{"ev-7"}))
	f.Close()
	if diff := cmp.Diff([]string{"ev-1", "ev-4", "ev-6", "ev-8"}, ofKind(old, "prediction")); diff != "" {
		t.Errorf("predictions resumed after the older form %s (-want +got):\n%s", pred, diff)
	}
	if diff := cmp.Diff([]string{"ev-7"}, ofKind(old, "dead_letter")); diff != "" {
		t.Errorf("dead letters resumed after the older form %s (-want +got):\n%s", pred, diff)
	}
	// "0" is everything retained, of both kinds.
	f, _ = openFeed(t, p, acme, "0")
	if all := f.entries(t, upTo([]string{"ev-8"}, []string{"ev-7"})); !slices.Equal(ofKind(all, "dead_letter"), []string{"ev-2", "ev-5", "ev-7"}) {
		t.Errorf("from 0: dead letters %v", ofKind(all, "dead_letter"))
	}
	f.Close()

	// Retention took the dead letters up to ev-5's: a reader after ev-2's is told.
	var afterTwo, five string
	for _, e := range read {
		if e.Kind == "dead_letter" {
			afterTwo, five = five, e.At
		}
	}
	_, fiveSeq, _ := strings.Cut(five, ".")
	seq, _ := strconv.ParseUint(fiveSeq, 10, 64)
	out, err := js.Stream(context.Background(), p.Spec.OutputStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Purge(context.Background(), jetstream.WithPurgeSequence(seq+1)); err != nil {
		t.Fatal(err)
	}
	f, _ = openFeed(t, p, acme, afterTwo)
	_, twoSeq, _ := strings.Cut(afterTwo, ".")
	gap := nextEvent(t, f)
	want := fmt.Sprintf(`"of":"dead_letter","from":%d,"to":%d}`, mustUint(t, twoSeq)+1, seq)
	if gap.Event != "gap" || !strings.HasSuffix(gap.Data, want) || !strings.Contains(gap.Data, "the dead letters stored after "+twoSeq) {
		t.Errorf("resuming after removed dead letters: %+v, want a gap ending %s", gap, want)
	}
	if rest := f.entries(t, upTo(nil, []string{"ev-7"})); !slices.Equal(ofKind(rest, "dead_letter"), []string{"ev-7"}) {
		t.Errorf("after the gap: %v", rest)
	}
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// predSeq is the prediction position of a feed id.
func predSeq(t *testing.T, id string) uint64 {
	t.Helper()
	pred, _, _ := strings.Cut(id, ".")
	return mustUint(t, pred)
}
