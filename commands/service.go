package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ndrbot/ndrbot/audit"
	"github.com/ndrbot/ndrbot/incident"
	"github.com/ndrbot/ndrbot/lifecycle"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/store"
)

// Thread is where a run's messages go: the chat adapter renders each Message and
// posts it, or edits the message with the same key in place.
type Thread interface {
	Publish(ctx context.Context, m Message) error
}

// Alarm reaches a run's thread without the store: for the moment the store
// refuses a write, when the thread's own posts (stored first) cannot go out.
type Alarm interface {
	Alarm(ctx context.Context, channel, threadTS, text string) error
}

// Store is what the chat adapter reads and writes: a run's life through
// lifecycle, and besides it runs and approvals to look up, the audit trail to
// show and add refusals to, and the NDR watch's alerts a button starts from.
type Store interface {
	lifecycle.Store
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error)
	GetApproval(ctx context.Context, id string) (store.Approval, error)
	FindWatchAlert(ctx context.Context, channel, button string) (store.WatchAlert, error)
	ClaimAlertDiagnosis(ctx context.Context, id string, by incident.Actor) (store.WatchAlert, bool, error)
	// FirstSighting answers true once per key until expires, across replicas:
	// here, the first click on a bounce's playbook choice (choosePlaybook).
	FirstSighting(ctx context.Context, key string, expires time.Time) (bool, error)
}

// Options are a Service's dependencies.
type Options struct {
	// Catalog returns the current playbooks (they may be reloaded).
	Catalog func() *playbooks.Catalog
	Engine  *playbooks.Engine
	Store   Store
	Thread  Thread
	Alarm   Alarm // optional
	Groups  Groups
	Access  Access
	// Owner names this process for leases and relief claims.
	Owner string
	// EscalationChannel receives a copy of every escalation summary.
	EscalationChannel string
	// AfterRelief is called when a relief's outcome or verification has been
	// recorded (the audit checkpointer's nudge); nil for none.
	AfterRelief func()
	Now         func() time.Time
	Log         *slog.Logger
}

// Service handles `/ndr …` commands and button clicks without knowing the chat
// platform's wire format: it parses, authorises, records and starts work, and
// answers at once; long work continues in goroutines it owns (Close waits).
type Service struct {
	opts  Options
	auth  *authorizer
	verbs []verb
	log   *slog.Logger
	runs  *lifecycle.Runs

	bg     sync.WaitGroup
	ctx    context.Context // background work's context
	cancel context.CancelFunc
}

// verb is one `/ndr` command, registered once with its usage; help and errors are
// generated from the registry.
type verb struct {
	name    string
	usage   string
	summary string
	role    string
	run     func(ctx context.Context, req Request, args Args) Reply
}

// New returns a Service.
func New(opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{opts: opts, log: opts.Log, ctx: ctx, cancel: cancel,
		auth: &authorizer{access: opts.Access, groups: opts.Groups}}
	s.runs = lifecycle.New(lifecycle.Options{Store: opts.Store, Engine: opts.Engine, Catalog: opts.Catalog, Owner: opts.Owner,
		FourEyes: opts.Access.FourEyes, ResumeChat: true, Observe: s.follow, AfterRelief: opts.AfterRelief, Now: opts.Now, Log: opts.Log})
	s.verbs = []verb{
		{"diagnose", "diagnose CODE|PLAYBOOK [key=value…]", "run a playbook's diagnosis in a new thread (or paste a bounce after diagnose)", RoleResponder, s.diagnose},
		{"status", "status [RUN]", "recent runs, or one run's state", RoleAnyone, s.status},
		{"audit", "audit RUN", "a run's audit timeline", RoleResponder, s.auditRun},
		{"playbooks", "playbooks", "the playbooks and the codes they match", RoleAnyone, s.listPlaybooks},
		{"help", "help", "this help", RoleAnyone, s.help},
	}
	return s
}

// SetAccess replaces the access lists (a reload): commands and clicks from now
// on are authorised by the new lists. FourEyes is the exception: runs keep the
// floor they were started under, and a changed four_eyes needs a restart.
func (s *Service) SetAccess(a Access) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	a.FourEyes = s.auth.access.FourEyes
	s.auth.access = a
}

// Close stops background work and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.bg.Wait()
}

// Wait waits for background work without cancelling it (tests, graceful drain).
func (s *Service) Wait() { s.bg.Wait() }

func (s *Service) goBackground(f func(ctx context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.ctx)
	}()
}

