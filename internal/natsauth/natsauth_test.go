package natsauth_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/natsauth"
	"github.com/freightcast/freightcast/internal/queue"
	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/pipelinetest"
)

// install is a server in decentralized-auth mode and the credentials files of its users.
type install struct {
	keys *natsauth.Keys
	srv  *natstest.Server
	dir  string
}

func newInstall(t *testing.T, storeLimit int64) *install {
	t.Helper()
	keys, err := natsauth.New(storeLimit)
	if err != nil {
		t.Fatal(err)
	}
	in := &install{keys: keys, dir: t.TempDir()}
	in.srv = natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		if err := keys.ServerOptions(o); err != nil {
			t.Fatal(err)
		}
	}))
	return in
}

// creds writes a credentials file as a mounted Secret key would hold it.
func (in *install) creds(t *testing.T, name string, issue func() ([]byte, error)) queue.Credentials {
	t.Helper()
	data, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(in.dir, name+".creds")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return queue.Credentials{CredsFile: path}
}

// operator connects as the Freightcast operator does.
func (in *install) operator(t *testing.T) jetstream.JetStream {
	t.Helper()
	creds := in.creds(t, "operator", in.keys.IssueOperator)
	opts, err := creds.Options()
	if err != nil {
		t.Fatal(err)
	}
	c := queue.NewConnector("freightcast-operator", append(opts, nats.CustomInboxPrefix(queue.OperatorInboxPrefix))...)
	t.Cleanup(c.Close)
	js, err := c.JetStream(in.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// violations collects the permission violations the server reports on a connection.
type violations struct {
	mu   sync.Mutex
	errs []error
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err)
}

// about reports whether the server refused something on subject.
func (v *violations) about(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, err := range v.errs {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `"`+subject+`"`) {
			return true
		}
	}
	return false
}

// refused publishes to subject on nc and reports whether the server refused it.
func (v *violations) refused(nc *nats.Conn, subject string) bool {
	_ = nc.Publish(subject, []byte(`{}`))
	deadline := time.Now().Add(5 * time.Second)
	for !v.about(subject) && time.Now().Before(deadline) {
		_ = nc.FlushTimeout(time.Second)
	}
	return v.about(subject)
}

