// Package queue owns a pipeline's objects on NATS JetStream: the events stream, the inference
// pool's durable pull consumer, the output stream (predictions and dead letters) and the predictions
// key-value bucket. The operator and local mode both provision through it, so the two never differ.
// It knows nothing of Kubernetes.
package queue

import (
	"fmt"
	"strings"
	"time"
)

// Topology names everything one pipeline owns on a NATS server. Names derive from the pipeline's
// namespace and name; neither may contain '_' or '.', so distinct pipelines never collide.
type Topology struct {
	// Namespace and Pipeline identify the pipeline. Provision writes them into the metadata of
	// its streams, so that a stream outliving its pipeline can be told apart (ListStreams).
	Namespace string `json:"namespace"`
	Pipeline  string `json:"pipeline"`
	// Stream holds the accepted events until a worker acknowledges their prediction.
	Stream string `json:"stream"`
	// Subject is the root of the events' subjects: ingestion publishes each event to
	// EventSubject(id) below it, so that its status can be read by id. Events published to
	// Subject itself (by ingestion pods of earlier releases) are queued all the same.
	Subject string `json:"subject"`
	// Consumer is the durable pull consumer the inference pool shares.
	Consumer string `json:"consumer"`
	// OutputStream keeps predictions and dead letters for the retention period.
	OutputStream string `json:"outputStream"`
	// PredictionSubject carries one message per prediction, message id = event id.
	PredictionSubject string `json:"predictionSubject"`
	// DeadLetterSubject is the root of the dead letters' subjects: events that could not be
	// predicted, with the reason, each under DeadLetterKeySubject(id) when its id is known.
	DeadLetterSubject string `json:"deadLetterSubject"`
	// Bucket is the key-value bucket of predictions by event id.
	Bucket string `json:"bucket"`
	// ReportConsumer is the reporting role's durable consumer on the bucket's stream
	// (BucketStream); ReportStore the object store its snapshots are written to. Used only when
	// Spec.Reporting is set; empty in configs rendered before reporting existed.
	ReportConsumer string `json:"reportConsumer,omitempty"`
	ReportStore    string `json:"reportStore,omitempty"`
}

// TopologyFor derives the names for the pipeline namespace/name.
func TopologyFor(namespace, name string) Topology {
	base := fmt.Sprintf("freightcast_%s_%s", namespace, name)
	subject := fmt.Sprintf("freightcast.%s.%s", namespace, name)
	return Topology{
		Namespace:         namespace,
		Pipeline:          name,
		Stream:            base,
		Subject:           subject + ".events",
		Consumer:          "inference",
		OutputStream:      base + "_out",
		PredictionSubject: subject + ".predictions",
		DeadLetterSubject: subject + ".deadletter",
		Bucket:            base + "_predictions",
		ReportConsumer:    "reporting",
		ReportStore:       base + "_reports",
	}
}

// ReportStoreStream is the stream JetStream keeps the report snapshot store in.
func (t Topology) ReportStoreStream() string { return "OBJ_" + t.ReportStore }

// ReportingInboxPrefix is where the reporting role receives its replies: not under InboxPrefix,
// so that the ingestion and inference pods cannot subscribe to them, nor it to theirs.
func (t Topology) ReportingInboxPrefix() string { return "_INBOX." + t.ReportStore }

// InboxPrefix is where the pipeline's pods receive replies (publish acknowledgements, fetched
// events, API answers). It is the pipeline's own, so that NATS permissions can let a pod subscribe
// to its replies and to no other pipeline's (see PipelinePermissions).
func (t Topology) InboxPrefix() string { return "_INBOX." + t.Stream }

// PeersSubject is where the pipeline's ingestion pods announce themselves to each other, so that
// each takes its share of the pipeline's rate limit (internal/ratelimit). No stream captures it:
// heartbeats are core NATS messages, gone once delivered.
func (t Topology) PeersSubject() string {
	return strings.TrimSuffix(t.Subject, ".events") + ".ingestion.peers"
}

// HeaderClient carries, on a queued event and on its prediction and dead letter, the name of the
// client that sent it (httpauth.Identity.Client); absent for an anonymous client. Reads check it
// so that a client sees only its own data.
const HeaderClient = "Freightcast-Client"

// Headers of a dead letter.
const (
	HeaderDeadLetterReason = "Freightcast-Dead-Letter-Reason"
	HeaderDeadLetterError  = "Freightcast-Dead-Letter-Error"
	HeaderEventID          = "Freightcast-Event-Id"
	HeaderStreamSequence   = "Freightcast-Stream-Sequence"
	// HeaderDeliveries is how many times the event was delivered, the last time included.
	HeaderDeliveries = "Freightcast-Deliveries"
)

// EventSubject is where ingestion publishes the event id: one subject per event, so that the
// event's place in the queue can be read by id (the last message of the subject).
func (t Topology) EventSubject(id string) string { return t.Subject + "." + id }

// EventSubjects are the events stream's subjects: every event's, and the root one that
// ingestion pods of earlier releases publish to.
func (t Topology) EventSubjects() []string { return []string{t.Subject, t.Subject + ".>"} }

