// Package playbooks holds the declarative incident playbooks: the model, the YAML
// loader and linter, the built-in playbooks (embedded) and the engine that runs them.
package playbooks

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/internal/lazyre"
	"github.com/ndrbot/ndrbot/playbooks/params"
)

// Playbook is one incident family's diagnosis, decision rules, reliefs and
// escalation criteria.
type Playbook struct {
	ID      string
	Title   string
	Summary string
	// Matches are the NDR codes and phrases that resolve to this playbook
	// ("5.5.4", "4.4.0", "service unavailable").
	Matches []string
	Params  params.Set
	// ParamOrder keeps the file's order for help and display.
	ParamOrder []string
	Steps      []*Step
	Rules      []*Rule
	Reliefs    []*Relief
	Escalate   []*Escalation

	// Source is where the playbook came from: a file path or "builtin:<file>".
	Source string
	// Version is a digest of the source bytes: an approval is bound to it.
	Version string

	// pending, when set, is the part of the check an Index deferred (rules,
	// reliefs, escalations): see await.
	pending *pendingCheck
	// builtin: the playbook is one of the binary's own, indexed by an Index.
	builtin bool
}

// await waits until the playbook is wholly checked and compiled, and returns
// the problems found. A playbook from Load is; one an Index chose is once the
// second phase of its check is done (deferredCheck).
func (p *Playbook) await(ctx context.Context) error {
	if p.pending == nil {
		return nil
	}
	select {
	case <-p.pending.done:
		return p.pending.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Step is one read-only diagnostic step.
type Step struct {
	ID     string
	Title  string
	Target string
	// Exactly one of PowerShell, Check and Cmdlet is set.
	PowerShell string
	Check      string
	Cmdlet     *Cmdlet
	Needs      []string
	// When skips the step unless it holds (evaluated after Needs finished).
	When string
	// With computes arguments handed to the script as data, on top of the params.
	With    []Arg
	Timeout time.Duration
	// RunOn is "all" (every host of the target) or "one" (the first host that
	// answers), for organisation-wide cmdlets such as Get-Mailbox.
	RunOn string
	Line  int

	when *vm.Program
	// checkLine is the line of check:, where a problem with the check is shown.
	checkLine int
	// readsFindings is set when an expression of the step calls found(),
	// proposed(), done() or failed(): it then starts only once the rules its
	// needs complete have been evaluated (Engine.runSteps).
	readsFindings bool
}

// Cmdlet is one PowerShell command with named, typed arguments: what runs on a
// no-language endpoint (Exchange's /PowerShell, JEA), and the form every
// PowerShell-capable target kind accepts. No argument is ever text spliced into
// a command: each is a literal from the playbook or an expression's value.
type Cmdlet struct {
	Name string
	// ForEach, when set, is a list expression: the cmdlet runs once per item on
	// each host, the item visible to its args as item (Retry-Queue per queue).
	ForEach string
	foreach *vm.Program
	Args    []CmdletArg
	// Select names the properties each row keeps, in order (all when empty).
	Select []string
	// Where, when set, keeps only the rows for which it holds (the row is it):
	// filtering on the bot's side, as a no-language endpoint cannot filter with
	// a script block, and an OPATH -Filter would splice text into a string.
	Where string
	where *vm.Program
	// Derive adds computed columns to every row (it), in order, after where:
	// a classification written once and read by every rule (a queue's Kind,
	// its LastError's class).
	Derive []Arg
	Line   int
	// selectLine is the line of select:.
	selectLine int
}

// CmdletArg is one named parameter: a YAML literal (Value) or, when the whole
// value is "{{ expression }}", the expression's value at run time (Expr), which
// may read params, args (the step's with), steps, since and host. An expression
// that yields nothing (nil) leaves the parameter out.
type CmdletArg struct {
	Name  string
	Value any
	Expr  string
	Line  int
	prog  *vm.Program
}

// Text is the command as an admin reads it on an approval card: the cmdlet and
// its parameters, expressions shown as written.
func (c *Cmdlet) Text() string {
	var b strings.Builder
	if c.ForEach != "" {
		b.WriteString("foreach item in {{ " + c.ForEach + " }}: ")
	}
	b.WriteString(c.Name)
	for _, a := range c.Args {
		b.WriteString(" -")
		b.WriteString(a.Name)
		if on, isBool := a.Value.(bool); isBool && a.Expr == "" {
			if !on {
				b.WriteString(":$false")
			}
			continue
		}
		b.WriteByte(' ')
		if a.Expr != "" {
			b.WriteString("{{ " + a.Expr + " }}")
		} else {
			b.WriteString(literalText(a.Value))
		}
	}
	if c.Where != "" {
		b.WriteString(" | where {{ " + c.Where + " }}")
	}
	if len(c.Select) > 0 {
		b.WriteString(" | Select-Object " + strings.Join(c.Select, ", "))
	}
	return b.String()
}

// barewordRE matches what PowerShell reads as a plain string argument, shown
// without quotes (MSExchangeTransport, EX01\7, alice@contoso.com).
var barewordRE = lazyre.New(`^[A-Za-z0-9][A-Za-z0-9._@\\-]*$`)

func literalText(v any) string {
	switch x := v.(type) {
	case string:
		if barewordRE().MatchString(x) {
			return x
		}
		return "'" + strings.ReplaceAll(x, "'", "''") + "'"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = literalText(e)
		}
		return strings.Join(parts, ",")
	case bool:
		if x {
			return "$true"
		}
		return "$false"
	default:
		return display(v)
	}
}

// Arg is a named expression whose value reaches a script as data.
type Arg struct {
	Name string
	Expr string
	prog *vm.Program
}

// Rule turns step results into findings and proposals.
type Rule struct {
	ID string
	// Each, when set, is a list expression; When is then evaluated per element
	// bound to `it`, and a finding is produced for each match.
	Each     string
	When     string
	Severity incident.Severity
	Finding  string
	Evidence string
	Propose  string
	Line     int

	each     *vm.Program
	when     *vm.Program
	finding  template
	evidence template
	// reads are the steps the rule refers to: it is evaluated once they finished.
	reads []string
}

// Relief is an approved, state-changing action.
type Relief struct {
	ID         string
	Title      string
	Target     string
	PowerShell string
	Check      string
	Cmdlet     *Cmdlet
	With       []Arg
	// Preview is a read-only script (or PreviewCmdlet a read-only cmdlet) whose
	// output is shown before anyone approves: the current value that would change.
	Preview       string
	PreviewCmdlet *Cmdlet
	// Guard is read on each host right before the relief runs there: the relief
	// runs on that host only when the guard's condition holds for every row it
	// reads, so what was true at approval is checked again where it matters.
	Guard *Guard
	// Readback is read on each host right after the relief: its rows are the
	// relief's output (what the setting is now). A Set-* cmdlet returns nothing.
	Readback *Cmdlet
	// Gate holds a rolling relief between hosts: after each host but the last,
	// its steps are re-read until OK holds for the host just changed (host), or
	// the relief stops there and the later hosts are left untouched.
	Gate *Gate
	// Block, when its expression holds at proposal time, keeps the relief from
	// being offered at all, saying why (no other healthy server in the site).
	Block    *Block
	Risk     string
	Rollback string
	Approval incident.ApprovalPolicy
	// Cooldown forbids running the same relief on the same host again within it.
	Cooldown time.Duration
	Verify   *Verify
	Timeout  time.Duration
	Line     int

	checkLine int
}

// Gate is what a rolling relief waits for between hosts.
type Gate struct {
	Steps []string
	// OK decides on the re-read steps; host is the host just changed.
	OK string
	// Every is the pause between reads; Within bounds the wait for one host.
	Every, Within time.Duration
	Line          int

	ok *vm.Program
}

// Block is a condition under which a relief is not offered.
type Block struct {
	When   string
	Reason string
	Line   int

	when   *vm.Program
	reason template
}

// Guard is a relief's precondition, checked on each host at execution time.
type Guard struct {
	Cmdlet *Cmdlet
	// When must hold for every row (it); Refuse says why not, with it and host.
	When   string
	Refuse string
	Line   int

	when   *vm.Program
	refuse template
}

// Verify is the check that follows a relief after a wait.
type Verify struct {
	After time.Duration
	Steps []string
	// OK decides whether the relief worked, on the re-run step results.
	OK   string
	ok   *vm.Program
	Line int
}

// Escalation is a criterion that hands the incident to someone else.
type Escalation struct {
	ID     string
	When   string
	Reason string
	Owner  string
	Next   string
	Line   int

	when   *vm.Program
	reason template
}

// Step returns the step with the id, or nil.
func (p *Playbook) Step(id string) *Step {
	for _, s := range p.Steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Relief returns the relief with the id, or nil.
func (p *Playbook) Relief(id string) *Relief {
	for _, r := range p.Reliefs {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Targets lists the target groups the playbook uses, in first-use order.
func (p *Playbook) Targets() []string {
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, s := range p.Steps {
		add(s.Target)
	}
	for _, r := range p.Reliefs {
		add(r.Target)
	}
	return out
}

// matches reports whether a code or phrase the user typed names this playbook.
func (p *Playbook) matches(code string) bool { return matches(p.ID, p.Matches, code) }

// matches reports whether code names the playbook id or one of its matches.
func matches(id string, matches []string, code string) bool {
	code = strings.ToLower(strings.TrimSpace(code))
	if code == strings.ToLower(id) {
		return true
	}
	for _, m := range matches {
		if code == strings.ToLower(m) {
			return true
		}
	}
	return false
}

// Permission is one cmdlet a playbook calls and the parameters it passes: what
// the bot's account needs granted (Exchange RBAC for exchange targets, the JEA
// role capability for jea targets).
type Permission struct {
	Cmdlet string
	// Params are the parameter names passed, sorted.
	Params []string
	// Targets are the target groups it runs on, in first-use order.
	Targets []string
	// Changes is true when a relief calls it (a grant an admin may leave out).
	Changes bool
	// UsedBy names the steps, previews and reliefs that call it.
	UsedBy []string
}

// Permissions lists the cmdlets the playbook calls, read-only first, each with
// the union of the parameters passed to it.
func (p *Playbook) Permissions() []Permission {
	var out []Permission
	add := func(c *Cmdlet, target, user string, changes bool) {
		if c == nil {
			return
		}
		i := slices.IndexFunc(out, func(x Permission) bool { return x.Cmdlet == c.Name && x.Changes == changes })
		if i < 0 {
			out = append(out, Permission{Cmdlet: c.Name, Changes: changes})
			i = len(out) - 1
		}
		perm := &out[i]
		for _, a := range c.Args {
			if !slices.Contains(perm.Params, a.Name) {
				perm.Params = append(perm.Params, a.Name)
			}
		}
		slices.Sort(perm.Params)
		if !slices.Contains(perm.Targets, target) {
			perm.Targets = append(perm.Targets, target)
		}
		perm.UsedBy = append(perm.UsedBy, user)
	}
	for _, s := range p.Steps {
		add(s.Cmdlet, s.Target, "steps."+s.ID, false)
	}
	for _, r := range p.Reliefs {
		add(r.PreviewCmdlet, r.Target, "reliefs."+r.ID+".preview", false)
		if r.Guard != nil {
			add(r.Guard.Cmdlet, r.Target, "reliefs."+r.ID+".guard", false)
		}
		add(r.Readback, r.Target, "reliefs."+r.ID+".readback", false)
		add(r.Cmdlet, r.Target, "reliefs."+r.ID, true)
	}
	slices.SortStableFunc(out, func(a, b Permission) int {
		if a.Changes != b.Changes {
			if a.Changes {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Cmdlet, b.Cmdlet)
	})
	return out
}

// reliefIndex is the position of a relief in the playbook; past the end for one
// it does not have (a reloaded playbook dropped it).
func (p *Playbook) reliefIndex(id string) int {
	for i, r := range p.Reliefs {
		if r.ID == id {
			return i
		}
	}
	return len(p.Reliefs)
}
