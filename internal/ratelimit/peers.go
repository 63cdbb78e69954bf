// Package ratelimit holds a pipeline's rate limit across its ingestion pods. Each pod admits its
// share, the pipeline's limit divided by the pods alive, which it learns from their heartbeats
// on a NATS subject of the pipeline's own (Peers); a token bucket per client holds the share
// (Budget). The pods never talk to Kubernetes, and no request waits on NATS for its budget.
package ratelimit

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultInterval is how often a pod announces itself.
const DefaultInterval = time.Second

// MissedBeats is how many heartbeats in a row a peer may miss before it counts as gone. One
// late beat, a GC pause or a reconnect, must not raise everyone's share at once.
const MissedBeats = 3

// MaxIngestionPods is the most ingestion pods a pipeline can have: spec.ingestion.replicas is at
// most 100, and a rollout surges by a quarter above it. A pod that does not know who is alive
// takes this as the number of pods (PeersConfig.Fallback), so not knowing admits less, never more.
const MaxIngestionPods = 125

const (
	alive = "alive "
	gone  = "gone "
	// maxIDLen bounds the id a heartbeat may carry: ours are 32 hex digits.
	maxIDLen = 64
)

// PeersConfig configures Peers.
type PeersConfig struct {
	// Conn is the pod's NATS connection; required.
	Conn *nats.Conn
	// Subject is the pipeline's heartbeat subject (queue.Topology.PeersSubject); required.
	Subject string
	// Interval between heartbeats; DefaultInterval when zero.
	Interval time.Duration
	// Fallback is the number of pods assumed while this pod does not know who is alive: before
	// its own first heartbeat has come back and one interval has passed (so every live peer has
	// announced itself since), and whenever its own heartbeat has not come back for MissedBeats
	// intervals (NATS is unreachable, or its credentials may not use the subject). It should be
	// the most pods the pipeline can have, so that not knowing errs towards admitting less.
	Fallback int
	// Now is the clock heartbeats are stamped and aged with; time.Now when nil.
	Now func() time.Time
	// Logger logs heartbeats that cannot be sent; nil discards.
	Logger *slog.Logger
	// Tick, when set, replaces the heartbeat timer: each value sent beats once and ages the
	// peers. Tests drive it with their fake clock; nil means a ticker of Interval.
	Tick <-chan time.Time
}

