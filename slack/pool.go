package slack

import (
	"context"
	"errors"
	"sync"
)

var errStopped = errors.New("slack adapter is shutting down")

// pool is the bounded worker pool behind the one intake path: a fixed number of
// workers read acknowledged requests from a bounded queue. submit blocks while the
// queue is full (back-pressure instead of dropping an acknowledged request) and
// fails once the pool is closed.
type pool struct {
	mu     sync.RWMutex
	closed bool
	jobs   chan job
}

func newPool(queue int) *pool { return &pool{jobs: make(chan job, queue)} }

func (p *pool) submit(j job) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errStopped
	}
	p.jobs <- j // workers drain until close, so this cannot block forever
	return nil
}

func (p *pool) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}

// close stops intake; workers finish what is queued, then return.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
}

// run starts n workers and returns a wait function.
func (p *pool) run(ctx context.Context, n int, do func(context.Context, job)) (wait func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for j := range p.jobs {
				do(ctx, j)
			}
		})
	}
	return wg.Wait
}
