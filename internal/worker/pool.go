package worker

import (
	"context"
	"errors"
	"sync"
	"time"
)

// PoolConfig is what a Pool needs.
type PoolConfig struct {
	// New builds the worker of a slot (0-based) each time the pool grows into it.
	New func(slot int) (*Worker, error)
	// RetryAfter, when positive, runs a worker again this long after its Run failed, and at
	// once after it returned while the pool still wants it: a pod started before the operator
	// provisioned the consumer heals by itself. Zero runs each worker once and leaves the slot
	// stopped after a failure, for a caller that treats one as fatal.
	RetryAfter time.Duration
	// OnError, when set, receives every failure of a worker's Run.
	OnError func(slot int, err error)
}

// Pool runs a number of Workers in this process, each on its own goroutine, and resizes them
// as replicas of the inference pool would be: `freightcast infer --worker` runs a fixed number,
// local mode as many as its autoscaler asks for.
type Pool struct {
	cfg    PoolConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running []context.CancelFunc // one per slot, in slot order
}

// NewPool returns an empty pool whose workers run until ctx ends (or Resize or Stop stops them).
func NewPool(ctx context.Context, cfg PoolConfig) (*Pool, error) {
	if cfg.New == nil {
		return nil, errors.New("worker: a pool needs New")
	}
	p := &Pool{cfg: cfg}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p, nil
}

// Size is the number of workers running.
func (p *Pool) Size() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// Resize starts or stops workers until n run. A stopped worker drains: it finishes and
// acknowledges what it holds, as an inference pod does on SIGTERM. When a new worker cannot be
// built, the ones started before it keep running and the error is returned.
func (p *Pool) Resize(n int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ctx.Err(); err != nil && n > len(p.running) {
		return errors.New("worker: the pool is stopped")
	}
	for len(p.running) < n {
		slot := len(p.running)
		w, err := p.cfg.New(slot)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(p.ctx)
		p.running = append(p.running, cancel)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.run(ctx, slot, w)
		}()
	}
	for len(p.running) > n {
		last := len(p.running) - 1
		p.running[last]()
		p.running = p.running[:last]
	}
	return nil
}

// run runs one slot's worker until ctx ends; without RetryAfter, only once.
func (p *Pool) run(ctx context.Context, slot int, w *Worker) {
	for {
		err := w.Run(ctx)
		if err != nil && p.cfg.OnError != nil {
			p.cfg.OnError(slot, err)
		}
		if p.cfg.RetryAfter <= 0 || ctx.Err() != nil {
			return
		}
		if err == nil {
			continue // the iterator closed under a live context: pull again
		}
		timer := time.NewTimer(p.cfg.RetryAfter)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Stop stops every worker and waits until each has drained. The pool cannot grow again.
func (p *Pool) Stop() {
	p.mu.Lock()
	p.cancel()
	p.running = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// Wait waits until every worker has returned: after Stop, or once the pool's context ended.
func (p *Pool) Wait() { p.wg.Wait() }