// DeadLetterKeySubject is where the dead letter of event id is stored, read by id like an
// event's. A message that could not be decoded has no id and goes to DeadLetterSubject.
func (t Topology) DeadLetterKeySubject(id string) string { return t.DeadLetterSubject + "." + id }

// BucketStream is the stream JetStream keeps the predictions bucket in.
func (t Topology) BucketStream() string { return "KV_" + t.Bucket }

// PredictionKeySubject is the subject that writes key id of the predictions bucket: JetStream
// stores a bucket as a stream with one subject per key. The worker publishes there itself, with
// an expected last sequence of 0, because that is the only way to write a key only if it is
// absent without waiting for each write in turn.
func (t Topology) PredictionKeySubject(id string) string {
	return "$KV." + t.Bucket + "." + id
}

// Limits bound the pipeline's streams. Zero values are invalid; Validate says which.
type Limits struct {
	// MaxMessages and MaxBytes cap the events stream; a full stream refuses new events. MaxBytes
	// also caps the output stream and the predictions bucket, which drop their oldest
	// predictions when full.
	MaxMessages int64 `json:"maxMessages"`
	MaxBytes    int64 `json:"maxBytes"`
	// MaxAge expires events that waited too long.
	MaxAge time.Duration `json:"maxAge"`
	// DuplicateWindow is how long event ids are remembered for deduplication.
	DuplicateWindow time.Duration `json:"duplicateWindow"`
	// AckWait is how long a worker holds an event before it is redelivered.
	AckWait time.Duration `json:"ackWait"`
	// MaxDeliver is how many deliveries an event gets before it is dead-lettered.
	MaxDeliver int `json:"maxDeliver"`
	// MaxAckPending bounds events handed out and not yet acknowledged, across all workers.
	MaxAckPending int `json:"maxAckPending"`
	// PredictionRetention is how long predictions and dead letters are kept.
	PredictionRetention time.Duration `json:"predictionRetention"`
}

// Spec is everything Provision makes exist.
type Spec struct {
	Topology
	Limits
	// Replicas is how many servers of a JetStream cluster hold each of the pipeline's streams
	// and its bucket: 1, 3 or 5. 0 means 1, a single copy, which is what a pipeline had before
	// replication could be chosen.
	Replicas int `json:"replicas,omitempty"`
	// Reporting provisions the reporting role's durable consumer on the bucket's stream and its
	// snapshot store (an object store bounded by MaxBytes, like the other streams).
	Reporting bool `json:"reporting,omitempty"`
}

// replicas is Replicas with 0 read as 1.
func (s Spec) replicas() int { return max(s.Replicas, 1) }

// StreamsPerPipeline is how many streams of a pipeline reserve MaxBytes: the events, the output
// (predictions and dead letters) and the predictions bucket's; a pipeline with reporting has
// one more, its snapshot store's (Spec.streams).
const StreamsPerPipeline = 3

// streams is how many streams of this pipeline reserve MaxBytes.
func (s Spec) streams() int64 {
	if s.Reporting {
		return StreamsPerPipeline + 1
	}
	return StreamsPerPipeline
}

// Reservation is the store the pipeline's streams reserve up front across the cluster: each
// reserves MaxBytes on every server that holds one of its replicas.
func (s Spec) Reservation() int64 { return s.streams() * s.MaxBytes * int64(s.replicas()) }

// Validate reports the first field that cannot be provisioned.
func (s Spec) Validate() error {
	switch {
	case s.Stream == "" || s.Subject == "" || s.Consumer == "" || s.OutputStream == "" || s.Bucket == "":
		return fmt.Errorf("queue: topology names must not be empty: %+v", s.Topology)
	case s.Reporting && (s.ReportConsumer == "" || s.ReportStore == ""):
		return fmt.Errorf("queue: reporting needs the topology's reportConsumer and reportStore names: %+v", s.Topology)
	case s.Replicas != 0 && s.Replicas != 1 && s.Replicas != 3 && s.Replicas != 5:
		return fmt.Errorf("queue: replicas must be 1, 3 or 5 (an odd number of servers, so that a majority survives a loss), got %d", s.Replicas)
	case s.MaxMessages <= 0:
		return fmt.Errorf("queue: maxMessages must be positive, got %d", s.MaxMessages)
	case s.MaxBytes <= 0:
		return fmt.Errorf("queue: maxBytes must be positive, got %d", s.MaxBytes)
	case s.MaxAge <= 0:
		return fmt.Errorf("queue: maxAge must be positive, got %s", s.MaxAge)
	case s.DuplicateWindow <= 0 || s.DuplicateWindow > s.MaxAge:
		return fmt.Errorf("queue: duplicateWindow must be positive and at most maxAge (%s), got %s", s.MaxAge, s.DuplicateWindow)
	case s.AckWait <= 0:
		return fmt.Errorf("queue: ackWait must be positive, got %s", s.AckWait)
	case s.MaxDeliver <= 0:
		return fmt.Errorf("queue: maxDeliver must be positive, got %d", s.MaxDeliver)
	case s.MaxAckPending <= 0:
		return fmt.Errorf("queue: maxAckPending must be positive, got %d", s.MaxAckPending)
	case s.PredictionRetention <= 0:
		return fmt.Errorf("queue: predictionRetention must be positive, got %s", s.PredictionRetention)
	}
	return nil
}
