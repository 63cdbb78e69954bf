package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrUnreachable means the NATS server (or its JetStream) did not answer. A lag read that
	// fails this way says nothing about the backlog: callers must not treat it as zero.
	ErrUnreachable = errors.New("NATS JetStream unreachable")
	// ErrNoQuorum means the servers answer but the stream (or consumer, or the cluster's meta
	// group) has no leader: fewer than a majority of its replicas are up, or they are electing
	// one. It always comes wrapped together with ErrUnreachable, so that a caller that only
	// knows ErrUnreachable treats it as the unknown it is.
	ErrNoQuorum = errors.New("no quorum")
	// ErrConsumerMissing means the server answered but the pipeline's stream or consumer does not
	// exist. Also not a zero backlog: the events, if any, are not where we look.
	ErrConsumerMissing = errors.New("stream or consumer missing")
	// ErrInsufficientStorage means the account or the servers cannot reserve what a stream
	// asks for. The error is an *InsufficientStorageError with the numbers.
	ErrInsufficientStorage = errors.New("insufficient storage")
	// ErrNotEnoughServers means a stream asked for more replicas than there are servers to
	// hold them (or the server is not clustered at all).
	ErrNotEnoughServers = errors.New("not enough servers")
	// ErrUnackedEvents means Delete refused: the events stream still holds events that no
	// prediction acknowledged. The error is an *UnackedEventsError.
	ErrUnackedEvents = errors.New("unacknowledged events remain")
)

// JetStream API error codes (nats-server's errors.json) that this package tells apart.
const (
	errCodeNoPeers              jetstream.ErrorCode = 10005 // "no suitable peers for placement" (with the reason)
	errCodeClusterNotAvailable  jetstream.ErrorCode = 10008 // "JetStream system temporarily unavailable"
	errCodeInsufficientResource jetstream.ErrorCode = 10023 // "insufficient resources"
	errCodeStorageExceeded      jetstream.ErrorCode = 10047 // "insufficient storage resources available"
	errCodeReplicasNotSupported jetstream.ErrorCode = 10074 // "replicas > 1 not supported in non-clustered mode"
	errCodeStreamOffline        jetstream.ErrorCode = 10118
	errCodeConsumerOffline      jetstream.ErrorCode = 10119
)

// apiCode returns the JetStream API error code in err, or 0.
func apiCode(err error) (jetstream.ErrorCode, string) {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode, apiErr.Description
	}
	return 0, ""
}

// isStorageRefusal reports whether err is the server refusing to reserve storage: on one
// server (10047), on the account (10047 too), or when placing replicas in a cluster (10005
// with "insufficient storage", 10023).
func isStorageRefusal(err error) bool {
	code, desc := apiCode(err)
	switch code {
	case errCodeStorageExceeded, errCodeInsufficientResource:
		return true
	case errCodeNoPeers:
		return strings.Contains(desc, "insufficient storage")
	}
	return false
}

// classify wraps err with the sentinel errors above when it is one of them.
func classify(err error) error {
	code, desc := apiCode(err)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrConsumerNotFound):
		return fmt.Errorf("%w: %w", ErrConsumerMissing, err)
	case code == errCodeClusterNotAvailable, code == errCodeStreamOffline, code == errCodeConsumerOffline:
		return fmt.Errorf("%w: %w: %w", ErrUnreachable, ErrNoQuorum, err)
	case code == errCodeReplicasNotSupported, code == errCodeNoPeers && !strings.Contains(desc, "insufficient storage"):
		return fmt.Errorf("%w: %w", ErrNotEnoughServers, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoHeartbeat),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}