// Peers counts the live ingestion pods of one pipeline, itself included, from the heartbeats
// every pod sends on the pipeline's subject. It is safe for concurrent use; Count costs an
// atomic load.
type Peers struct {
	cfg   PeersConfig
	id    string
	sub   *nats.Subscription
	count atomic.Int64

	mu    sync.Mutex
	seen  map[string]time.Time // peer id → when its last heartbeat arrived, by cfg.Now
	since time.Time            // when this pod started listening
	deaf  bool                 // warned that its own heartbeats do not come back

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// StartPeers subscribes to the heartbeat subject and starts announcing this pod. On a connection
// that is not up yet, nats.go sends the subscription when it connects; until then Count is the
// fallback.
func StartPeers(cfg PeersConfig) (*Peers, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("ratelimit: Conn is nil")
	case cfg.Subject == "":
		return nil, errors.New("ratelimit: Subject is empty")
	case cfg.Fallback < 1:
		return nil, errors.New("ratelimit: Fallback must be at least 1")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	p := &Peers{cfg: cfg, id: hex.EncodeToString(raw[:]), seen: map[string]time.Time{}, since: cfg.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	p.count.Store(int64(cfg.Fallback))
	var err error
	if p.sub, err = cfg.Conn.Subscribe(cfg.Subject, p.receive); err != nil {
		return nil, err
	}
	if cfg.Conn.IsConnected() {
		// Once the server has the subscription, this pod hears every heartbeat sent after
		// StartPeers returns, its own first one included.
		_ = cfg.Conn.FlushTimeout(time.Second)
	}
	go p.loop()
	return p, nil
}

func (p *Peers) loop() {
	defer close(p.done)
	tick := p.cfg.Tick
	if tick == nil {
		t := time.NewTicker(p.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	p.Beat()
	for {
		select {
		case <-p.stop:
			return
		case <-tick:
			p.Beat()
			// Peers age on our own beat too, not only when another's arrives: a lone
			// survivor must notice that the others are gone.
			p.refresh()
		}
	}
}

// Beat announces this pod once. A failure is logged: the pod's own heartbeat then stops
// coming back, and Count falls back.
func (p *Peers) Beat() {
	if err := p.cfg.Conn.Publish(p.cfg.Subject, []byte(alive+p.id)); err != nil && p.cfg.Conn.IsConnected() {
		p.cfg.Logger.Warn("cannot announce this pod to the pipeline's other ingestion pods", "subject", p.cfg.Subject, "error", err)
	}
}

// Count is the number of live ingestion pods the pipeline's rate limit is divided by: at least
// 1, and cfg.Fallback while this pod does not know.
func (p *Peers) Count() int { return int(p.count.Load()) }

// Stop says goodbye, so that the other pods take over this pod's share at once rather than
// after MissedBeats intervals, and stops listening. Call it after the last request is answered
// and before the connection closes.
func (p *Peers) Stop() {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		_ = p.sub.Unsubscribe()
		_ = p.cfg.Conn.Publish(p.cfg.Subject, []byte(gone+p.id))
		_ = p.cfg.Conn.FlushTimeout(time.Second)
	})
}

func (p *Peers) receive(m *nats.Msg) {
	leaving, id, ok := parseHeartbeat(m.Data)
	if !ok {
		return
	}
	p.mu.Lock()
	if leaving {
		delete(p.seen, id)
	} else {
		p.seen[id] = p.cfg.Now()
	}
	p.mu.Unlock()
	p.refresh()
}

// refresh recounts the live peers and forgets those gone for long.
func (p *Peers) refresh() {
	now := p.cfg.Now()
	window := MissedBeats * p.cfg.Interval
	p.mu.Lock()
	defer p.mu.Unlock()
	live := 0
	for id, at := range p.seen {
		switch age := now.Sub(at); {
		case age <= window:
			live++
		case age > 2*window:
			delete(p.seen, id)
		}
	}
	self, heard := p.seen[p.id]
	known := heard && now.Sub(self) <= window && now.Sub(p.since) >= p.cfg.Interval
	if !known {
		live = max(live, p.cfg.Fallback)
		// Connected for long and still deaf to itself: the server drops the heartbeats, most
		// likely because the pipeline's NATS permissions predate the subject.
		if !p.deaf && p.cfg.Conn.IsConnected() && now.Sub(p.since) > window {
			p.cfg.Logger.Warn("this pod does not hear its own heartbeat although NATS is connected; it takes the fallback share of the rate limit. Do the pipeline's NATS credentials admit the subject?",
				"subject", p.cfg.Subject, "pods", live)
		}
		p.deaf = p.cfg.Conn.IsConnected() && now.Sub(p.since) > window
	} else {
		p.deaf = false
	}
	live = max(live, 1)
	if old := p.count.Swap(int64(live)); old != int64(live) {
		p.cfg.Logger.Info("ingestion pods sharing the pipeline's rate limit", "pods", live, "known", known)
	}
}

// parseHeartbeat reads "alive ID" or "gone ID"; anything else on the subject is ignored.
func parseHeartbeat(data []byte) (leaving bool, id string, ok bool) {
	s := string(data)
	switch {
	case strings.HasPrefix(s, alive):
		id = s[len(alive):]
	case strings.HasPrefix(s, gone):
		id, leaving = s[len(gone):], true
	default:
		return false, "", false
	}
	if id == "" || len(id) > maxIDLen || strings.ContainsFunc(id, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	}) {
		return false, "", false
	}
	return leaving, id, true
}
