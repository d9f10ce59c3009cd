package winrm

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"

	mwinrm "github.com/masterzen/winrm"

	"github.com/ndrbot/ndrbot/executors"
	"github.com/ndrbot/ndrbot/executors/psobj"
	"github.com/ndrbot/ndrbot/executors/wsman"
	"github.com/ndrbot/ndrbot/internal/lazyre"
)

// MaxCommandLine is the longest command line Run sends. WinRS starts
// powershell.exe through cmd.exe, which stops at 8191 characters; the base64 of
// -EncodedCommand must fit below that with room to spare.
const MaxCommandLine = 8000

// Run implements executors.Executor: it runs the action's script on host in a
// fresh shell and closes the shell again, also after a timeout or cancel.
// Output.Duration covers the whole call, waiting for a shell slot included;
// Output.ExitCode is -1 unless the command finished.
func (e *Executor) Run(ctx context.Context, host string, a executors.Action) (executors.Output, error) {
	out := executors.Output{Host: host, ExitCode: -1}
	fail := func(err error) (executors.Output, error) {
		if a.Step == "" {
			return out, fmt.Errorf("winrm %s: %w", host, err)
		}
		return out, fmt.Errorf("winrm %s: %s: %w", host, a.Step, err)
	}
	ep, ok := e.byHost[host]
	if !ok {
		return fail(fmt.Errorf("not an endpoint of target %q (%s)", e.name, strings.Join(e.hosts, ", ")))
	}
	script, data, err := scriptFor(a)
	if err != nil {
		return fail(err)
	}
	cmdline, err := CommandLine(e.preamble, script, data)
	if err != nil {
		return fail(err)
	}
	if a.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.Timeout)
		defer cancel()
	}

	start := time.Now()
	if err := ep.acquire(ctx); err != nil {
		out.Duration = time.Since(start)
		return fail(fmt.Errorf("waiting for a free shell slot (max_concurrency %d): %w", cap(ep.slots), ctxError(err, out.Duration)))
	}
	defer ep.release() // after the shell is closed: the cap counts shells on the server

	res, err := e.execute(ctx, ep, cmdline)
	out.Duration = time.Since(start)
	out.Stdout, out.Stderr, out.Truncated = res.stdout, res.stderr, res.truncated
	if res.done {
		out.ExitCode = res.exit
	}
	switch {
	case res.truncated:
		return fail(fmt.Errorf("%w: %s is larger than max_output_bytes (%d bytes)",
			executors.ErrOutputTooBig, res.overflow, e.maxOut))
	case err != nil && ctx.Err() != nil:
		return fail(ctxError(ctx.Err(), out.Duration))
	case err != nil:
		return fail(err)
	case res.exit != 0 || res.stderr != "":
		// PowerShell reports errors on stderr; exit 0 with error records is a
		// failure too (a native command's error, Write-Error under Continue, …).
		return fail(&exitError{code: res.exit, stderr: res.stderr})
	}
	if a.Cmdlet != "" {
		items, err := psobj.Decode(out.Stdout)
		if err != nil {
			return fail(fmt.Errorf("%s: output is not CLIXML: %w", a.Cmdlet, err))
		}
		// cmdletScript serializes the output as one array.
		if len(items) == 1 {
			if arr, ok := items[0].(*psobj.Object); ok && arr.Is("Object[]") {
				items = arr.List
			}
		}
		if out.Stdout, err = psobj.JSON(items, a.Select); err != nil {
			return fail(fmt.Errorf("%s: %w", a.Cmdlet, err))
		}
	}
	return out, nil
}

// cmdletScript runs a cmdlet step in a plain shell. The cmdlet's name and its
// arguments come from $P, so they are data here as on a PSRP endpoint; the output
// is serialized the way remoting serializes it (objects one level deep), so the
// rows are mapped by psobj exactly as for the exchange kind. Keys start with '@',
// which no playbook parameter name can. Warnings are silenced: a plain shell
// prints them into stdout, among the CLIXML.
const cmdletScript = `$WarningPreference = 'SilentlyContinue'
$ndrArgs = @{}
foreach ($ndrArg in $P.'@args') { $ndrArgs[$ndrArg.n] = $ndrArg.v }
$ndrOut = @(& $P.'@cmdlet' @ndrArgs)
[System.Management.Automation.PSSerializer]::Serialize($ndrOut, 2)`