// Command handles one `/ndr …`. Bad input changes nothing and gets usage.
func (s *Service) Command(ctx context.Context, req Request) Reply {
	// A pasted bounce is prose, not arguments: it is read whole (diagnoseNDR),
	// and only its digest is recorded, never its text.
	paste, pasted := s.pastedNDR(req)
	text, name := req.Text, "diagnose"
	var args Args
	if pasted {
		text = "diagnose <a pasted bounce>"
	} else {
		var err error
		if args, err = ParseArgs(req.Text); err != nil {
			return Reply{Text: fmt.Sprintf("%v\n%s", err, s.usage())}
		}
		if len(args.Positional) == 0 {
			return s.help(ctx, req, args)
		}
		name = strings.ToLower(args.Positional[0])
		args.Positional = args.Positional[1:]
	}
	for _, v := range s.verbs {
		if v.name != name {
			continue
		}
		if !s.auth.channelAllowed(req.ChannelID, req.ChannelName) {
			s.refused(ctx, req.User, "", "command", map[string]any{"text": text, "channel": req.ChannelID, "why": "channel not allowed"})
			return Reply{Text: "ndrbot does not take commands in this channel; use an incident channel (access.channels)."}
		}
		ok, err := s.auth.allowed(ctx, req.User.ID, v.role)
		if err != nil {
			return s.internal("authorising", err)
		}
		if !ok {
			s.refused(ctx, req.User, "", "command", map[string]any{"text": text, "why": "not a " + v.role})
			return Reply{Text: fmt.Sprintf("`/ndr %s` needs the %s role (access.%ss); ask an ndrbot admin.", v.name, v.role, v.role)}
		}
		s.log.Info("command", "verb", v.name, "user", req.User.ID, "channel", req.ChannelID, "text", Echo(text))
		if pasted {
			return s.diagnoseNDR(ctx, req, paste)
		}
		return v.run(ctx, req, args)
	}
	return Reply{Text: fmt.Sprintf("Unknown command %q.\n%s", Echo(name), s.usage())}
}

// Echo shows user text safely in a reply: bounded, without control characters.
func Echo(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return -1
		}
		return c
	}, s)
}

func (s *Service) usage() string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	for _, v := range s.verbs {
		fmt.Fprintf(&b, "  /ndr %-40s %s\n", v.usage, v.summary)
	}
	return b.String()
}

func (s *Service) help(context.Context, Request, Args) Reply {
	var codes []string
	for _, pb := range s.opts.Catalog().All() {
		codes = append(codes, fmt.Sprintf("%s (%s)", pb.ID, strings.Join(pb.Matches, ", ")))
	}
	return Reply{Text: s.usage() + "Playbooks: " + strings.Join(codes, "; ")}
}

// internal answers with an error id and logs the whole chain under it: the user
// sees something safe and actionable, the log has the detail.
func (s *Service) internal(what string, err error) Reply {
	id := s.logError(what, err)
	return Reply{Text: fmt.Sprintf("Something went wrong while %s (error %s); the bot's log has the details.", what, id)}
}

// logError logs err under a fresh error id and returns the id.
func (s *Service) logError(what string, err error, attrs ...any) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	id := "E" + hex.EncodeToString(b[:])
	s.log.Error(what, append([]any{"error_id", id, "err", err}, attrs...)...)
	return id
}

// refused records a refused command or click in the audit trail.
func (s *Service) refused(ctx context.Context, who incident.Actor, runID, what string, payload map[string]any) {
	payload["refused"] = what
	s.log.Info("refused", "what", what, "user", who.ID, "run", runID, "why", payload["why"])
	if _, err := s.opts.Store.Append(ctx, audit.Record{Actor: who, RunID: runID, Kind: "refused", Payload: payload}); err != nil {
		s.log.Error("audit refused action", "err", err)
	}
}

func (s *Service) diagnose(ctx context.Context, req Request, args Args) Reply {
	if len(args.Positional) != 1 {
		return Reply{Text: "Usage: /ndr diagnose CODE|PLAYBOOK [key=value…] — e.g. /ndr diagnose 5.5.4 sender=alice@contoso.com; or paste a bounce after /ndr diagnose"}
	}
	pb, err := s.opts.Catalog().Resolve(args.Positional[0])
	if err != nil {
		return Reply{Text: err.Error()}
	}
	reply, _ := s.start(ctx, req, pb, args.Named, Echo(args.Positional[0]), map[string]any{"text": req.Text, "channel": req.ChannelID})
	return reply
}

// start records a run of pb in the request's channel, posts its thread's root
// and diagnoses it in the background; it returns the run's id ("" when none
// started). shown is how the usage line names the playbook; command is what
// the audit trail records of the request.
func (s *Service) start(ctx context.Context, req Request, pb *playbooks.Playbook, args map[string]string, shown string, command map[string]any) (Reply, string) {
	run, err := s.runs.Start(ctx, lifecycle.Start{Playbook: pb, Args: args, Requester: req.User, Origin: "chat",
		Channel: req.ChannelID, Command: command})
	if errors.Is(err, lifecycle.ErrParams) {
		return Reply{Text: fmt.Sprintf("%v\nUsage: /ndr diagnose %s %s", err, shown, ParamUsage(pb))}, ""
	}
	if err != nil {
		return s.internal("starting the run", err), ""
	}
	threadOf(run).publishRoot(ctx)
	s.goBackground(func(ctx context.Context) { s.runDiagnosis(ctx, run) })
	return Reply{Text: fmt.Sprintf("Started %s (run %s); follow the thread.", pb.ID, run.ID)}, run.ID
}

