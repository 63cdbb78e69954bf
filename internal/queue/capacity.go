package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream reserves a stream's MaxBytes up front, on every server that holds one of its
// replicas, and refuses a stream whose reservation does not fit (err_code 10047, "insufficient
// storage resources available") even when the store holds nothing yet. What fits is bounded
// twice: by the account's JetStream storage limit, which counts MaxBytes × replicas, and by each
// server's max_file_store. The servers tell their clients the first ($JS.API.INFO) but not the
// second; StoreLimit passes it in when the caller knows it (the chart's NATS, local mode's
// embedded server).

// StoreLimit is what a caller knows of the servers' stores that the servers do not tell clients.
type StoreLimit struct {
	// PerServer is each server's max_file_store in bytes; 0 when unknown.
	PerServer int64
	// Servers is how many servers the cluster has (1 for a single server).
	Servers int
}

func (l StoreLimit) known() bool { return l.PerServer > 0 && l.Servers > 0 }

// Stream is one stream of the account and what it reserves.
type Stream struct {
	Name string
	// Namespace, Pipeline and Role come from the metadata Provision writes (empty for streams
	// Freightcast did not create).
	Namespace, Pipeline, Role string
	// MaxBytes is the stream's byte limit; -1 when it has none (and reserves nothing).
	MaxBytes int64
	Replicas int
	// Servers hold its replicas, the leader first; empty when no server leads it now.
	Servers  []string
	Messages uint64
	Bytes    uint64
}

// Reservation is what the stream reserves in all: MaxBytes on each server holding a replica.
func (s Stream) Reservation() int64 {
	if s.MaxBytes <= 0 {
		return 0
	}
	return s.MaxBytes * int64(max(s.Replicas, 1))
}

// Freightcast reports whether Provision created the stream (it carries the pipeline's metadata).
func (s Stream) Freightcast() bool { return s.Namespace != "" && s.Pipeline != "" }

// Capacity is the account's JetStream store: what may be reserved, what is, and by whom.
type Capacity struct {
	// Limit is the most the account's streams may reserve in all, across every server: the
	// account's limit, else the servers' max_file_store times their number, else -1 (unknown).
	Limit int64
	// LimitFrom says where Limit comes from, in words.
	LimitFrom string
	// Server is the StoreLimit the caller passed.
	Server StoreLimit
	// Reserved is what the account's streams reserve, MaxBytes × replicas summed.
	Reserved int64
	// Used is what the account's streams hold now.
	Used uint64
	// Streams are the account's streams.
	Streams []Stream
	// Where names the account and server, for messages: the URL the connection is on.
	Where string
}

// Available is what is left to reserve, or -1 when the limit is unknown.
func (c Capacity) Available() int64 {
	if c.Limit < 0 {
		return -1
	}
	return max(0, c.Limit-c.Reserved)
}

// ServerFree is what each server known to hold a stream has left to reserve, by name; servers
// the cluster has that hold nothing are not named. Nil when the per-server limit is unknown.
func (c Capacity) ServerFree() map[string]int64 {
	if !c.Server.known() {
		return nil
	}
	free := map[string]int64{}
	for _, s := range c.Streams {
		for _, name := range s.Servers {
			if _, ok := free[name]; !ok {
				free[name] = c.Server.PerServer
			}
			if s.MaxBytes > 0 {
				free[name] -= s.MaxBytes
			}
		}
	}
	return free
}

// fits reports whether streams of maxBytes each, with replicas each, can all be reserved, and
// whether the answer is certain: it says no only when the numbers prove it. Servers are filled as
// JetStream places replicas, on the servers with the most room first.
func (c Capacity) fits(replicas int, maxBytes ...int64) (ok bool, certain bool) {
	var total int64
	for _, b := range maxBytes {
		total += b * int64(replicas)
	}
	if c.Limit >= 0 && total > c.Available() {
		return false, true
	}
	if !c.Server.known() {
		return true, false
	}
	free := c.ServerFree()
	rooms := make([]int64, 0, c.Server.Servers)
	for _, f := range free {
		rooms = append(rooms, f)
	}
	// Servers that hold nothing yet have all their store free.
	for len(rooms) < c.Server.Servers {
		rooms = append(rooms, c.Server.PerServer)
	}
	if len(free) > c.Server.Servers {
		// More servers hold streams than the caller said the cluster has: its numbers are stale.
		return true, false
	}
	for _, b := range maxBytes {
		slices.SortFunc(rooms, func(a, b int64) int { return cmp.Compare(b, a) })
		if replicas > len(rooms) {
			return true, false // ErrNotEnoughServers is the server's to say
		}
		for i := range replicas {
			if rooms[i] < b {
				return false, true
			}
			rooms[i] -= b
		}
	}
	return true, true
}

