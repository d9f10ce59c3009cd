package psrp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/psrp/internal/wire"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

var (
	// cmdletRE: Verb-Noun, letters and digits, as Exchange's and Windows'
	// cmdlets are named. Anything else (paths, script text) is refused here.
	cmdletRE = lazyre.New(`^[A-Za-z]+-[A-Za-z0-9]+$`)
	paramRE  = lazyre.New(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)
)

// Run implements executors.Executor: one cmdlet with its parameters on host.
func (e *Executor) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	out := executors.Output{Host: host}
	start := time.Now()
	defer func() { out.Duration = time.Since(start) }()
	fail := func(err error) (executors.Output, error) {
		out.Duration = time.Since(start)
		return out, fmt.Errorf("psrp %s: %s: %w", host, a.Cmdlet, err)
	}
	if a.Script != "" || a.Check != "" {
		return out, fmt.Errorf("psrp %s: step %q: %w: %s endpoints take cmdlet steps (cmdlet: with args:), not scripts or checks",
			host, a.Step, executors.ErrUnsupported, e.kind)
	}
	params, err := validate(a)
	if err != nil {
		return fail(err)
	}
	c, ok := e.byHost[host]
	if !ok {
		return fail(fmt.Errorf("host is not an endpoint of target %q", e.name))
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fail(errors.New("executor is closed"))
	}
	e.runs.Add(1)
	e.mu.Unlock()
	defer e.runs.Done()

	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return fail(ctxError(ctx, "waiting for a free pipeline slot"))
	}
	defer func() { <-c.slots }()

	// A pool that fails before the server accepted our pipeline is reopened
	// once; after acceptance the step is never sent twice (it may be a relief).
	for attempt := 0; ; attempt++ {
		p, err := c.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctxError(ctx, "opening runspace pool"))
			}
			return fail(err)
		}
		res, accepted, err := c.pipeline(ctx, p, a.Cmdlet, params, a.Select)
		c.release()
		if err != nil && !accepted && attempt == 0 && retryable(ctx, err) {
			p.broken.Store(true)
			e.log.Info("reopening runspace pool", "host", host, "err", err)
			continue
		}
		out.Stdout, out.Stderr = res.stdout, res.stderr
		if err != nil {
			if !accepted && retryable(ctx, err) {
				p.broken.Store(true)
				err = fmt.Errorf("runspace pool reopened once and still failing: %w", err)
			}
			if len(res.failures) > 0 {
				out.ExitCode = 1
			}
			return fail(err)
		}
		return out, nil
	}
}

// retryable tells failures of the pool (transport, faults) from the step's own.
func retryable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, executors.ErrAuth) && !errors.Is(err, errTooLarge)
}

var errTooLarge = errors.New("parameters too large")

func ctxError(ctx context.Context, doing string) error {
	return fmt.Errorf("%w %s (%w)", executors.ErrTimeout, doing, ctx.Err())
}

// validate checks the cmdlet name and maps the arguments to wire parameters.
func validate(a executors.Action) ([]wire.Param, error) {
	if a.Cmdlet == "" {
		return nil, fmt.Errorf("step %q: %w: no cmdlet", a.Step, executors.ErrUnsupported)
	}
	if !cmdletRE().MatchString(a.Cmdlet) {
		return nil, fmt.Errorf("%q is not a cmdlet name (Verb-Noun, letters and digits)", a.Cmdlet)
	}
	params := make([]wire.Param, 0, len(a.Args))
	for _, arg := range a.Args {
		if !paramRE().MatchString(arg.Name) {
			return nil, fmt.Errorf("%q is not a parameter name", arg.Name)
		}
		v, err := argValue(arg.Value, 0)
		if err != nil {
			return nil, fmt.Errorf("-%s: %w", arg.Name, err)
		}
		// A switch travels as -Name:$true, which binds the same as -Name.
		params = append(params, wire.Param{Name: arg.Name, Value: v})
	}
	return params, nil
}

func argValue(v any, depth int) (any, error) {
	if depth > 4 {
		return nil, errors.New("nested too deeply")
	}
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return x, nil
	case int:
		return int64(x), nil
	case time.Time:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			var err error
			if out[i], err = argValue(it, depth+1); err != nil {
				return nil, err
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("values of type %T cannot be passed", v)
	}
}

type result struct {
	stdout   []byte
	stderr   string
	failures []wire.Failure
}