// runDiagnosis diagnoses a started or resumed run and shows what it found.
func (s *Service) runDiagnosis(ctx context.Context, run *lifecycle.Run) {
	defer s.runs.Release(run)
	if _, err := s.runs.Diagnose(ctx, run); err != nil {
		if ctx.Err() != nil {
			s.log.Warn("diagnosis stopped", "run", run.ID, "err", err)
			return
		}
		s.log.Error("run state", "run", run.ID, "err", err)
	}
	t := threadOf(run)
	t.publishAfterDiagnosis(ctx)
	t.publishRoot(ctx)
}

func (s *Service) status(ctx context.Context, _ Request, args Args) Reply {
	if len(args.Positional) == 1 {
		r, err := s.opts.Store.GetRun(ctx, args.Positional[0])
		if errors.Is(err, incident.ErrNotFound) {
			return Reply{Text: fmt.Sprintf("No run %q.", Echo(args.Positional[0]))}
		}
		if err != nil {
			return s.internal("reading the run", err)
		}
		return Reply{Text: fmt.Sprintf("%s %s: %s (requested by %s at %s)", r.ID, r.Playbook, r.State, r.Requester, r.CreatedAt.UTC().Format("15:04 UTC"))}
	}
	runs, err := s.opts.Store.ListRuns(ctx, store.RunFilter{Limit: 10})
	if err != nil {
		return s.internal("listing runs", err)
	}
	if len(runs) == 0 {
		return Reply{Text: "No runs yet."}
	}
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "%s  %-10s %-18s %s\n", r.ID, r.Playbook, r.State, r.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return Reply{Text: b.String()}
}

func (s *Service) auditRun(ctx context.Context, _ Request, args Args) Reply {
	if len(args.Positional) != 1 {
		return Reply{Text: "Usage: /ndr audit RUN"}
	}
	id := args.Positional[0]
	if _, err := s.opts.Store.GetRun(ctx, id); err != nil {
		return Reply{Text: fmt.Sprintf("No run %q.", Echo(id))}
	}
	var b strings.Builder
	if _, err := audit.WriteTimeline(&b, s.opts.Store.Events(ctx, audit.Filter{RunID: id}), time.UTC); err != nil {
		return s.internal("reading the audit trail", err)
	}
	return Reply{Text: b.String()}
}

func (s *Service) listPlaybooks(context.Context, Request, Args) Reply {
	var lines []string
	for _, pb := range s.opts.Catalog().All() {
		lines = append(lines, fmt.Sprintf("%s — %s (matches %s)", pb.ID, pb.Title, strings.Join(pb.Matches, ", ")))
	}
	sort.Strings(lines)
	return Reply{Text: strings.Join(lines, "\n")}
}

// ParamUsage is a playbook's parameters as a usage line.
func ParamUsage(pb *playbooks.Playbook) string {
	var parts []string
	for _, name := range pb.ParamOrder {
		spec := pb.Params[name]
		s := fmt.Sprintf("%s=<%s>", name, spec.Type)
		if !spec.Required {
			s = "[" + s + "]"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// Recover takes over what dead processes left (lifecycle.Runs.Recover): the
// chat diagnoses it resumes run again in the background, their threads edited
// in place.
func (s *Service) Recover(ctx context.Context) (lifecycle.Recovered, error) {
	rec, err := s.runs.Recover(ctx)
	for _, run := range rec.Resumed {
		threadOf(run).publishRoot(ctx)
		s.goBackground(func(ctx context.Context) { s.runDiagnosis(ctx, run) })
	}
	return rec, err
}

// Held is how many runs this service holds in memory.
func (s *Service) Held() int { return s.runs.Held() }

// Expired updates the cards of approvals that expired undecided.
func (s *Service) Expired(ctx context.Context, as []store.Approval) {
	for _, a := range as {
		r, err := s.opts.Store.GetRun(ctx, a.RunID)
		if err != nil {
			s.log.Error("expired approval", "approval", a.ID, "err", err)
			continue
		}
		run, err := s.runs.Load(ctx, r)
		if err != nil {
			s.log.Error("expired approval", "approval", a.ID, "err", err)
			continue
		}
		s.cardVotes(ctx, run, a, ApprovalExpired)
		s.runs.Release(run)
	}
}