// TestOnePipelinesCredentialsCannotReachAnother runs pipeline A end to end with A's credentials
// only, then tries, with the same credentials, everything that would read, write or disturb
// pipeline B: each is refused, and B's events stay as they were.
func TestOnePipelinesCredentialsCannotReachAnother(t *testing.T) {
	in := newInstall(t, 1<<30)
	js := in.operator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b := pipelinetest.Spec("freight", "lanes", 1), pipelinetest.Spec("rivals", "lanes", 1)
	for _, s := range []queue.Spec{a, b} {
		if _, err := queue.Provision(ctx, js, s); err != nil {
			t.Fatalf("the operator provisioning %s: %v", s.Stream, err)
		}
	}
	credsA := in.creds(t, "a", func() ([]byte, error) { return in.keys.IssuePipeline("freight", "lanes") })
	credsB := in.creds(t, "b", func() ([]byte, error) { return in.keys.IssuePipeline("rivals", "lanes") })

	// A's credentials are enough for A's whole data path.
	p := pipelinetest.Start(t, a, pipelinetest.Dial(t, in.srv.URL(), a.Topology, credsA),
		func() *nats.Conn { return pipelinetest.Dial(t, in.srv.URL(), a.Topology, credsA) }, 2)
	const n = 300
	pipelinetest.Send(ctx, t, p.URL, 0, n)
	admin := in.creds(t, "admin", func() ([]byte, error) {
		return in.keys.Issue("test-admin", queue.Permissions{Publish: []string{">"}, Subscribe: []string{">"}})
	})
	_, adminJS := natstest.Connect(t, in.srv.URL(), nats.UserCredentials(admin.CredsFile))
	p.CheckExactlyOnce(t, adminJS, n, time.Minute)
	resp, err := http.Get(p.URL + "/v1/predictions/" + pipelinetest.ID(7))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), pipelinetest.ID(7)) {
		t.Fatalf("ingestion reading a prediction with A's credentials: %d %s", resp.StatusCode, body)
	}

	// The status API and the push feed work with A's credentials (message reads of A's
	// streams, ordered consumers on A's bucket and on the dead letters of A's output stream).
	dl := nats.NewMsg(a.DeadLetterKeySubject("ev-dead"))
	dl.Header.Set(queue.HeaderDeadLetterReason, "non_finite")
	if _, err := adminJS.PublishMsg(ctx, dl); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(p.URL + "/v1/events/" + pipelinetest.ID(7))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"predicted"`) {
		t.Fatalf("ingestion reading a status with A's credentials: %d %s", resp.StatusCode, body)
	}
	feedReq, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v1/predictions:stream", nil)
	feedReq.Header.Set("Last-Event-ID", "0")
	feed, err := http.DefaultClient.Do(feedReq)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(feed.Body)
	var prediction, deadLetter bool
	for event := ""; !(prediction && deadLetter) && sc.Scan(); {
		line := sc.Text()
		if e, ok := strings.CutPrefix(line, "event: "); ok {
			event = e
		}
		prediction = prediction || event == "prediction" && strings.Contains(line, `"id":"ev-`)
		deadLetter = deadLetter || event == "dead_letter" && strings.Contains(line, `"id":"ev-dead","reason":"non_finite"`)
	}
	feed.Body.Close()
	if feed.StatusCode != http.StatusOK || !prediction || !deadLetter {
		t.Fatalf("the feed with A's credentials: %d, a prediction %v, the dead letter %v (%v)", feed.StatusCode, prediction, deadLetter, sc.Err())
	}

	// A's ingestion pods may hear each other, to share A's rate limit.
	peers := pipelinetest.Dial(t, in.srv.URL(), a.Topology, credsA)
	heard, err := peers.SubscribeSync(a.PeersSubject())
	if err != nil {
		t.Fatal(err)
	}
	if err := peers.Publish(a.PeersSubject(), []byte("alive 0a")); err != nil {
		t.Fatal(err)
	}
	if _, err := heard.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("A's heartbeat on %s with A's credentials: %v", a.PeersSubject(), err)
	}

	// B has events of its own, published with B's credentials.
	ncB := pipelinetest.Dial(t, in.srv.URL(), b.Topology, credsB)
	jsB, _ := jetstream.New(ncB)
	for i := range 3 {
		if _, err := jsB.Publish(ctx, b.Subject, []byte(`{}`), jetstream.WithMsgID(fmt.Sprint("b", i))); err != nil {
			t.Fatalf("B publishing with B's credentials: %v", err)
		}
	}

	// Now A's credentials against B, on a connection that records what the server refuses.
	var v violations
	ncA := pipelinetest.Dial(t, in.srv.URL(), a.Topology, credsA, nats.ErrorHandler(v.handler))
	jsA, _ := jetstream.New(ncA, jetstream.WithDefaultTimeout(time.Second))
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	attempts := map[string]struct {
		try     func() error
		subject string // the subject the server names in its refusal
	}{
		"publish an event into B": {try: func() error {
			_, err := jsA.Publish(short(), b.Subject, []byte(`{}`), jetstream.WithMsgID("intruder"))
			return err
		}, subject: b.Subject},
		"pull from B's consumer": {try: func() error {
			_, err := ncA.Request("$JS.API.CONSUMER.MSG.NEXT."+b.Stream+"."+b.Consumer, []byte(`{"batch":1}`), time.Second)
			return err
		}, subject: "$JS.API.CONSUMER.MSG.NEXT." + b.Stream + "." + b.Consumer},
		"read B's consumer": {try: func() error {
			_, err := jsA.Consumer(short(), b.Stream, b.Consumer)
			return err
		}, subject: "$JS.API.CONSUMER.INFO." + b.Stream + "." + b.Consumer},
		"read B's stream": {try: func() error {
			_, err := jsA.Stream(short(), b.Stream)
			return err
		}, subject: "$JS.API.STREAM.INFO." + b.Stream},
		"read B's predictions": {try: func() error {
			_, err := ncA.Request("$JS.API.DIRECT.GET."+b.BucketStream()+".$KV."+b.Bucket+".x", nil, time.Second)
			return err
		}, subject: "$JS.API.DIRECT.GET." + b.BucketStream() + ".$KV." + b.Bucket + ".x"},
		"write B's predictions": {try: func() error {
			_, err := jsA.Publish(short(), "$KV."+b.Bucket+".forged", []byte(`{}`))
			return err
		}, subject: "$KV." + b.Bucket + ".forged"},
		"follow B's predictions": {try: func() error {
			_, err := jsA.CreateConsumer(short(), b.BucketStream(), jetstream.ConsumerConfig{Name: "feed"})
			return err
		}, subject: "$JS.API.CONSUMER.CREATE." + b.BucketStream() + ".feed"},
		"follow B's dead letters": {try: func() error {
			_, err := jsA.CreateConsumer(short(), b.OutputStream, jetstream.ConsumerConfig{Name: "feed", FilterSubject: b.DeadLetterKeySubject(">")})
			return err
		}, subject: "$JS.API.CONSUMER.CREATE." + b.OutputStream + ".feed." + b.DeadLetterKeySubject(">")},
		"follow its own output stream beyond the dead letters": {try: func() error {
			_, err := jsA.CreateConsumer(short(), a.OutputStream, jetstream.ConsumerConfig{Name: "spy"})
			return err
		}, subject: "$JS.API.CONSUMER.CREATE." + a.OutputStream + ".spy"},
		"read B's events by id": {try: func() error {
			_, err := ncA.Request("$JS.API.STREAM.MSG.GET."+b.Stream, []byte(`{"last_by_subj":"`+b.EventSubject("b1")+`"}`), time.Second)
			return err
		}, subject: "$JS.API.STREAM.MSG.GET." + b.Stream},
		"create a consumer on B": {try: func() error {
			_, err := jsA.CreateConsumer(short(), b.Stream, jetstream.ConsumerConfig{Durable: "spy"})
			return err
		}, subject: "$JS.API.CONSUMER.CREATE." + b.Stream + ".spy"},
		"delete B's stream": {try: func() error {
			return jsA.DeleteStream(short(), b.Stream)
		}, subject: "$JS.API.STREAM.DELETE." + b.Stream},
		"delete its own stream": {try: func() error {
			return jsA.DeleteStream(short(), a.Stream)
		}, subject: "$JS.API.STREAM.DELETE." + a.Stream},
		"list the account's streams": {try: func() error {
			l := jsA.StreamNames(short())
			for range l.Name() {
			}
			return l.Err()
		}, subject: "$JS.API.STREAM.NAMES"},
		"listen to B's events": {try: func() error {
			_, err := ncA.SubscribeSync(b.Subject)
			if err == nil {
				err = ncA.Flush()
			}
			return err
		}, subject: b.Subject},
		"announce itself to B's ingestion pods": {try: func() error {
			return ncA.Publish(b.PeersSubject(), []byte("alive 0b"))
		}, subject: b.PeersSubject()},
		"listen to B's ingestion pods": {try: func() error {
			_, err := ncA.SubscribeSync(b.PeersSubject())
			if err == nil {
				err = ncA.Flush()
			}
			return err
		}, subject: b.PeersSubject()},
		"listen to B's replies": {try: func() error {
			_, err := ncA.SubscribeSync(b.InboxPrefix() + ".>")
			if err == nil {
				err = ncA.Flush()
			}
			return err
		}, subject: b.InboxPrefix() + ".>"},
		"listen to every reply": {try: func() error {
			_, err := ncA.SubscribeSync("_INBOX.>")
			if err == nil {
				err = ncA.Flush()
			}
			return err
		}, subject: "_INBOX.>"},
	}
	for name, at := range attempts {
		t.Run(name, func(t *testing.T) {
			err := at.try()
			// A refused publish or subscription is reported asynchronously; a refused request
			// also ends without an answer.
			deadline := time.Now().Add(5 * time.Second)
			for !v.about(at.subject) && time.Now().Before(deadline) {
				_ = ncA.FlushTimeout(time.Second)
			}
			if !v.about(at.subject) {
				t.Fatalf("the server did not refuse %s (call returned %v)", at.subject, err)
			}
		})
	}

	// B's events are untouched: none delivered, none added.
	cons, err := jsB.Consumer(ctx, b.Stream, b.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	info := cons.CachedInfo()
	if info.NumPending != 3 || info.Delivered.Consumer != 0 {
		t.Fatalf("B's consumer: %d pending, %d delivered; want its 3 events, none delivered", info.NumPending, info.Delivered.Consumer)
	}
	if _, err := jsB.Stream(ctx, b.Stream); err != nil {
		t.Fatalf("B's stream after A's attempts: %v", err)
	}
}

