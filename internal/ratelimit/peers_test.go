package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/freightcast/freightcast/internal/testing/natstest"
	"github.com/freightcast/freightcast/internal/testing/testenv"
)

func waitCount(t *testing.T, p *Peers, want int, what string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, func() error {
		if got := p.Count(); got != want {
			return fmt.Errorf("counts %d, want %d", got, want)
		}
		return nil
	})
}

// TestPeersFallBackWhenNATSIsGone: a pod that no longer hears its own heartbeat does not know who
// is alive, and takes the fallback share rather than the share of the last pods it saw.
func TestPeersFallBackWhenNATSIsGone(t *testing.T) {
	srv := natstest.Start(t)
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	clk := testenv.NewClock(t0)
	tick := make(chan time.Time)
	p, err := StartPeers(PeersConfig{Conn: nc, Subject: "freightcast.ns.p.ingestion.peers", Interval: time.Second, Fallback: 7, Now: clk.Now, Tick: tick})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	if got := p.Count(); got != 7 {
		t.Fatalf("counts %d before a heartbeat round, want the fallback 7", got)
	}
	clk.Advance(time.Second)
	tick <- clk.Now()
	waitCount(t, p, 1, "alone, once its own heartbeat came back")

	srv.Stop()
	for range MissedBeats + 1 {
		clk.Advance(time.Second)
		tick <- clk.Now()
	}
	waitCount(t, p, 7, "the fallback with NATS gone")

	srv.Restart(t)
	testenv.Eventually(t, 10*time.Second, "reconnected", func() error {
		if !nc.IsConnected() {
			return fmt.Errorf("NATS is %s", nc.Status())
		}
		return nil
	})
	// The subscription is restored with the connection; the next beat comes back.
	testenv.Eventually(t, 10*time.Second, "alone again once NATS is back", func() error {
		tick <- clk.Now()
		if got := p.Count(); got != 1 {
			return fmt.Errorf("counts %d", got)
		}
		return nil
	})
}

func TestParseHeartbeat(t *testing.T) {
	type got struct {
		Leaving bool
		ID      string
		OK      bool
	}
	cases := map[string]got{
		"alive 0a1b":            {ID: "0a1b", OK: true},
		"gone 0a1b":             {Leaving: true, ID: "0a1b", OK: true},
		"alive ":                {},
		"alive 0A1B":            {},
		"alive 0a 1b":           {},
		"hello 0a":              {},
		"":                      {},
		"alive " + hex65chars(): {},
	}
	for in, want := range cases {
		leaving, id, ok := parseHeartbeat([]byte(in))
		if g := (got{leaving, id, ok}); g != want {
			t.Errorf("parseHeartbeat(%q) = %+v, want %+v", in, g, want)
		}
	}
}

func hex65chars() string {
	b := make([]byte, maxIDLen+1)
	for i := range b {
		b[i] = 'a'
	}
	return string(b)
}

// FuzzParseHeartbeat: whatever arrives on the subject, parsing neither panics nor accepts an id
// that is not short lowercase hex.
func FuzzParseHeartbeat(f *testing.F) {
	for _, s := range []string{"alive 0a1b", "gone ff", "alive ", "gone", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, id, ok := parseHeartbeat(data)
		if !ok {
			return
		}
		if id == "" || len(id) > maxIDLen {
			t.Fatalf("accepted id %q", id)
		}
		for _, r := range id {
			if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
				t.Fatalf("accepted id %q", id)
			}
		}
	})
}
