package psrp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/masterzen/winrm/soap"

	"github.com/ndrbot/ndrbot/executors/psrp/internal/wire"
	"github.com/ndrbot/ndrbot/executors/wsman"
)

// post sends one request and returns the reply body, a fault as *FaultError.
func (c *conn) post(ctx context.Context, msg *soap.SoapMessage) (string, error) {
	body, err := c.sender.Send(ctx, msg)
	if err != nil {
		return "", err
	}
	return wsman.CheckReply(body)
}

// cleanupCtx is the fresh, short deadline of a Signal or Delete: it must reach
// the server even when the step's own context has ended.
func (c *conn) cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.e.cleanup)
}

// acquire returns the endpoint's open pool, opening it first if needed, and
// counts the caller as active until release.
func (c *conn) acquire(ctx context.Context) (*pool, error) {
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.lock }()
	if c.pool != nil && c.pool.broken.Load() {
		c.closeLocked(ctx)
	}
	if c.pool == nil {
		p, err := c.open(ctx)
		if err != nil {
			return nil, err
		}
		c.pool = p
		c.e.startJanitor()
	}
	c.active++
	return c.pool, nil
}

func (c *conn) release() {
	c.lock <- struct{}{}
	c.active--
	c.lastUsed = time.Now()
	<-c.lock
}

// open creates a shell whose creationXml carries SESSION_CAPABILITY and
// INIT_RUNSPACEPOOL, then reads the pool's stream until it says Opened
// ([MS-PSRP] 3.1.4.1, 3.1.5.3.1).
func (c *conn) open(ctx context.Context) (*pool, error) {
	rpid, err := wire.NewGUID()
	if err != nil {
		return nil, err
	}
	p := &pool{shellID: rpid.String(), rpid: rpid}
	// One runspace: steps on one endpoint share it one pipeline at a time on the
	// server side, which is what Exchange's per-user throttling expects anyway;
	// max_concurrency bounds the pipelines queued on it.
	maxRunspaces := int32(cap(c.slots))
	var creation []byte
	for _, m := range []wire.Message{
		{Destination: wire.ToServer, Type: wire.SessionCapability, RPID: rpid, Data: wire.SessionCapabilityData()},
		{Destination: wire.ToServer, Type: wire.InitRunspacePool, RPID: rpid, Data: wire.InitRunspacePoolData(1, maxRunspaces)},
	} {
		creation = append(creation, wire.Fragment(p.objects.Add(1), m.Encode(), maxFragment)...)
	}
	if _, err := c.post(ctx, createRequest(c, p.shellID, creation, "")); err != nil {
		return nil, fmt.Errorf("opening runspace pool: %w", err)
	}
	fail := func(err error) (*pool, error) {
		c.deleteShell(ctx, p)
		return nil, fmt.Errorf("opening runspace pool: %w", err)
	}
	asm := wire.Assembler{MaxBytes: 1 << 20}
	for range 20 {
		body, err := c.post(ctx, receiveRequest(c, p.shellID, ""))
		var f *FaultError
		if errors.As(err, &f) && f.Local() == "TimedOut" {
			continue
		}
		if err != nil {
			return fail(err)
		}
		chunks, _, err := parseReceive(body)
		if err != nil {
			return fail(err)
		}
		for _, ch := range chunks {
			msgs, err := asm.Feed(ch)
			if err != nil {
				return fail(err)
			}
			for _, m := range msgs {
				if m.Type != wire.RunspacePoolState {
					continue // SESSION_CAPABILITY, APPLICATION_PRIVATE_DATA: nothing we need
				}
				state, reason, err := wire.State(m.Data)
				if err != nil {
					return fail(err)
				}
				switch state {
				case wire.PoolOpened:
					return p, nil
				case wire.PoolBroken, wire.PoolClosed:
					msg := fmt.Sprintf("server says the pool is %s", map[int64]string{wire.PoolBroken: "Broken", wire.PoolClosed: "Closed"}[state])
					if reason != nil {
						msg += ": " + wire.ReadFailure(reason).Message
					}
					return fail(errors.New(msg))
				}
			}
		}
	}
	return fail(errors.New("the server never said the pool was Opened"))
}

// closeLocked deletes the pool; the caller holds c.lock.
func (c *conn) closeLocked(ctx context.Context) error {
	p := c.pool
	c.pool = nil
	if p == nil {
		return nil
	}
	return c.deleteShell(ctx, p)
}

func (c *conn) deleteShell(ctx context.Context, p *pool) error {
	ctx, cancel := c.cleanupCtx(ctx)
	defer cancel()
	_, err := c.post(ctx, deleteRequest(c, p.shellID))
	if err != nil && !p.broken.Load() {
		c.e.log.Warn("closing runspace pool", "host", c.host, "shell", p.shellID, "err", err)
		return fmt.Errorf("psrp %s: closing runspace pool: %w", c.host, err)
	}
	return nil
}

// closeIdle closes the pool if nobody used it for idle.
func (c *conn) closeIdle(now time.Time, idle time.Duration) {
	select {
	case c.lock <- struct{}{}:
	default:
		return // someone is opening or releasing: not idle
	}
	defer func() { <-c.lock }()
	if c.pool != nil && c.active == 0 && now.Sub(c.lastUsed) >= idle {
		_ = c.closeLocked(context.Background())
	}
}

// startJanitor starts the goroutine that closes idle pools, once.
func (e *Executor) startJanitor() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.janitorOn || e.closed {
		return
	}
	e.janitorOn = true
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		tick := time.NewTicker(min(max(e.idle/4, 10*time.Millisecond), 30*time.Second))
		defer tick.Stop()
		for {
			select {
			case <-e.closing:
				return
			case now := <-tick.C:
				for _, h := range e.hosts {
					e.byHost[h].closeIdle(now, e.idle)
				}
			}
		}
	}()
}

// Close closes every pool: new Runs are refused, Runs in flight get until ctx
// ends to finish, and then each pool is deleted with a short deadline of its own.
// The janitor goroutine has ended when Close returns.
func (e *Executor) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.closing)
	e.mu.Unlock()

	done := make(chan struct{})
	go func() {
		e.runs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Steps still running will fail once their pool is gone.
	}
	e.bg.Wait()
	var errs []error
	for _, h := range e.hosts {
		c := e.byHost[h]
		c.lock <- struct{}{}
		errs = append(errs, c.closeLocked(ctx))
		<-c.lock
		// Kept-alive connections each hold two goroutines of net/http.
		if ic, ok := c.sender.(interface{ CloseIdleConnections() }); ok {
			ic.CloseIdleConnections()
		}
	}
	for _, closeFn := range e.closers {
		closeFn()
	}
	return errors.Join(errs...)
}

// dropPool closes the pool now (benchmarks: a cold start per step).
func (c *conn) dropPool() error {
	c.lock <- struct{}{}
	defer func() { <-c.lock }()
	return c.closeLocked(context.Background())
}
