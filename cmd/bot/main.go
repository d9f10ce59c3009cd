// Command ndrbot (go build -o ndrbot ./cmd/bot) is a chat-ops bot for mail
// incident response, and the same diagnosis engine from a terminal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"syscall"

	"golang.org/x/term"
)

// Exit codes of `ndrbot diagnose` (and of every command: 2 is a usage or config error).
const (
	exitHealthy    = 0
	exitFindings   = 1
	exitUsage      = 2
	exitEscalation = 3
)

func main() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(shortLivedGC)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{
		in: os.Stdin, out: os.Stdout, err: os.Stderr,
		interactive: term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())),
		getenv:      os.LookupEnv,
		environ:     os.Environ,
	})
	stop()
	os.Exit(code)
}

// A command other than serve is over in a fraction of a second with a heap of
// a few megabytes: collecting at the default pace (each time the heap doubles)
// spent a third of `ndrbot diagnose`'s CPU on the collector. serve, which lives,
// goes back to the default (longLivedGC). GOGC in the environment wins.
const (
	shortLivedGC = 400
	longLivedGC  = 100
)

// stdio is the process's outside world, injectable for tests.
type stdio struct {
	in          io.Reader
	out, err    io.Writer
	interactive bool
	getenv      func(string) (string, bool)
	environ     func() []string
	// osUser is the operating-system account running ndrbot, which the terminal
	// records as requester and approver; nil asks the system (currentOSUser).
	// Tests give a fixed account so their output does not depend on who runs them.
	osUser func() (*user.User, error)
	// dial, when set, is how executors reach remote PowerShell endpoints (tests
	// give the fakes real-looking names); nil is the system's resolver and dialer.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// reload, when set, stands for SIGHUP in `ndrbot serve` (tests send on it);
	// nil: serve listens for the signal itself.
	reload <-chan os.Signal
}

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func run(ctx context.Context, args []string, io stdio) int {
	root := newRoot(io)
	root.SetArgs(args)
	root.SetIn(io.in)
	root.SetOut(io.out)
	root.SetErr(io.err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitHealthy
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(io.err, "error:", ee.err)
		}
		return ee.code
	}
	// cobra's own errors: unknown command or flag.
	fmt.Fprintln(io.err, "error:", err)
	return exitUsage
}
