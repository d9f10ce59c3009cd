package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"golang.org/x/sync/errgroup"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/executors/lab"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/backends"
)

type diagnoseFlags struct {
	lease   time.Duration
	lab     labFlags
	approve []string
	json    bool
	noInput bool
	ndrFile string
}

func newDiagnoseCmd(g *globals) *cobra.Command {
	f := &diagnoseFlags{}
	c := &cobra.Command{
		Use:   "diagnose CODE|PLAYBOOK [key=value…] | diagnose --ndr-file FILE [PLAYBOOK] [key=value…]",
		Short: "Run an incident playbook from the terminal",
		Long: `Resolves an NDR code (5.5.4, 4.4.0, …) or a playbook id, validates the parameters,
runs the read-only diagnostic steps, prints findings, proposed reliefs (the exact
command, hosts, risk, preview) and escalations. A relief runs only when approved:
on a terminal you are asked for each (y/N); otherwise pass --approve RELIEF.

With --ndr-file FILE (- for standard input) it starts from a bounce instead: the
.eml, or the text Outlook shows. It reads the status code, servers, recipient
domain and sender, picks the playbook that fits and fills its parameters
(key=value on the command line override or complete them). When several fit it
asks on a terminal, else lists them with the command that runs each (exit 2);
when none fits it names the closest (exit 2).

Exit codes: 0 healthy, 1 findings, 2 usage or configuration error, 3 escalation.

Lab scenarios (--lab): ` + strings.Join(lab.ScenarioNames(), ", ") + `.`,
		Example: `  ndrbot diagnose 5.5.4 --lab overloaded-queue
  ndrbot diagnose 5.5.4 --lab overloaded-queue --approve restart-transport
  ndrbot diagnose 5.5.4 sender=alice@contoso.com window=30m
  ndrbot diagnose ndr-5.5.4 --json > run.json
  ndrbot diagnose --ndr-file bounce.eml
  ndrbot diagnose --ndr-file - domain=fabrikam.com < bounce.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.ndrFile != "" {
				return nil
			}
			if err := cobra.MinimumNArgs(1)(cmd, args); err != nil {
				return usageErr("%v: give a CODE or PLAYBOOK, or a bounce with --ndr-file FILE", err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.diagnose(cmd.Context(), f, args)
		},
	}
	f.lab.register(c.Flags(), "run against a simulated organisation instead of real servers")
	c.Flags().StringSliceVar(&f.approve, "approve", nil, "approve this relief id without asking (repeatable)")
	c.Flags().BoolVar(&f.json, "json", false, "print the run as JSON for machines (no prompts, no progress)")
	c.Flags().BoolVar(&f.noInput, "no-input", false, "never prompt, even on a terminal")
	c.Flags().StringVar(&f.ndrFile, "ndr-file", "", "start from a bounce: the .eml or its text, - for standard input")
	_ = c.MarkFlagFilename("ndr-file", "eml", "txt")
	// How long this process's claim on its work outlives it; tests shorten it.
	c.Flags().DurationVar(&f.lease, "lease", 30*time.Second, "")
	_ = c.Flags().MarkHidden("lease")
	return c
}

// runReport is the --json document. Every duration in it is whole milliseconds
// in a field named *_ms (the run's, each step's, each relief's, an approval's
// expiry); times are RFC 3339; parameters are written as they are typed
// (window=15m). The store keeps incident.StepResult, Proposal and ReliefResult
// as JSON in their own encoding (durations in nanoseconds, read back by other
// replicas), so the report has types of its own rather than changing theirs.
type runReport struct {
	RunID       string                `json:"run_id"`
	Playbook    string                `json:"playbook"`
	Version     string                `json:"playbook_version"`
	Lab         string                `json:"lab,omitempty"`
	Params      map[string]string     `json:"params"`
	Started     time.Time             `json:"started"`
	DurationMS  int64                 `json:"duration_ms"`
	Steps       []reportStep          `json:"steps"`
	Findings    []incident.Finding    `json:"findings"`
	Proposals   []reportProposal      `json:"proposals"`
	Reliefs     []reportRelief        `json:"reliefs"`
	Escalations []incident.Escalation `json:"escalations"`
	ExitCode    int                   `json:"exit_code"`
}

type reportStep struct {
	Step       string              `json:"step"`
	Title      string              `json:"title"`
	Target     string              `json:"target"`
	Executor   string              `json:"executor"`
	Hosts      []string            `json:"hosts"`
	Status     incident.StepStatus `json:"status"`
	Rows       []map[string]any    `json:"rows,omitempty"`
	Error      string              `json:"error,omitempty"`
	ExitCode   int                 `json:"exit_code"`
	Digest     string              `json:"script_digest,omitempty"`
	Started    time.Time           `json:"started"`
	DurationMS int64               `json:"duration_ms"`
	Verifying  bool                `json:"verifying,omitempty"`
}

type reportApproval struct {
	Role      string `json:"role"`
	Approvers int    `json:"approvers"`
	FourEyes  bool   `json:"four_eyes"`
	ExpiresMS int64  `json:"expires_ms"`
}

type reportProposal struct {
	ID       string             `json:"id"`
	Relief   string             `json:"relief"`
	Title    string             `json:"title"`
	Target   string             `json:"target"`
	Hosts    []string           `json:"hosts"`
	Command  string             `json:"command"`
	Args     map[string]any     `json:"args,omitempty"`
	Risk     string             `json:"risk"`
	Rollback string             `json:"rollback,omitempty"`
	Preview  string             `json:"preview,omitempty"`
	Approval reportApproval     `json:"approval"`
	Because  []incident.Finding `json:"because"`
	Blocked  string             `json:"blocked,omitempty"`
}

type reportRelief struct {
	Relief     string    `json:"relief"`
	Hosts      []string  `json:"hosts"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	Output     string    `json:"output,omitempty"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	Verified   *bool     `json:"verified,omitempty"`
}

func newRunReport(run *playbooks.Run, lab string, took time.Duration, code int) runReport {
	rep := runReport{RunID: run.ID, Playbook: run.Playbook.ID, Version: run.Playbook.Version, Lab: lab,
		Params: map[string]string{}, Started: run.Started, DurationMS: took.Milliseconds(),
		Steps: []reportStep{}, Findings: run.Findings(), Proposals: []reportProposal{}, Reliefs: []reportRelief{},
		Escalations: run.Escalations(), ExitCode: code}
	for k, v := range run.Params {
		rep.Params[k] = paramText(v)
	}
	for _, s := range run.Steps() {
		rep.Steps = append(rep.Steps, reportStep{Step: s.Step, Title: s.Title, Target: s.Target, Executor: s.Executor,
			Hosts: s.Hosts, Status: s.Status, Rows: s.Rows, Error: s.Error, ExitCode: s.ExitCode, Digest: s.Digest,
			Started: s.Started, DurationMS: s.Duration.Milliseconds(), Verifying: s.Verifying})
	}
	for _, p := range run.Proposals() {
		rep.Proposals = append(rep.Proposals, reportProposal{ID: p.ID, Relief: p.Relief, Title: p.Title, Target: p.Target,
			Hosts: p.Hosts, Command: p.Command, Args: p.Args, Risk: p.Risk, Rollback: p.Rollback, Preview: p.Preview,
			Approval: reportApproval{Role: p.Approval.Role, Approvers: p.Approval.Approvers, FourEyes: p.Approval.FourEyes,
				ExpiresMS: p.Approval.Expires.Milliseconds()},
			Because: p.Because, Blocked: p.Blocked})
	}
	for _, r := range run.Reliefs() {
		rep.Reliefs = append(rep.Reliefs, reportRelief{Relief: r.Relief, Hosts: r.Hosts, OK: r.OK, Error: r.Error,
			Output: r.Output, Started: r.Started, DurationMS: r.Duration.Milliseconds(), Verified: r.Verified})
	}
	if rep.Findings == nil {
		rep.Findings = []incident.Finding{}
	}
	if rep.Escalations == nil {
		rep.Escalations = []incident.Escalation{}
	}
	return rep
}

func (g *globals) diagnose(ctx context.Context, f *diagnoseFlags, args []string) error {
	// The playbook a code chooses is built before the configuration is read,
	// and its lab's organisation on another core while the playbook is
	// checked: neither needs the other until the lab is checked against the
	// playbook below.
	var (
		chosen   string // by its code, unless an NDR file chooses
		building *labBuild
	)
	if f.ndrFile == "" && len(args) > 0 {
		chosen = args[0]
	}
	early := playbooks.Prefetch(chosen)
	// A throw-away store's database is made ready meanwhile too, to be
	// opened once the command line is checked; a command refused below
	// discards it unused.
	var scratch *backends.Scratch
	if f.lab.throwAway() {
		scratch = backends.StartScratch(ctx)
		defer scratch.Discard()
	}
	cfg, _, err := g.loadConfig()
	if err != nil {
		return err
	}
	if id, ok := early.Choose(chosen); ok && f.lab.set() {
		building = startSimulation(cfg, f.lab, id)
		defer building.wait()
	}
	cat, err := g.index(early, cfg)
	if err != nil {
		return err
	}
	// Read before any store on disk or server is reached: --ndr-file -
	// consumes standard input, so nothing is prompted for then.
	reader := bufio.NewReader(g.io.in)
	prompt := g.io.interactive && !f.json && !f.noInput && f.ndrFile != "-"
	var (
		pb     *playbooks.Playbook
		kv     commands.Args
		intake *ndrIntake
	)
	if f.ndrFile != "" {
		if intake, err = g.ndrIntake(f, cat, args, reader, prompt); err != nil {
			return err
		}
		pb, kv, args = intake.pb, intake.args, intake.words
	} else {
		if pb, err = cat.Resolve(args[0]); err != nil {
			var ps playbooks.Problems
			if errors.As(err, &ps) {
				return &exitError{code: exitUsage, err: fmt.Errorf("playbooks:\n%w", err)}
			}
			return usageErr("%v", err)
		}
		if kv, err = commands.ArgsFromWords(args[1:]); err != nil {
			return usageErr("%v", err)
		}
		if len(kv.Positional) > 0 {
			return usageErr("unexpected argument %q: parameters are key=value (%s)", kv.Positional[0], commands.ParamUsage(pb))
		}
	}
	// Checked before anything is opened, so a typo changes nothing; Start
	// checks them again when it records the run.
	if _, err := pb.Params.Resolve(kv.Named); err != nil {
		return usageErr("%v\nusage: ndrbot diagnose %s %s", err, args[0], commands.ParamUsage(pb))
	}
	for _, id := range f.approve {
		if pb.Relief(id) == nil {
			var ids []string
			for _, r := range pb.Reliefs {
				ids = append(ids, r.ID)
			}
			return usageErr("--approve %q: playbook %s has no such relief (reliefs: %s)", id, pb.ID, strings.Join(ids, ", "))
		}
	}

	simulated, scale, err := building.result(cfg, f.lab, pb.ID)
	if err != nil {
		return err
	}
	tg := newTargets(cfg, g.kinds(), simulated, g.logger(cfg), g.io)
	defer closeTargets(tg, g.logger(cfg))
	if err := tg.require(pb.Targets()); err != nil {
		return usageErr("%v", err)
	}

	rs, err := g.openRunStore(ctx, &cfg, f.lab, scratch)
	if err != nil {
		return err
	}
	defer rs.close()
	st, key := rs.st, rs.key
	anchor, err := newCheckpointer(cfg, st, key, nil, g.logger(cfg))
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	out := &terminal{w: g.io.out, quiet: f.json, live: g.io.interactive, progress: g.io.err, scale: scale}
	actor, uid, err := cliUser(g.io)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	owner := processOwner(actor)
	eng := playbooks.NewEngine(tg, playbooks.Options{WaitScale: scale, Logger: g.logger(cfg), History: store.ReliefHistory{Store: st}})
	// By default the terminal waives four-eyes: the person at it is requester and
	// approver by nature, and holds the bot's credentials anyway; the approval
	// records it. access.cli_four_eyes: refuse keeps the floor (access.four_eyes
	// or the playbook's), and the store refuses the lone approval below.
	refuseAlone := cfg.Access.CLIFourEyes == config.CLIFourEyesRefuse
	runs := lifecycle.New(lifecycle.Options{Store: st, Engine: eng, Catalog: func() *playbooks.Catalog { return cat },
		Owner: owner, FourEyes: cfg.Access.FourEyes, Observe: func(*lifecycle.Run) playbooks.Observer { return out },
		Log: slog.New(atLeast{g.logger(cfg).Handler(), slog.LevelWarn})})
	// A throw-away lab store is this process's alone, new and gone at exit:
	// nothing in it to recover, and nobody else to tell that its runs are alive.
	if !f.lab.throwAway() {
		if err := recoverCLI(ctx, runs, out); err != nil {
			return err
		}
		// The lease tells other processes this one is alive: its work is not
		// theirs to recover.
		keepCtx, stopKeep := context.WithCancel(ctx)
		var keep errgroup.Group
		keep.Go(func() error { return store.KeepAlive(keepCtx, st, owner, f.lease, nil) })
		defer func() { stopKeep(); _ = keep.Wait() }()
	}

	started := time.Now()
	command := map[string]any{"command": "diagnose", "args": args, "lab": f.lab.name(), "approve": f.approve, "os_uid": uid}
	if intake != nil {
		command["ndr_file"] = intake.record(f.ndrFile)
	}
	run, err := runs.Start(ctx, lifecycle.Start{Playbook: pb, Args: kv.Named, Requester: actor, Origin: "cli", Terminal: !refuseAlone,
		Command: command})
	if errors.Is(err, lifecycle.ErrParams) {
		return usageErr("%v\nusage: ndrbot diagnose %s %s", err, args[0], commands.ParamUsage(pb))
	}
	if err != nil {
		return err
	}
	defer runs.Release(run)
	out.header(run.Run, f.lab.name())
	if _, err := runs.Diagnose(ctx, run); err != nil {
		return err
	}
	out.summary(run.Run)

	for _, p := range run.Proposals() {
		approved := slices.Contains(f.approve, p.Relief)
		if p.Blocked != "" {
			out.printf("\n%s is blocked: %s\n", p.Relief, p.Blocked)
			continue
		}
		if p.Approval.Approvers > 1 && (approved || prompt) {
			out.printf("\n%s needs %d approvers; a terminal gives one — approve it in chat. Nothing was run.\n", p.Relief, p.Approval.Approvers)
			continue
		}
		a, _ := run.Approval(p.Relief)
		alone := a.FourEyes && a.Requester.ID == actor.ID
		if alone && !approved {
			// Not asked, nor told to --approve: that could only be refused.
			out.printf("\n%s\n", fourEyesRefusal(cfg, run.ID, p, actor, args, false))
			continue
		}
		if !approved && prompt {
			approved = out.ask(reader, fmt.Sprintf("Run %s on %s now? [y/N] ", p.Relief, strings.Join(p.Hosts, ", ")))
		}
		if !approved {
			again := strings.Join(args, " ")
			if f.lab.set() {
				again += " " + f.lab.flag()
			}
			if intake != nil {
				again = rerun(f, pb.ID, intake.given)
			}
			out.printf("\n%s not approved: nothing was changed. To run it: ndrbot diagnose %s --approve %s\n", p.Relief, again, p.Relief)
			continue
		}
		if !alone {
			out.printf("\n▶ %s approved by %s — running on %s\n", p.Relief, actor.ID, strings.Join(p.Hosts, ", "))
		}
		// Alone on a four-eyes relief, the vote is still cast: the store refuses
		// it and audits the refusal (vote-refused), so the attempt is on record.
		if _, err := runs.Approve(ctx, run, p.Relief, actor, commands.TerminalRole); err != nil {
			if errors.Is(err, store.ErrFourEyes) {
				out.printf("\n%s\n", fourEyesRefusal(cfg, run.ID, p, actor, args, true))
				continue
			}
			if playbooks.IsRefusal(err) {
				out.printf("  refused: %v\n", err)
				continue
			}
			return err
		}
	}
	for _, id := range f.approve {
		if _, ok := run.Proposal(id); !ok {
			out.printf("\n--approve %s: not proposed by this diagnosis; nothing was run.\n", id)
		}
	}
	if err := runs.Finish(ctx, run); err != nil {
		return fmt.Errorf("the audit trail of run %s is incomplete: %w", run.ID, err)
	}
	if anchor != nil {
		if err := anchor.Once(ctx); err != nil {
			fmt.Fprintf(g.io.err, "warning: %v\n", err)
		}
	}

	code := exitCode(run.Run)
	out.footer(run.Run, code)
	if f.json {
		rep := newRunReport(run.Run, f.lab.name(), time.Since(started), code)
		enc := json.NewEncoder(g.io.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	if code != exitHealthy {
		return &exitError{code: code}
	}
	return nil
}

// fourEyesRefusal tells the person at the terminal that the relief needs
// someone else's approval, and whose. voted: their approval was given, and
// refused (the audit trail has it).
func fourEyesRefusal(cfg config.Config, runID string, p incident.Proposal, actor incident.Actor, args []string, voted bool) string {
	key, who := "access.approvers", append(slices.Clone(cfg.Access.Approvers), cfg.Access.Admins...)
	if p.Approval.Role == commands.RoleAdmin {
		key, who = "access.admins", cfg.Access.Admins
	}
	var ids []string
	for _, id := range who {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	whom := "nobody is configured there yet"
	if len(ids) > 0 {
		whom = strings.Join(ids, ", ")
	}
	done := "Nothing was run."
	if voted {
		done = "Your approval was refused and nothing was run (ndrbot audit show " + runID + ")."
	}
	return fmt.Sprintf("%s needs four eyes (access.cli_four_eyes: refuse): %s asked for this run and may not approve it alone. "+
		"Someone else in %s (%s) must approve it: run the diagnosis in chat (/ndr diagnose %s) and have them press Approve. %s",
		p.Relief, actor.ID, key, whom, strings.Join(args, " "), done)
}

// exitCode: 3 when anything escalated, 1 when a warning or worse was found, else 0.
func exitCode(run *playbooks.Run) int {
	if len(run.Escalations()) > 0 {
		return exitEscalation
	}
	for _, f := range run.Findings() {
		if f.Severity.Rank() >= incident.SeverityWarning.Rank() {
			return exitFindings
		}
	}
	return exitHealthy
}

// cliUser is the actor at the terminal: the operating-system account running
// bot (on Windows DOMAIN\user), as cli:NAME, and its uid (a SID on Windows),
// which stays when a name changes. Never $USER or $LOGNAME: any process can set
// them, and the audit trail records this actor as requester and approver.
func cliUser(io stdio) (incident.Actor, string, error) {
	lookup := io.osUser
	if lookup == nil {
		lookup = currentOSUser
	}
	u, err := lookup()
	if err == nil && u.Username == "" {
		err = fmt.Errorf("uid %s has no user name", u.Uid)
	}
	if err != nil {
		return incident.Actor{}, "", fmt.Errorf("cannot tell which operating-system user runs bot (%v): the terminal records requests and approvals "+
			"under that account, never under $USER; run ndrbot as an account the system's user database knows", err)
	}
	return incident.CLIActor(u.Username), u.Uid, nil
}

// currentOSUser is the account this process runs as, named by the system's
// user database. Without cgo, os/user.Current falls back to $USER for a uid
// /etc/passwd does not list; looking the uid up again refuses that.
func currentOSUser() (*user.User, error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	return user.LookupId(u.Uid)
}

// recoverCLI takes over the work of processes that died and tells the
// operator: a relief that was running has an unknown outcome (never re-run);
// runs left mid-way are closed as interrupted, since nobody is watching them.
func recoverCLI(ctx context.Context, runs *lifecycle.Runs, out *terminal) error {
	rec, err := runs.Recover(ctx)
	for _, x := range rec.Unknown {
		out.printf("⚠ relief %s of run %s (on %s) was running when %s stopped: its outcome is unknown and it will not be re-run. Check the hosts by hand; ndrbot audit show %s\n",
			x.ReliefID, x.RunID, strings.Join(x.Hosts, ", "), x.Owner, x.RunID)
	}
	for _, c := range rec.Closed {
		out.printf("⚠ run %s (%s) was interrupted in state %s; closed as interrupted.\n", c.Run.ID, c.Run.Playbook, c.Run.State)
	}
	return err
}

func (t *terminal) ask(r *bufio.Reader, q string) bool {
	t.printf("%s", q)
	line, err := r.ReadString('\n')
	if err != nil && line == "" {
		t.printf("\n")
		return false
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
