package executors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"

	"github.com/ndrbot/ndrbot/config"
)

// Kind describes one target kind (targets.X.kind): what a step on it may run, the
// checks and cmdlets it knows with their parameters and the fields of the rows
// they return, and how an executor of the kind is built. Each executor package
// exports its own (probe.Describe()); one list in executors/registry collects
// them, and the playbook linter, the target wiring and the configuration read
// that list, so a new kind is a new package and one line there.
type Kind struct {
	// Name is the kind as configured: "exchange", "probe", …
	Name string
	// Config is the kind's share of the configuration: its targets' defaults,
	// the keys they read and their validation. Its Name is the kind's.
	Config config.KindSpec
	// Scripts: steps may run PowerShell script text (a plain WinRM shell).
	Scripts bool
	// Cmdlets: steps may run one cmdlet with named arguments (Action.Cmdlet).
	Cmdlets bool
	// Commands describe the cmdlets the kind is known to run. The set is open:
	// a cmdlet not listed is whatever the account may run, and is not checked.
	Commands []Command
	// Checks are every built-in check of the kind (Action.Check): a check not
	// listed is unknown.
	Checks []Check
	// New builds the executor of one configured target of the kind. An error
	// wrapping ErrNotConfigured says the target is not set up yet: its steps are
	// skipped with the message. Nil: the kind has no executor of its own (lab
	// targets exist only in a lab run, which simulates every target).
	New func(name string, t config.Target, env Env) (Executor, error)
}

// Env is what the wiring hands every constructor.
type Env struct {
	Log *slog.Logger
	// Dial, when not nil, opens the connections of the kinds that take a dialer
	// (the PowerShell remoting kinds): a jump host, or a test's fake.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Retried, when not nil, is told of every request an executor sends again
	// after a transient answer (HTTP status, 0 for a dropped connection): the
	// REST kinds (graph, exo) call it, for the metrics.
	Retried func(kind string, status int)
}

// RetriedBy is env.Retried for one kind, or nil.
func (env Env) RetriedBy(kind string) func(status int) {
	if env.Retried == nil {
		return nil
	}
	return func(status int) { env.Retried(kind, status) }
}

// Check is one built-in check: the parameters it reads from Action.Params (the
// playbook's parameters merged with the step's with) and the fields of its rows.
type Check struct {
	Name string
	// Doc says in one line what it does.
	Doc    string
	Params []Param
	// OneOf lists groups of parameters of which at least one must be given
	// (dnsbl: ips or ip).
	OneOf [][]string
	// Fields are every field of every row the check returns (RowFields of its
	// result types), besides the Host the engine adds.
	Fields []string
}

// Command is one cmdlet or function as far as it is described: its parameters
// and the properties of the objects it writes. Descriptions rest on Microsoft
// Learn and on what the lab simulates; Source says which.
type Command struct {
	Name   string
	Params []Param
	// AllParams: Params are every parameter the command takes besides
	// PowerShell's common ones, so any other name is a mistake.
	AllParams bool
	// OneOf lists groups of parameters of which at least one must be given: the
	// mandatory parameter of each parameter set (Retry-Queue: Identity or Filter).
	OneOf [][]string
	// Fields are properties of the objects the command writes.
	Fields []string
	// AllFields: Fields are every property, so a select or a rule naming another
	// is a mistake. Otherwise the list is what is known to exist.
	AllFields bool
	// Source says where the description comes from.
	Source string
}

// Param is one parameter of a check or a cmdlet.
type Param struct {
	Name string
	// Type is what the value is, for people: string, int, bool, time, timespan,
	// unlimited (a number or Unlimited), list.
	Type     string
	Required bool
}

// UnlimitedSuffix is the field a cmdlet row carries beside a property whose value
// is Exchange's Unlimited (null in the row): the property's name with this suffix,
// true. executors/psobj writes it.
const UnlimitedSuffix = "IsUnlimited"