// ReadCapacity reads the account's JetStream limits and usage ($JS.API.INFO) and its streams.
func ReadCapacity(ctx context.Context, js jetstream.JetStream, limit StoreLimit) (Capacity, error) {
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return Capacity{}, classify(fmt.Errorf("reading the account's JetStream limits: %w", err))
	}
	c := Capacity{Limit: -1, Server: limit, Used: info.Store, Where: where(js)}
	// Tiered limits (per replica count) count MaxBytes once whatever the replicas; only the flat
	// limit matches Reservation, so a tiered account falls back to the servers' stores.
	if len(info.Tiers) == 0 && info.Limits.MaxStore >= 0 {
		c.Limit, c.LimitFrom = info.Limits.MaxStore, "the account's JetStream storage limit"
	}
	if limit.known() {
		if total := limit.PerServer * int64(limit.Servers); c.Limit < 0 || total < c.Limit {
			c.Limit = total
			c.LimitFrom = fmt.Sprintf("max_file_store of %s on each of %d server(s)", FormatBytes(limit.PerServer), limit.Servers)
		}
	}
	lister := js.ListStreams(ctx)
	for si := range lister.Info() {
		c.Streams = append(c.Streams, streamOf(si))
	}
	if err := lister.Err(); err != nil {
		return Capacity{}, classify(fmt.Errorf("listing the account's streams: %w", err))
	}
	slices.SortFunc(c.Streams, func(a, b Stream) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range c.Streams {
		c.Reserved += s.Reservation()
	}
	return c, nil
}

func streamOf(si *jetstream.StreamInfo) Stream {
	s := Stream{
		Name:      si.Config.Name,
		Namespace: si.Config.Metadata[MetadataNamespace],
		Pipeline:  si.Config.Metadata[MetadataPipeline],
		Role:      si.Config.Metadata[MetadataRole],
		MaxBytes:  si.Config.MaxBytes,
		Replicas:  si.Config.Replicas,
		Messages:  si.State.Msgs,
		Bytes:     si.State.Bytes,
	}
	if cl := si.Cluster; cl != nil && cl.Leader != "" {
		s.Servers = append(s.Servers, cl.Leader)
		for _, p := range cl.Replicas {
			s.Servers = append(s.Servers, p.Name)
		}
	}
	return s
}

// where names the connection's server for messages.
func where(js jetstream.JetStream) string {
	nc := js.Conn()
	if nc == nil {
		return "NATS"
	}
	if name := nc.ConnectedServerName(); name != "" {
		return fmt.Sprintf("NATS at %s (server %s)", nc.ConnectedUrlRedacted(), name)
	}
	return "NATS at " + nc.ConnectedUrlRedacted()
}

// Orphans are the streams Provision created whose pipeline no longer exists, as exists says.
func (c Capacity) Orphans(exists func(namespace, pipeline string) bool) []Stream {
	var out []Stream
	for _, s := range c.Streams {
		if s.Freightcast() && !exists(s.Namespace, s.Pipeline) {
			out = append(out, s)
		}
	}
	return out
}

// InsufficientStorageError is a pipeline that does not fit in the store: what it needs, what is
// free, where, and what to do.
type InsufficientStorageError struct {
	// Pipeline is namespace/name.
	Pipeline string
	// Needed is what the pipeline's streams reserve in all (Spec.Reservation); Replicas and
	// MaxBytes are the factors.
	Needed   int64
	MaxBytes int64
	Replicas int
	// Capacity is the store as read when the pipeline was refused.
	Capacity Capacity
	// Cause is the server's refusal, nil when the numbers refused it before asking.
	Cause error
}

func (e *InsufficientStorageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %s needs %s of JetStream store (%d streams × maxBytes %s × %d replica(s)), reserved up front",
		e.Pipeline, FormatBytes(e.Needed), e.Needed/max(e.MaxBytes*int64(e.Replicas), 1), FormatBytes(e.MaxBytes), e.Replicas)
	c := e.Capacity
	if avail := c.Available(); avail >= 0 {
		fmt.Fprintf(&b, "; %s has %s free: %s is %s, of which %d stream(s) reserve %s",
			c.Where, FormatBytes(avail), c.LimitFrom, FormatBytes(c.Limit), len(c.Streams), FormatBytes(c.Reserved))
	} else {
		fmt.Fprintf(&b, "; %s refused it: its streams reserve %s in %d stream(s), and it does not tell its store size (pass it to the operator, see docs/operate.md#capacity)",
			c.Where, FormatBytes(c.Reserved), len(c.Streams))
	}
	if free := c.ServerFree(); len(free) > 0 {
		names := make([]string, 0, len(free))
		for n := range free {
			names = append(names, n)
		}
		slices.Sort(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %s", n, FormatBytes(max(0, free[n])))
		}
		fmt.Fprintf(&b, " (free per server: %s)", strings.Join(parts, ", "))
	}
	if e.Cause != nil {
		fmt.Fprintf(&b, " [%v]", e.Cause)
	}
	b.WriteString(". To make room: delete pipelines you no longer need and the streams they retained (docs/operate.md#capacity), lower spec.queue.maxBytes or spec.queue.replicas, or give NATS a larger store")
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInsufficientStorage) hold, and reaches the server's answer.
func (e *InsufficientStorageError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrInsufficientStorage}
	}
	return []error{ErrInsufficientStorage, e.Cause}
}

// FormatBytes writes n in binary units as people read them: 512 MiB, 1.5 GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	v, exp := float64(n), 0
	for v >= unit || v <= -unit {
		v /= unit
		exp++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp-1]) + "iB"
}