var cmdletNameRE = lazyre.New(`^[A-Z][A-Za-z]*-[A-Za-z][A-Za-z0-9]*$`)

// scriptFor returns the script and the data blob of an action: its own script,
// or, for a cmdlet, the fixed cmdletScript with the cmdlet and its arguments as
// data.
func scriptFor(a executors.Action) (string, map[string]any, error) {
	if a.Cmdlet == "" {
		return a.Script, a.Params, nil
	}
	if !cmdletNameRE().MatchString(a.Cmdlet) {
		return "", nil, fmt.Errorf("%q is not a cmdlet name", a.Cmdlet)
	}
	data := make(map[string]any, len(a.Params)+2)
	maps.Copy(data, a.Params)
	args := make([]map[string]any, 0, len(a.Args))
	for _, arg := range a.Args {
		v := arg.Value
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		args = append(args, map[string]any{"n": arg.Name, "v": v})
	}
	data["@cmdlet"], data["@args"] = a.Cmdlet, args
	return cmdletScript, data, nil
}

// result is what execute collected from the remote command.
type result struct {
	stdout    []byte
	stderr    string // cleaned of CLIXML
	exit      int
	done      bool   // the command reached CommandState/Done
	truncated bool   // a stream outgrew max_output_bytes
	overflow  string // which stream
}

// execute opens a shell, runs cmdline in it, collects the output and closes the
// shell. The library drives Receive in its own goroutine: when ctx ends it sends
// the Signal itself, and transport gives that Signal and our Delete a fresh
// deadline.
func (e *Executor) execute(ctx context.Context, ep *endpoint, cmdline string) (result, error) {
	var res result
	ctx, stop := context.WithCancel(ctx) // stop ends the command when its output overflows
	defer stop()

	pw, err := e.password()
	if err != nil {
		return res, err
	}
	tr := &transport{ctx: ctx, cleanup: e.cleanup, sender: ep.sender(e.user, pw)}
	params := e.params // a copy per run: the decorator carries this run's context
	params.TransportDecorator = func() mwinrm.Transporter { return tr }
	client, err := mwinrm.NewClientWithParameters(ep.wep, e.user, pw.Reveal(), &params)
	if err != nil {
		return res, err
	}

	shellID, err := openShell(client, tr, ep.url, &params)
	if err != nil {
		return res, fmt.Errorf("opening shell: %w", err)
	}
	shell := client.NewShell(shellID)
	defer func() {
		if err := shell.Close(); err != nil {
			e.log.Warn("winrm: shell not deleted; it stays open on the server until its idle timeout",
				"target", e.name, "host", ep.host, "shell", shellID, "err", err)
		}
	}()

	cmd, err := shell.ExecuteWithContext(ctx, cmdline)
	if err != nil {
		return res, fmt.Errorf("starting command: %w", err)
	}
	stdout := &capBuffer{max: e.maxOut, onOver: stop}
	stderr := &capBuffer{max: e.maxOut, onOver: stop}
	var (
		wg             sync.WaitGroup
		outErr, errErr error
	)
	// Both pipes must be drained to the end, or the library's goroutine blocks.
	wg.Go(func() { _, outErr = io.Copy(stdout, cmd.Stdout) })
	wg.Go(func() { _, errErr = io.Copy(stderr, cmd.Stderr) })
	cmd.Wait()
	wg.Wait()
	// Signal even after a normal end, as WinRS and pywinrm do: it releases the
	// command on the server. After a timeout this repeats the library's Signal.
	if err := cmd.Close(); err != nil {
		e.log.Debug("winrm: signal failed", "target", e.name, "host", ep.host, "shell", shellID, "err", err)
	}

	res.stdout = stdout.buf.Bytes()
	res.stderr = cleanStderr(stderr.buf.Bytes())
	switch {
	case stdout.over:
		res.truncated, res.overflow = true, "stdout"
	case stderr.over:
		res.truncated, res.overflow = true, "stderr"
	}
	if err := cmp.Or(outErr, errErr); err != nil { // both pipes carry the same error
		return res, fmt.Errorf("receiving output: %w", err)
	}
	res.exit, res.done = cmd.ExitCode(), true
	return res, nil
}

