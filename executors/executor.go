// Package executors is the contract between the playbook engine and the things that
// touch real systems: WinRM (PowerShell), network probes, Microsoft Graph and the lab.
package executors

import (
	"context"
	"errors"
	"time"
)

// Action is one step or relief to run on one host. Script and Check come from the
// playbook and are fixed text; Params are the validated, typed user parameters and
// computed arguments. An executor must hand Params to the remote side as data
// (e.g. a base64 JSON blob), never by splicing them into Script.
type Action struct {
	// Step is the step or relief id, used in errors and logs.
	Step string
	// Script is PowerShell for winrm and lab executors.
	Script string
	// Check names a built-in check for executors without scripts
	// (probe: "smtp", "tcp", "mx"; graph: "service-health", …).
	Check string
	// Params are handed to the script as data.
	Params map[string]any
	// Cmdlet, when set, names one PowerShell command to run with the named
	// arguments in Args ("Get-Queue"). PowerShell-capable targets (exchange and jea
	// over PSRP, winrm, the lab) run it as a command with parameters, never as
	// script text, so it also works on no-language endpoints. Exactly one of
	// Script, Check and Cmdlet is set.
	Cmdlet string
	// Args are the cmdlet's parameters in the playbook's order, as typed values
	// (string, int64, float64, bool, time.Time, nil, []any). A parameter whose
	// value is true and which takes no value in the playbook is a switch.
	Args []Arg
	// Select lists the properties each output row keeps, in order; empty keeps all.
	Select []string
	// Timeout bounds the whole action; the executor may also apply its own caps.
	Timeout time.Duration
}

// Arg is one named cmdlet parameter.
type Arg struct {
	Name  string
	Value any
}

// Output is what one host returned. Stdout is expected to be JSON (an object or an
// array of objects); the engine normalises it.
type Output struct {
	Host      string
	Stdout    []byte
	Stderr    string
	ExitCode  int
	Truncated bool
	Duration  time.Duration
}

// Executor runs actions against the hosts of one configured target group.
type Executor interface {
	// Kind is the executor's name for audit and display ("winrm", "probe", …).
	Kind() string
	// Hosts lists the endpoints a step against this target runs on, in config order.
	Hosts() []string
	// Run executes the action on one host. A non-nil error means the action did not
	// produce a usable result; Output may still carry partial stderr/exit code.
	Run(ctx context.Context, host string, a Action) (Output, error)
}

// Sentinel errors executors wrap so the engine can classify a failure.
var (
	ErrTimeout      = errors.New("timed out")
	ErrUnreachable  = errors.New("unreachable")
	ErrAuth         = errors.New("authentication failed")
	ErrExit         = errors.New("non-zero exit")
	ErrOutputTooBig = errors.New("output exceeds cap")
	ErrUnsupported  = errors.New("unsupported action")
	// ErrNotConfigured: the target exists but is not set up yet (e.g. no Graph app
	// registration); steps on it are skipped with a note rather than failed.
	ErrNotConfigured = errors.New("not configured")
)

// NotConfigured marks err as a target that is not set up yet, keeping its message.
func NotConfigured(err error) error { return notConfigured{err} }

type notConfigured struct{ err error }

func (e notConfigured) Error() string   { return e.err.Error() }
func (e notConfigured) Unwrap() []error { return []error{ErrNotConfigured, e.err} }