// pipeline runs one command on pool p. accepted reports whether the server took
// the pipeline (after that a failure is the step's, not the pool's).
func (c *conn) pipeline(ctx context.Context, p *pool, cmdlet string, params []wire.Param, sel []string) (res result, accepted bool, err error) {
	pid, err := wire.NewGUID()
	if err != nil {
		return res, false, err
	}
	msg := wire.Message{Destination: wire.ToServer, Type: wire.CreatePipeline, RPID: p.rpid, PID: pid,
		Data: wire.CreatePipelineData(cmdlet, params)}.Encode()
	if len(msg) > maxFragment {
		// Refused, never cut: one fragment is all a Command carries.
		return res, false, fmt.Errorf("%w: %d bytes encoded, limit %d", errTooLarge, len(msg), maxFragment)
	}
	cmdID := pid.String()
	if _, err := c.post(ctx, commandRequest(c, p.shellID, cmdID, wire.Fragment(p.objects.Add(1), msg, maxFragment))); err != nil {
		if ctx.Err() != nil {
			return res, false, ctxError(ctx, "starting the pipeline")
		}
		return res, false, fmt.Errorf("starting the pipeline: %w", err)
	}

	var (
		items    []any
		rowBytes int
		stderr   strings.Builder
		state    int64 = -1
		reason   *wire.Failure
		asm      = wire.Assembler{MaxBytes: psobj.MaxCLIXMLBytes}
	)
	finish := func(err error) (result, bool, error) {
		res.stderr = stderr.String()
		if out, jerr := psobj.JSON(items, sel); jerr == nil {
			res.stdout = out
		} else if err == nil {
			err = jerr
		}
		return res, true, err
	}
	// stop asks the server to stop the pipeline and releases it.
	stop := func() {
		sctx, cancel := c.cleanupCtx(ctx)
		defer cancel()
		if _, err := c.post(sctx, signalRequest(c, p.shellID, cmdID, signalStop)); err != nil {
			c.e.log.Warn("stopping pipeline", "host", c.host, "command", cmdID, "err", err)
		}
		c.terminate(ctx, p, cmdID)
	}

	for done := false; !done; {
		body, err := c.post(ctx, receiveRequest(c, p.shellID, cmdID))
		var f *FaultError
		switch {
		case ctx.Err() != nil:
			stop()
			return finish(ctxError(ctx, "waiting for output; pipeline stopped"))
		case errors.As(err, &f) && f.Local() == "TimedOut":
			continue // nothing within OperationTimeout: poll again
		case err != nil:
			p.broken.Store(true) // the pool's transport failed mid-pipeline
			stop()
			return finish(fmt.Errorf("reading output: %w", err))
		}
		chunks, cmdDone, err := parseReceive(body)
		if err != nil {
			stop()
			return finish(err)
		}
		done = cmdDone
		for _, ch := range chunks {
			msgs, err := asm.Feed(ch)
			if err != nil {
				stop()
				return finish(fmt.Errorf("reading output: %w", err))
			}
			for _, m := range msgs {
				switch m.Type {
				case wire.PipelineOutput:
					vals, err := psobj.Decode(m.Data)
					if err != nil {
						stop()
						return finish(fmt.Errorf("output object: %w", err))
					}
					for _, v := range vals {
						b, _ := json.Marshal(psobj.Row(v, sel))
						if rowBytes += len(b) + 1; rowBytes > c.e.maxOut {
							stop()
							res.stderr = stderr.String()
							return res, true, fmt.Errorf("%w: more than %d bytes of rows; pipeline stopped", executors.ErrOutputTooBig, c.e.maxOut)
						}
						items = append(items, v)
					}
				case wire.ErrorRecord:
					f, err := wire.DecodeErrorRecord(m.Data)
					if err != nil {
						f = wire.Failure{Message: "unreadable error record: " + err.Error()}
					}
					res.failures = append(res.failures, f)
				case wire.WarningRecord:
					text, err := wire.DecodeInformationalRecord(m.Data)
					if err != nil {
						text = "unreadable warning record: " + err.Error()
					}
					if stderr.Len() < c.e.maxOut {
						stderr.WriteString("WARNING: " + text + "\n")
					}
				case wire.PipelineState:
					s, r, err := wire.State(m.Data)
					if err != nil {
						stop()
						return finish(err)
					}
					state = s
					if r != nil {
						rf := wire.ReadFailure(r)
						reason = &rf
					}
					if s == wire.PipelineCompleted || s == wire.PipelineFailed || s == wire.PipelineStopped {
						done = true
					}
				case wire.RunspacePoolState:
					if s, _, err := wire.State(m.Data); err == nil && (s == wire.PoolBroken || s == wire.PoolClosed) {
						p.broken.Store(true)
					}
				case wire.PipelineHostCall, wire.RunspacePoolHostCall:
					stop()
					return finish(errors.New("the command asked for interactive input (a host call); pass -Confirm:$false or the missing parameters"))
				}
				// VERBOSE, DEBUG, PROGRESS and INFORMATION records are not kept.
			}
		}
	}
	c.terminate(ctx, p, cmdID)

	if len(res.failures) > 0 {
		return finish(fmt.Errorf("%w: %s", executors.ErrExit, describe(res.failures)))
	}
	switch state {
	case wire.PipelineCompleted:
		return finish(nil)
	case wire.PipelineFailed, wire.PipelineStopped:
		msg := "pipeline failed"
		if state == wire.PipelineStopped {
			msg = "pipeline was stopped by the server"
		}
		if reason != nil {
			msg += ": " + describe([]wire.Failure{*reason})
		}
		return finish(fmt.Errorf("%w: %s", executors.ErrExit, msg))
	default:
		return finish(errors.New("command ended without a pipeline state"))
	}
}

// terminate releases a finished command on the server, with its own deadline.
func (c *conn) terminate(ctx context.Context, p *pool, cmdID string) {
	ctx, cancel := c.cleanupCtx(ctx)
	defer cancel()
	if _, err := c.post(ctx, signalRequest(c, p.shellID, cmdID, signalTerminate)); err != nil {
		c.e.log.Warn("releasing pipeline", "host", c.host, "command", cmdID, "err", err)
	}
}

// describe renders error records: message, category and target of each.
func describe(fs []wire.Failure) string {
	parts := make([]string, 0, len(fs))
	for _, f := range fs {
		s := f.Message
		var tags []string
		if f.Category != "" {
			tags = append(tags, "category "+f.Category)
		}
		if f.Target != "" {
			tags = append(tags, fmt.Sprintf("target %q", f.Target))
		}
		if len(tags) > 0 {
			s += " (" + strings.Join(tags, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
