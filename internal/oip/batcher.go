package oip

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/freightcast/freightcast/internal/metrics"
)

// batcher merges concurrent infer calls into one model run, opportunistically: a worker takes
// what is queued right now, and waits up to the maximum delay only while other requests are
// being decoded and so about to join. A lone request never waits.
type batcher struct {
	queue   chan *call
	maxRows int
	delay   time.Duration
	// pending counts requests between reading their body and joining the queue.
	pending atomic.Int64
	metrics *metrics.Inference
	wg      sync.WaitGroup
}

func newBatcher(workers, maxRows int, delay time.Duration, m *metrics.Inference) *batcher {
	b := &batcher{queue: make(chan *call, 4*maxRows), maxRows: maxRows, delay: delay, metrics: m}
	for range workers {
		b.wg.Go(b.work)
	}
	return b
}

// close stops the workers once every queued call is done. No call may be submitted after it.
func (b *batcher) close() {
	close(b.queue)
	b.wg.Wait()
}

// worker buffers for the merged batch.
type batchBuffers struct {
	in, out [][]float32
}

func (b *batcher) work() {
	var (
		batch []*call
		bufs  batchBuffers
		next  *call // a call that did not fit the previous batch
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first := next
		next = nil
		if first == nil {
			var ok bool
			if first, ok = <-b.queue; !ok {
				return
			}
		}
		batch = append(batch[:0], first)
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
				timer.Reset(deadline.Sub(now))
				select {
				case c = <-b.queue:
					timer.Stop()
				case <-timer.C:
					break gather
				}
			}
			if c == nil {
				break gather // the queue closed; finish this batch
			}
			if c.model != first.model || rows+c.rows > b.maxRows {
				next = c
				break gather
			}
			batch = append(batch, c)
			rows += c.rows
		}
		b.run(batch, rows, &bufs)
		clear(batch)
	}
}

func (b *batcher) run(batch []*call, rows int, bufs *batchBuffers) {
	lm := batch[0].model
	var err error
	if len(batch) == 1 {
		c := batch[0]
		err = lm.rt.Run(c.rows, c.in, c.out)
	} else {
		bufs.in = fit(bufs.in, lm.inRow, rows)
		bufs.out = fit(bufs.out, lm.outRow, rows)
		for i := range lm.inRow {
			pos := 0
			for _, c := range batch {
				pos += copy(bufs.in[i][pos:], c.in[i])
			}
		}
		err = lm.rt.Run(rows, bufs.in, bufs.out)
		if err == nil {
			for j := range lm.outRow {
				pos := 0
				for _, c := range batch {
					pos += copy(c.out[j], bufs.out[j][pos:])
				}
			}
		}
	}
	b.metrics.BatchSize.Observe(float64(rows))
	if err == nil {
		b.metrics.RowsPredicted.Add(float64(rows))
	}
	for _, c := range batch {
		c.err = err
		c.done <- struct{}{}
	}
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
