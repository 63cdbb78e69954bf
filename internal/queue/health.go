package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Peer is one server holding a replica of a stream.
type Peer struct {
	Name string
	// Current is false while the replica catches up with the leader (after a restart, or a
	// scale-up that copies the stream to it).
	Current bool
	// Offline is true when the leader has not heard from it.
	Offline bool
	// Lag is how many operations it is behind the leader.
	Lag uint64
	// Active is how long ago the leader last heard from it.
	Active time.Duration
}

// StreamHealth is a stream's replication as its leader reports it.
type StreamHealth struct {
	Stream string
	// Replicas is the configured replica count.
	Replicas int
	// Leader is the server leading the stream; the one that stores each event first and
	// acknowledges it once a majority has it.
	Leader string
	// Followers are the other replicas.
	Followers []Peer
}

// Lagging names the followers that are not current, or offline.
func (h StreamHealth) Lagging() []string {
	var out []string
	for _, p := range h.Followers {
		if !p.Current || p.Offline {
			out = append(out, p.Name)
		}
	}
	return out
}

// Quorum reports whether a majority of the replicas is up: the leader and enough online
// followers. Without it the stream accepts no event.
func (h StreamHealth) Quorum() bool {
	if h.Leader == "" {
		return false
	}
	up := 1
	for _, p := range h.Followers {
		if !p.Offline {
			up++
		}
	}
	return up > max(h.Replicas, 1)/2
}

// ReadStreamHealth asks the stream's leader how its replicas are. A stream without a leader
// cannot answer: the error then wraps ErrNoQuorum (when the cluster said so) or ErrUnreachable
// (when nothing answered before ctx ended), never a healthy-looking zero.
func ReadStreamHealth(ctx context.Context, js jetstream.JetStream, stream string) (StreamHealth, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return StreamHealth{}, classify(fmt.Errorf("reading stream %s: %w", stream, err))
	}
	info := s.CachedInfo()
	h := StreamHealth{Stream: stream, Replicas: max(info.Config.Replicas, 1)}
	if cl := info.Cluster; cl != nil {
		h.Leader = cl.Leader
		for _, p := range cl.Replicas {
			h.Followers = append(h.Followers, Peer{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag, Active: p.Active})
		}
		slices.SortFunc(h.Followers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	}
	if h.Leader == "" {
		return h, fmt.Errorf("stream %s: %w: %w: it has no leader", stream, ErrUnreachable, ErrNoQuorum)
	}
	return h, nil
}