// openShell creates the shell by hand rather than with Client.CreateShell, which
// hides the shell id we need for logging and does not notice a reply without one.
func openShell(c *mwinrm.Client, tr *transport, url string, params *mwinrm.Parameters) (string, error) {
	req := mwinrm.NewOpenShellRequest(url, params)
	defer req.Free()
	body, err := tr.Post(c, req)
	if err != nil {
		return "", err
	}
	id, err := mwinrm.ParseOpenShellResponse(body)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("reply carries no ShellId: %s", wsman.Snippet(body))
	}
	return id, nil
}

func (ep *endpoint) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case ep.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ep *endpoint) release() { <-ep.slots }

// ctxError turns the end of a run's context into the error the engine classifies.
func ctxError(err error, after time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w after %s: %w", executors.ErrTimeout, after.Round(100*time.Millisecond), err)
	}
	return err
}

// exitError is a script that failed: a non-zero exit or error records on stderr.
type exitError struct {
	code   int
	stderr string
}

func (e *exitError) Error() string {
	head := headLines(e.stderr, 3)
	switch {
	case e.code == 0:
		return "exit 0 with errors: " + head
	case head == "":
		return fmt.Sprintf("exit %d", e.code)
	default:
		return fmt.Sprintf("exit %d: %s", e.code, head)
	}
}

func (e *exitError) Unwrap() error { return executors.ErrExit }

// capBuffer keeps the first max bytes of a stream. It never fails a write — the
// library's reader must be drained — it drops the excess, remembers that it did
// and calls onOver once so the command is stopped rather than streamed to the end.
type capBuffer struct {
	buf    bytes.Buffer
	max    int
	over   bool
	onOver func()
}

func (b *capBuffer) Write(p []byte) (int, error) {
	room := b.max - b.buf.Len()
	if len(p) <= room {
		return b.buf.Write(p)
	}
	b.buf.Write(p[:max(room, 0)])
	if !b.over {
		b.over = true
		b.onOver()
	}
	return len(p), nil
}

// paramsVar is the PowerShell variable the prelude fills with the parameters.
const paramsVar = "$P"

// Script is the PowerShell Run executes: the prelude, the target's preamble, then
// the action's script. The parameters enter only as a base64 literal, whose
// alphabet (A–Z a–z 0–9 + / =) cannot end a quoted PowerShell string, so no value
// can become code. $ErrorActionPreference is set first so that a broken literal
// fails the run instead of leaving $P empty.
func Script(preamble, script string, params map[string]any) (string, error) {
	if params == nil {
		params = map[string]any{} // an object, never $null, for $P.name lookups
	}
	blob, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("encoding parameters: %w", err)
	}
	var b strings.Builder
	b.WriteString("$ErrorActionPreference = 'Stop'\n")
	b.WriteString(paramsVar + " = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('")
	b.WriteString(base64.StdEncoding.EncodeToString(blob))
	b.WriteString("')) | ConvertFrom-Json\n")
	if preamble = strings.TrimSpace(preamble); preamble != "" {
		b.WriteString(preamble + "\n")
	}
	b.WriteString(script)
	return b.String(), nil
}

// CommandLine is the command Run starts on the server:
// `powershell.exe -EncodedCommand <base64 of the UTF-16LE Script>`. A command line
// longer than MaxCommandLine is refused, never cut.
func CommandLine(preamble, script string, params map[string]any) (string, error) {
	s, err := Script(preamble, script, params)
	if err != nil {
		return "", err
	}
	line := mwinrm.Powershell(s)
	if line == "" {
		return "", errors.New("cannot encode the script as UTF-16")
	}
	if len(line) > MaxCommandLine {
		return "", fmt.Errorf("%w: the encoded command is %d characters, over the %d powershell.exe accepts; shorten the script or its parameters",
			executors.ErrUnsupported, len(line), MaxCommandLine)
	}
	return line, nil
}
