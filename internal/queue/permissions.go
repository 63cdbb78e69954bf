package queue

import "github.com/nats-io/nats.go"

// Permissions are the subjects a NATS user may publish to and subscribe to; everything else is
// denied. They are what per-pipeline credentials carry (see docs/security.md, "NATS"): a
// pipeline's pods reach their own pipeline's subjects, stream, consumer and bucket, and nothing
// of any other pipeline.
type Permissions struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
	// DenyPublish carves exceptions out of Publish.
	DenyPublish []string `json:"denyPublish,omitempty"`
}

// OperatorInboxPrefix is where the operator receives its JetStream API answers.
const OperatorInboxPrefix = "_INBOX.freightcast_operator"

// PipelinePermissions are what a pipeline's ingestion and inference pods need, and no more:
//
//   - ingestion publishes events, checks its stream exists (readiness), reads predictions from
//     the bucket and an event's status by id from the events and output streams, and follows
//     the bucket's stream for the push feed with ordered consumers (which it can create, pull
//     from and delete on that stream only, and which show nothing the bucket reads do not),
//     and the output stream's dead letters for the feed too: it can create consumers there
//     only with the dead letters' filter (the API subject names it, and the server checks it
//     against the consumer's), so that they show nothing a status read by id does not;
//   - workers pull from the pipeline's consumer, acknowledge, and store predictions and dead
//     letters in the output stream and the bucket;
//   - ingestion pods announce themselves on the pipeline's peers subject and listen to it, to
//     share the pipeline's rate limit;
//   - both receive replies under the pipeline's inbox prefix only (PipelineOptions sets it), so
//     that no pipeline can subscribe to another's replies, which carry its events.
//
// They cannot create, change or delete a stream or consumer, list streams, or touch any other
// pipeline's subjects.
func PipelinePermissions(t Topology) Permissions {
	const api = "$JS.API."
	bucket := t.BucketStream()
	return Permissions{
		Publish: []string{
			t.Subject,
			t.EventSubject(">"),
			t.PredictionSubject,
			t.DeadLetterSubject,
			t.DeadLetterKeySubject(">"),
			t.PredictionKeySubject(">"),
			api + "STREAM.INFO." + t.Stream,
			api + "STREAM.INFO." + bucket,
			api + "DIRECT.GET." + bucket,
			api + "DIRECT.GET." + bucket + ".>",
			api + "STREAM.MSG.GET." + bucket,
			api + "STREAM.MSG.GET." + t.Stream,
			api + "STREAM.MSG.GET." + t.OutputStream,
			api + "CONSUMER.CREATE." + bucket + ".>",
			api + "CONSUMER.MSG.NEXT." + bucket + ".>",
			api + "CONSUMER.INFO." + bucket + ".>",
			api + "CONSUMER.DELETE." + bucket + ".>",
			api + "STREAM.INFO." + t.OutputStream,
			api + "CONSUMER.CREATE." + t.OutputStream + ".*." + t.DeadLetterKeySubject(">"),
			api + "CONSUMER.MSG.NEXT." + t.OutputStream + ".*",
			api + "CONSUMER.INFO." + t.OutputStream + ".*",
			api + "CONSUMER.DELETE." + t.OutputStream + ".*",
			api + "CONSUMER.INFO." + t.Stream + "." + t.Consumer,
			api + "CONSUMER.MSG.NEXT." + t.Stream + "." + t.Consumer,
			// Acknowledgements, in the server's two reply formats ($JS.ACK.<stream>.<consumer>...
			// and, with domains, $JS.ACK.<domain>.<account hash>.<stream>.<consumer>...).
			"$JS.ACK." + t.Stream + "." + t.Consumer + ".>",
			"$JS.ACK.*.*." + t.Stream + "." + t.Consumer + ".>",
			t.PeersSubject(),
		},
		Subscribe: []string{t.InboxPrefix() + ".>", t.PeersSubject()},
	}
}

// ReportingPermissions are what the reporting role needs, and no more: it re-creates, reads and
// acknowledges its own durable consumer of the predictions bucket's stream, and writes and reads
// its snapshots in the pipeline's report store, receiving replies under its own inbox prefix
// (ReportingInboxPrefix). It cannot publish or read an event, write a prediction, read the
// bucket other than through its consumer, or reach any other pipeline.
func ReportingPermissions(t Topology) Permissions {
	const api = "$JS.API."
	bucket, store := t.BucketStream(), t.ReportStoreStream()
	consumer := bucket + "." + t.ReportConsumer
	return Permissions{
		Publish: []string{
			api + "STREAM.INFO." + bucket,
			api + "CONSUMER.CREATE." + consumer,
			api + "CONSUMER.INFO." + consumer,
			api + "CONSUMER.DELETE." + consumer,
			api + "CONSUMER.MSG.NEXT." + consumer,
			"$JS.ACK." + consumer + ".>",
			"$JS.ACK.*.*." + consumer + ".>",
			// The object store: chunks and metadata, purging a replaced snapshot's chunks, and
			// reading back through direct gets and ordered consumers of its own stream.
			"$O." + t.ReportStore + ".>",
			api + "STREAM.INFO." + store,
			api + "STREAM.PURGE." + store,
			api + "STREAM.MSG.GET." + store,
			api + "DIRECT.GET." + store,
			api + "DIRECT.GET." + store + ".>",
			api + "CONSUMER.CREATE." + store + ".>",
			api + "CONSUMER.MSG.NEXT." + store + ".>",
			api + "CONSUMER.INFO." + store + ".>",
			api + "CONSUMER.DELETE." + store + ".>",
		},
		Subscribe: []string{t.ReportingInboxPrefix() + ".>"},
	}
}

// ReportingOptions are the connection options of the reporting role: its credentials, and
// replies under its own inbox prefix.
func ReportingOptions(t Topology, c Credentials) ([]nats.Option, error) {
	opts, err := c.Options()
	if err != nil {
		return nil, err
	}
	return append(opts, nats.CustomInboxPrefix(t.ReportingInboxPrefix())), nil
}

// OperatorPermissions are what the operator needs: the JetStream API of its account, to
// provision, scale, inspect and delete every pipeline's objects, and its own inbox. It can neither
// publish an event nor read one, nor read a prediction: the API calls that return messages are
// denied.
func OperatorPermissions() Permissions {
	return Permissions{
		Publish:   []string{"$JS.API.>"},
		Subscribe: []string{OperatorInboxPrefix + ".>"},
		DenyPublish: []string{
			"$JS.API.CONSUMER.MSG.NEXT.>",
			"$JS.API.DIRECT.GET.>",
			"$JS.API.STREAM.MSG.GET.>",
		},
	}
}