// CommonParams are PowerShell's common parameters (about_CommonParameters) and
// the risk-mitigation ones, which a command takes without describing them.
func CommonParams() []string {
	return []string{"Verbose", "Debug", "ErrorAction", "WarningAction", "InformationAction", "ProgressAction",
		"ErrorVariable", "WarningVariable", "InformationVariable", "OutVariable", "OutBuffer", "PipelineVariable",
		"Confirm", "WhatIf"}
}

// Kinds is the set of kinds a build knows.
type Kinds []Kind

// ErrNoConfig: a kind's description carries no configuration spec (or one
// named for another kind).
var ErrNoConfig = errors.New("kind has no configuration spec")

// Config lists the kinds' configuration specs, in order, for config.Load,
// Default, Validate and Print. A kind without its spec is an error wrapping
// ErrNoConfig: its targets would get no defaults and no validation.
func (ks Kinds) Config() (config.Kinds, error) {
	out := make(config.Kinds, 0, len(ks))
	for _, k := range ks {
		if k.Config.Name != k.Name {
			return nil, fmt.Errorf("%w: kind %q (executors.Kind.Config names %q)", ErrNoConfig, k.Name, k.Config.Name)
		}
		out = append(out, k.Config)
	}
	return out, nil
}

// Lookup returns the kind called name.
func (ks Kinds) Lookup(name string) (Kind, bool) {
	for _, k := range ks {
		if k.Name == name {
			return k, true
		}
	}
	return Kind{}, false
}

// Names lists the kinds, sorted.
func (ks Kinds) Names() []string {
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.Name)
	}
	slices.Sort(out)
	return out
}

// Check returns the check called name.
func (k Kind) Check(name string) (Check, bool) {
	for _, c := range k.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return Check{}, false
}

// CheckNames lists the kind's checks, sorted.
func (k Kind) CheckNames() []string {
	out := make([]string, 0, len(k.Checks))
	for _, c := range k.Checks {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

// Command returns the description of a cmdlet, matched as PowerShell matches
// command names: without regard to case.
func (k Kind) Command(name string) (Command, bool) {
	for _, c := range k.Commands {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Command{}, false
}

// Param finds the parameter an argument binds to as PowerShell binds it: the
// name without regard to case, or an unambiguous prefix of one. A common
// parameter binds too (found, with a zero Param). ambiguous lists the candidates
// of a prefix that fits several.
func (c Command) Param(arg string) (p Param, found bool, ambiguous []string) {
	names := make([]string, 0, len(c.Params))
	for _, p := range c.Params {
		if strings.EqualFold(p.Name, arg) {
			return p, true, nil
		}
		names = append(names, p.Name)
	}
	for _, n := range CommonParams() {
		if strings.EqualFold(n, arg) {
			return Param{Name: n}, true, nil
		}
	}
	var hits []Param
	for _, p := range c.Params {
		if len(arg) < len(p.Name) && strings.EqualFold(p.Name[:len(arg)], arg) {
			hits = append(hits, p)
		}
	}
	switch len(hits) {
	case 0:
		return Param{}, false, nil
	case 1:
		return hits[0], true, nil
	}
	for _, h := range hits {
		ambiguous = append(ambiguous, h.Name)
	}
	return Param{}, false, ambiguous
}

// ParamNames lists the parameters' names in their described order.
func ParamNames(ps []Param) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// RowFields lists the fields of rows of the given Go types as encoding/json
// writes them — the JSON name of each exported field, embedded structs
// flattened — sorted and without repeats: the Fields of a check whose rows are
// those types (a check that answers MXRecord rows or a DNSStatus lists both).
func RowFields(rows ...any) []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			switch {
			case name == "-" && !strings.Contains(tag, ","):
				continue
			case f.Anonymous && name == "":
				walk(f.Type)
				continue
			case !f.IsExported():
				continue
			case name == "":
				name = f.Name
			}
			out = append(out, name)
		}
	}
	for _, r := range rows {
		walk(reflect.TypeOf(r))
	}
	slices.Sort(out)
	return slices.Compact(out)
}
