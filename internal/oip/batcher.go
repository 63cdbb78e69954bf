package oip

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/metrics"
)

// batcher merges concurrent infer calls into one model run. There are no worker goroutines: a
// request that finds a free slot (one per CPU) becomes the leader and runs what is queued,
// itself included, so a lone request runs on its own goroutine without a hand-off. A leader
// takes what is queued right now, and waits up to the maximum delay only while other requests
// are being decoded and so about to join: a lone request never waits.
type batcher struct {
	queue chan *call
	// leaders holds one slot per concurrent leader, with the slot's scratch.
	leaders chan *leaderSlot
	maxRows int
	delay   time.Duration
	// pending counts requests between reading their body and joining the queue.
	pending atomic.Int64
	metrics *metrics.Inference
}

type leaderSlot struct {
	batch   []*call
	in, out [][]float32
	timer   *time.Timer
	next    *call // a call that did not fit the previous batch
}

func newBatcher(leaders, maxRows int, delay time.Duration, m *metrics.Inference) *batcher {
	b := &batcher{
		queue:   make(chan *call, 1024),
		leaders: make(chan *leaderSlot, leaders),
		maxRows: maxRows,
		delay:   delay,
		metrics: m,
	}
	for range leaders {
		t := time.NewTimer(time.Hour)
		t.Stop()
		b.leaders <- &leaderSlot{timer: t}
	}
	return b
}

// submit queues c and returns when it has run; the caller has counted it in pending.
func (b *batcher) submit(c *call) {
	b.queue <- c
	b.pending.Add(-1)
	// Whoever queued last checks for a free slot after queueing, and a leader checks the queue
	// after giving its slot back, so no call is left in the queue without a leader.
	for len(b.queue) > 0 {
		select {
		case slot := <-b.leaders:
			b.lead(slot)
			b.leaders <- slot
			continue
		default:
		}
		break
	}
	<-c.done
}

func (b *batcher) lead(s *leaderSlot) {
	for {
		first := s.next
		s.next = nil
		if first == nil {
			select {
			case first = <-b.queue:
			default:
				return
			}
		}
		s.batch = append(s.batch[:0], first)
		rows := first.rows
		var deadline time.Time
	gather:
		for rows < b.maxRows {
			var c *call
			select {
			case c = <-b.queue:
			default:
				if b.delay <= 0 || b.pending.Load() == 0 {
					break gather
				}
				now := time.Now()
				if deadline.IsZero() {
					deadline = now.Add(b.delay)
				}
				if !now.Before(deadline) {
					break gather
				}
				s.timer.Reset(deadline.Sub(now))
				select {
				case c = <-b.queue:
					s.timer.Stop()
				case <-s.timer.C:
					break gather
				}
			}
			if c.model != first.model || rows+c.rows > b.maxRows {
				s.next = c
				break gather
			}
			s.batch = append(s.batch, c)
			rows += c.rows
		}
		b.run(s, rows)
		clear(s.batch)
	}
}

func (b *batcher) run(s *leaderSlot, rows int) {
	batch := s.batch
	lm := batch[0].model
	var err error
	if len(batch) == 1 {
		c := batch[0]
		err = safeRun(lm, c.rows, c.in, c.out)
	} else {
		s.in = fit(s.in, lm.inRow, rows)
		s.out = fit(s.out, lm.outRow, rows)
		for i := range lm.inRow {
			pos := 0
			for _, c := range batch {
				pos += copy(s.in[i][pos:], c.in[i])
			}
		}
		err = safeRun(lm, rows, s.in, s.out)
		if err == nil {
			for j := range lm.outRow {
				pos := 0
				for _, c := range batch {
					pos += copy(c.out[j], s.out[j][pos:])
				}
			}
		}
	}
	b.metrics.BatchSize.Observe(float64(rows))
	if err == nil {
		b.metrics.RowsPredicted.Add(float64(rows))
	}
	for _, c := range batch {
		c.err, c.batchRows, c.batchCalls = err, rows, len(batch)
		c.done <- struct{}{}
	}
}

// safeRun turns a panic in the runtime into an error: the leader holds a slot and other
// requests' answers, and must hand both back whatever happens.
func safeRun(lm *loadedModel, rows int, in, out [][]float32) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("model run panicked: %v", r)
		}
	}()
	return lm.rt.Run(rows, in, out)
}

// fit resizes one buffer per tensor to rows rows, reusing capacity.
func fit(bufs [][]float32, rowSizes []int, rows int) [][]float32 {
	if len(bufs) != len(rowSizes) {
		bufs = make([][]float32, len(rowSizes))
	}
	for i, r := range rowSizes {
		n := rows * r
		if cap(bufs[i]) < n {
			bufs[i] = make([]float32, n)
		}
		bufs[i] = bufs[i][:n]
	}
	return bufs
}