// TestTheOperatorCannotReadOrWriteEvents: the operator's credentials manage streams but never
// carry an event or a prediction.
func TestTheOperatorCannotReadOrWriteEvents(t *testing.T) {
	in := newInstall(t, 256<<20)
	var v violations
	creds := in.creds(t, "operator", in.keys.IssueOperator)
	nc, js := natstest.Connect(t, in.srv.URL(), nats.UserCredentials(creds.CredsFile),
		nats.CustomInboxPrefix(queue.OperatorInboxPrefix), nats.ErrorHandler(v.handler))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := pipelinetest.Spec("freight", "lanes", 1)
	if _, err := queue.Provision(ctx, js, a); err != nil {
		t.Fatal(err)
	}
	if _, err := queue.ReadLag(ctx, js, a.Stream, a.Consumer); err != nil {
		t.Fatalf("the operator reading the queue depth: %v", err)
	}
	for _, subject := range []string{a.Subject, "$JS.API.CONSUMER.MSG.NEXT." + a.Stream + "." + a.Consumer, "$JS.API.DIRECT.GET." + a.BucketStream()} {
		if !v.refused(nc, subject) {
			t.Errorf("the operator was not refused %s", subject)
		}
	}
}

// TestTheAccountLimitIsTheCapacity: with decentralized auth the account's JetStream limit is
// what $JS.API.INFO reports, so the numbers of a refusal need nothing from the caller.
func TestTheAccountLimitIsTheCapacity(t *testing.T) {
	in := newInstall(t, 12<<20)
	js := in.operator(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	small := func(name string) queue.Spec {
		s := pipelinetest.Spec("freight", name, 1)
		s.MaxBytes = 2 << 20
		return s
	}
	for _, name := range []string{"one", "two"} {
		if _, err := queue.Provision(ctx, js, small(name)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := queue.Provision(ctx, js, small("three"))
	var ise *queue.InsufficientStorageError
	if !errors.As(err, &ise) {
		t.Fatalf("the third pipeline: err = %v, want an InsufficientStorageError", err)
	}
	if ise.Capacity.Limit != 12<<20 || ise.Capacity.Available() != 0 || !strings.Contains(err.Error(), "the account's JetStream storage limit is 12 MiB") {
		t.Fatalf("the refusal's numbers: limit %d, available %d: %v", ise.Capacity.Limit, ise.Capacity.Available(), err)
	}
}

func TestKeysSurviveSaveAndLoad(t *testing.T) {
	keys, err := natsauth.New(-1)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	if err := keys.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := keys.Save(dir); err == nil {
		t.Fatal("Save overwrote existing keys")
	}
	loaded, err := natsauth.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Account.Public != keys.Account.Public || loaded.Signing.Public != keys.Signing.Public || loaded.System.Public != keys.System.Public {
		t.Fatalf("loaded keys differ: %+v", loaded)
	}
	info, err := os.Stat(filepath.Join(dir, "signing.nk"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("the signing key's file: %v, mode %v", err, info.Mode())
	}
	// A user issued from the loaded keys connects to a server of the saved configuration.
	srv := natstest.Start(t, natstest.WithOptions(func(o *server.Options) {
		if err := loaded.ServerOptions(o); err != nil {
			t.Fatal(err)
		}
	}))
	creds, err := loaded.IssuePipeline("freight", "lanes")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nats.Connect(srv.URL(), nats.UserCredentials(path)); err != nil {
		t.Fatalf("a user issued from the loaded keys: %v", err)
	}
}

// TestTheReportingUserReadsItsConsumerAndWritesItsSnapshots: the reporting role's credentials
// re-create and read its consumer of the predictions bucket, acknowledge, and write and read back
// a snapshot; they can neither publish an event, write a prediction, read the bucket directly,
// nor touch another pipeline's consumer or store.
func TestTheReportingUserReadsItsConsumerAndWritesItsSnapshots(t *testing.T) {
	in := newInstall(t, 1<<30)
	js := in.operator(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := pipelinetest.Spec("freight", "lanes", 1), pipelinetest.Spec("rivals", "lanes", 1)
	a.Reporting, b.Reporting = true, true
	for _, s := range []queue.Spec{a, b} {
		if _, err := queue.Provision(ctx, js, s); err != nil {
			t.Fatalf("provisioning %s: %v", s.Stream, err)
		}
	}
	admin := in.creds(t, "admin", func() ([]byte, error) {
		return in.keys.Issue("test-admin", queue.Permissions{Publish: []string{">"}, Subscribe: []string{">"}})
	})
	_, adminJS := natstest.Connect(t, in.srv.URL(), nats.UserCredentials(admin.CredsFile))
	for i := range 3 {
		if _, err := adminJS.Publish(ctx, a.PredictionKeySubject(fmt.Sprintf("e%d", i)), []byte(`{"id":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}

	creds := in.creds(t, "reporting", func() ([]byte, error) { return in.keys.IssueReporting("freight", "lanes") })
	opts, err := queue.ReportingOptions(a.Topology, creds)
	if err != nil {
		t.Fatal(err)
	}
	var v violations
	nc, rjs := natstest.Connect(t, in.srv.URL(), append(opts, nats.ErrorHandler(v.handler))...)
	if err := rjs.DeleteConsumer(ctx, a.BucketStream(), a.ReportConsumer); err != nil {
		t.Fatalf("deleting its own consumer: %v", err)
	}
	cons, err := rjs.CreateConsumer(ctx, a.BucketStream(), queue.ReportConsumerConfig(a, 1))
	if err != nil {
		t.Fatalf("re-creating its own consumer after sequence 1: %v", err)
	}
	batch, err := cons.FetchNoWait(10)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	var last jetstream.Msg
	for m := range batch.Messages() {
		md, _ := m.Metadata()
		seqs = append(seqs, md.Sequence.Stream)
		last = m
	}
	if len(seqs) != 2 || seqs[0] != 2 || seqs[1] != 3 {
		t.Fatalf("read stream sequences %v, want [2 3]", seqs)
	}
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatalf("acknowledging: %v", err)
	}
	store, err := rjs.ObjectStore(ctx, a.ReportStore)
	if err != nil {
		t.Fatalf("opening its snapshot store: %v", err)
	}
	if _, err := store.PutBytes(ctx, "snapshot", []byte("state")); err != nil {
		t.Fatalf("writing a snapshot: %v", err)
	}
	if _, err := store.PutBytes(ctx, "snapshot", []byte("newer state")); err != nil {
		t.Fatalf("replacing the snapshot: %v", err)
	}
	if got, err := store.GetBytes(ctx, "snapshot"); err != nil || string(got) != "newer state" {
		t.Fatalf("reading the snapshot back: %q, %v", got, err)
	}

	// A refused request gets no answer: a short wait is enough to see none comes.
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := rjs.ObjectStore(short, b.ReportStore); err == nil {
		t.Error("opened the other pipeline's snapshot store")
	}
	if _, err := rjs.Consumer(short, b.BucketStream(), b.ReportConsumer); err == nil {
		t.Error("read the other pipeline's reporting consumer")
	}
	for _, subject := range []string{a.Subject, a.PredictionKeySubject("forged"), "$JS.API.DIRECT.GET." + a.BucketStream() + ".$KV." + a.Bucket + ".e1",
		"$JS.API.CONSUMER.MSG.NEXT." + a.Stream + "." + a.Consumer, "$O." + b.ReportStore + ".M.x"} {
		if !v.refused(nc, subject) {
			t.Errorf("the reporting user was not refused %s", subject)
		}
	}
}
