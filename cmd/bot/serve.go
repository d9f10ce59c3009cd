package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ndrbot/ndrbot/commands"
	"github.com/ndrbot/ndrbot/config"
	"github.com/ndrbot/ndrbot/internal/keeper"
	"github.com/ndrbot/ndrbot/observe"
	"github.com/ndrbot/ndrbot/playbooks"
	"github.com/ndrbot/ndrbot/slack"
	"github.com/ndrbot/ndrbot/store"
	"github.com/ndrbot/ndrbot/store/outbox"
	"github.com/ndrbot/ndrbot/watch"
	"github.com/ndrbot/ndrbot/watch/graphmail"
)

type serveFlags struct {
	lab   labFlags
	lease time.Duration
	// sweep is how often expired approvals are looked for.
	sweep time.Duration
	// ready, when set, is called once the bot serves (tests).
	ready func()
}

func newServeCmd(g *globals) *cobra.Command {
	f := &serveFlags{}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the Slack bot: /ndr commands, live threads, approval buttons, escalations",
		Long: `Connects to Slack (Socket Mode by default; slack.mode: http serves the Events and
Interactivity request URLs with signature verification), checks the tokens first and
stops with a message naming any that is missing or wrong, recovers work a previous
process left unfinished, and serves until interrupted; on SIGINT/SIGTERM it stops
taking commands, finishes in-flight work and delivers what is queued.`,
		Example: "  SLACK_BOT_TOKEN=xoxb-… SLACK_APP_TOKEN=xapp-… ndrbot serve\n" +
			"  ndrbot serve --config /etc/ndrbot/ndrbot.yaml\n  ndrbot serve --lab overloaded-queue   # a demo against the simulated organisation",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return g.serve(cmd.Context(), f) },
	}
	f.lab.register(c.Flags(), "simulate every target (demos)")
	c.Flags().DurationVar(&f.lease, "lease", 30*time.Second, "")
	c.Flags().DurationVar(&f.sweep, "sweep", 30*time.Second, "")
	_ = c.Flags().MarkHidden("lease")
	_ = c.Flags().MarkHidden("sweep")
	return c
}

// slackOptions resolves the Slack settings, naming what is missing.
func slackOptions(cfg config.Config, log *slog.Logger) (slack.Options, error) {
	sl := cfg.Slack
	o := slack.Options{Mode: slack.Mode(sl.Mode), Listen: sl.Listen, APIURL: sl.APIURL, TeamID: sl.TeamID, AppID: sl.AppID, Logger: log}
	var err error
	if o.BotToken, err = config.ResolveSecret(sl.BotToken, sl.BotTokenFile); err != nil {
		return o, fmt.Errorf("slack.bot_token: %w", err)
	}
	if o.AppToken, err = config.ResolveSecret(sl.AppToken, sl.AppTokenFile); err != nil {
		return o, fmt.Errorf("slack.app_token: %w", err)
	}
	if o.SigningSecret, err = config.ResolveSecret(sl.SigningSecret, sl.SigningSecretFile); err != nil {
		return o, fmt.Errorf("slack.signing_secret: %w", err)
	}
	return o, nil
}

func (g *globals) serve(ctx context.Context, f *serveFlags) error {
	if _, set := g.io.getenv("GOGC"); !set {
		debug.SetGCPercent(longLivedGC)
	}
	cfg, cat, err := g.configAndCatalog()
	if err != nil {
		return err
	}
	// Each part names itself (component=…) on a logger without serve's own
	// component, so no line carries the key twice.
	base := g.logger(cfg)
	log := base.With("component", "serve")
	opts, err := slackOptions(cfg, base)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := observe.NewMetrics(reg)
	opts.OnAPIError = metrics.SlackCall
	poster, err := slack.NewPoster(opts)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	simulated, scale, err := simulation(cfg, f.lab, "")
	if err != nil {
		return err
	}

	rs, err := g.openRunStore(ctx, &cfg, f.lab, nil)
	if err != nil {
		return err
	}
	defer rs.close()
	st, key := rs.st, rs.key
	anchor, err := newCheckpointer(cfg, st, key, poster, base)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	host, _ := os.Hostname()
	owner := fmt.Sprintf("serve@%s:%d", host, os.Getpid())

	disp := &outbox.Dispatcher{Queue: st, Sender: slack.NewSender(st, poster, slack.Renderer{}, base.With("component", "outbox")), Owner: owner, Log: base.With("component", "outbox")}
	thread := slack.NewThread(st, slack.ThreadOptions{Notify: disp.Notify, Log: base.With("component", "thread")})
	tg := newTargets(cfg, g.kinds(), simulated, base, g.io)
	tg.retried = metrics.Retried
	defer closeTargets(tg, log)
	// Work that must happen once per deployment runs on one replica at a time,
	// the holder of its lease in the store; the other replicas stand by.
	once := singletons{leases: st, owner: keeperOwner(owner), ttl: f.lease, metrics: metrics, log: base}
	var checkpoints *keeper.Keeper
	afterRelief := func() {}
	if anchor != nil {
		if checkpoints, err = once.keeper("audit-checkpoints", func(string) { anchor.Nudge() }); err != nil {
			return err
		}
		// The checkpoint after a relief is written by the replica holding the
		// checkpoints' lease: one that does not hold it asks through the store.
		afterRelief = func() { checkpoints.Signal("nudge") }
	}
	eng := playbooks.NewEngine(tg, playbooks.Options{WaitScale: scale, Logger: base.With("component", "engine"),
		History: store.ReliefHistory{Store: st}, Observer: metrics})
	if src, ok := st.(observe.StatsSource); ok {
		reg.MustRegister(observe.NewStoreCollector(src, log))
	}
	// Playbooks are read through this pointer: a reload replaces them whole.
	var current atomic.Pointer[playbooks.Catalog]
	current.Store(cat)
	svc := commands.New(commands.Options{
		Catalog: current.Load, Engine: eng, Store: st, Thread: thread, Alarm: poster, Groups: poster,
		Access: accessOf(cfg),
		Owner:  owner, EscalationChannel: cfg.Slack.EscalationChannel, Log: base.With("component", "commands"),
		AfterRelief: afterRelief,
	})
	opts.Replay = st // HTTP mode: a signed request is accepted once, across replicas
	ad, err := slack.New(opts, poster, svc)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	checkCtx, cancelCheck := context.WithTimeout(ctx, 30*time.Second)
	err = ad.Check(checkCtx)
	cancelCheck()
	if err != nil {
		var se *slack.SetupError
		if errors.As(err, &se) {
			return &exitError{code: exitUsage, err: err}
		}
		return fmt.Errorf("slack: %w", err)
	}

	if err := recoverServe(ctx, svc, log); err != nil {
		return err
	}
	nw, err := newNDRWatch(cfg, f.lab.set(), cat, st, thread, metrics, base)
	if err != nil {
		return &exitError{code: exitUsage, err: err}
	}
	if nw != nil {
		if nw.keep, err = once.keeper("ndr-watch", nw.signal); err != nil {
			return err
		}
	}
	sweeper, err := once.keeper("approval-sweeper", nil)
	if err != nil {
		return err
	}

	// Shutdown order: intake stops and drains first, then background runs, then
	// the thread's pending edits are stored, then the outbox delivers what it can.
	// A background part that fails starts the same shutdown, and its error is the
	// process's: a bot whose lease, outbox or watch is dead must not go on taking
	// commands as if it were whole.
	intakeCtx, stopIntake := context.WithCancel(context.Background())
	deliverCtx, stopDelivery := context.WithCancel(context.Background())
	watchCtx, stopWatch := context.WithCancel(context.Background())
	parts := newComponents()
	parts.start(deliverCtx, "lease keeper", func(ctx context.Context) error { return store.KeepAlive(ctx, st, owner, f.lease, nil) })
	parts.start(deliverCtx, "outbox", disp.Run)
	if cfg.Server.Listen != "" {
		ops := observe.NewServer(reg, []observe.Check{
			{Name: "store", Check: func(ctx context.Context) error { _, err := st.AuditHead(ctx); return err }},
			{Name: "slack", Check: func(context.Context) error {
				if !ad.Connected() {
					return errors.New("not connected to Slack")
				}
				return nil
			}},
		}, log)
		// Stopped with delivery: /readyz keeps answering (not ready) while the
		// bot drains, so a load balancer stops sending before it goes.
		parts.start(deliverCtx, "health and metrics server", func(ctx context.Context) error { return ops.Run(ctx, cfg.Server.Listen) })
	}
	reload := &reloader{g: g, running: cfg, catalog: &current, svc: svc, log: log}
	parts.start(deliverCtx, "reloader", func(ctx context.Context) error { return reload.run(ctx, g.io.reload) })
	parts.start(deliverCtx, "approval sweeper", func(ctx context.Context) error {
		return sweeper.Run(ctx, func(ctx context.Context) error { return sweepExpired(ctx, st, svc, f.sweep, log) })
	})
	if anchor != nil {
		// Stopped with delivery, after the last run's events: the holder's final
		// checkpoint covers everything this process wrote.
		parts.start(deliverCtx, "audit checkpoints", func(ctx context.Context) error { return checkpoints.Run(ctx, anchor.Run) })
	}
	// The NDR watch posts through the thread: it stops with the intake, before the
	// thread is closed.
	watchDone := make(chan struct{})
	parts.start(watchCtx, "NDR watch", func(ctx context.Context) error {
		defer close(watchDone)
		return nw.run(ctx)
	})
	intakeErr := make(chan error, 1)
	go func() { intakeErr <- ad.Run(intakeCtx) }()
	log.Info("serving", "mode", opts.Mode, "owner", owner, "lab", f.lab.name())
	if f.ready != nil {
		f.ready()
	}

	var failed error
	select {
	case <-ctx.Done():
		log.Info("stopping: interrupted (SIGINT or SIGTERM); draining")
	case err = <-intakeErr:
		log.Warn("stopping: the Slack intake ended", "err", err)
	case failed = <-parts.failed:
		log.Error("stopping: a part of the bot failed", "err", failed)
	}
	stopIntake()
	stopWatch()
	if err == nil {
		err = <-intakeErr
	}
	<-watchDone
	svc.Wait()
	svc.Close()
	thread.Close()
	drain, cancelDrain := context.WithTimeout(context.Background(), 10*time.Second)
	for drain.Err() == nil {
		n, derr := disp.RunOnce(drain)
		if derr != nil || n == 0 {
			break
		}
	}
	cancelDrain()
	stopDelivery()
	gerr := parts.wait()
	switch {
	case failed != nil:
		err = failed
	case err == nil:
		err = gerr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if err != nil {
		log.Error("stopped", "err", err)
	} else {
		log.Info("stopped")
	}
	return err
}

// components runs serve's background parts under one errgroup. The first to
// fail — an error while it was not asked to stop — is sent on failed.
type components struct {
	g      errgroup.Group
	failed chan error
}

func newComponents() *components { return &components{failed: make(chan error, 1)} }

func (c *components) start(ctx context.Context, name string, run func(context.Context) error) {
	c.g.Go(func() error {
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		err = fmt.Errorf("%s stopped: %w", name, err)
		select {
		case c.failed <- err:
		default:
		}
		return err
	})
}

func (c *components) wait() error { return c.g.Wait() }

// recoverServe takes over what a dead process left and logs it: relief
// executions whose outcome is unknown (never re-run), chat diagnoses resumed,
// runs closed as interrupted. Pending approvals keep working.
func recoverServe(ctx context.Context, svc *commands.Service, log *slog.Logger) error {
	rec, err := svc.Recover(ctx)
	for _, x := range rec.Unknown {
		log.Warn("relief outcome unknown: check the hosts by hand", "run", x.RunID, "relief", x.ReliefID,
			"hosts", strings.Join(x.Hosts, ","), "previous_owner", x.Owner)
	}
	for _, r := range rec.Resumed {
		log.Info("diagnosis resumed", "run", r.ID, "playbook", r.Playbook.ID)
	}
	for _, c := range rec.Closed {
		log.Warn("run closed as interrupted", "run", c.Run.ID, "state", c.Run.State, "note", c.Note)
	}
	return err
}

// sweepExpired marks approvals past their expiry and updates their cards.
func sweepExpired(ctx context.Context, st store.Store, svc *commands.Service, every time.Duration, log *slog.Logger) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		expired, err := st.ExpireApprovals(ctx, time.Now())
		if err != nil {
			log.Warn("expiring approvals", "err", err)
			continue
		}
		svc.Expired(ctx, expired)
	}
}

// singletons makes the keepers of serve's once-per-deployment work: each runs
// its work while this process holds the work's lease, and reports it in
// ndrbot_keeper_leader{work}.
type singletons struct {
	leases  keeper.Leaser
	owner   string
	ttl     time.Duration
	metrics *observe.Metrics
	log     *slog.Logger
}

func (s singletons) keeper(work string, onSignal func(string)) (*keeper.Keeper, error) {
	s.metrics.Leader(work, false)
	return keeper.New(keeper.Options{Name: work, Owner: s.owner, Store: s.leases, TTL: s.ttl, OnSignal: onSignal,
		OnChange: func(held bool) { s.metrics.Leader(work, held) }, Log: s.log})
}

// keeperOwner names this process for the leases: the run owner (host and pid)
// and a random part, since a restarted container has the pid and host name of
// the process it replaces, and test replicas share one process.
func keeperOwner(owner string) string {
	return fmt.Sprintf("%s/%06x", owner, rand.Uint32()>>8)
}

// ndrWatch is the NDR watch as `ndrbot serve` runs it: the delta poller, and in
// notifications mode the subscription keeper and the notification endpoint.
// The poller and the subscription keeper run on the replica holding the
// watch's lease (keep); the endpoint serves on every replica, since Graph posts
// to whichever the URL reaches, and passes what it hears to the holder.
type ndrWatch struct {
	w    *watch.Watcher
	sub  *graphmail.Subscriber
	ln   net.Listener
	srv  *http.Server
	keep *keeper.Keeper
	log  *slog.Logger
}

// newNDRWatch builds the watch when watch.enabled; nil when it is off, or with --lab
// (the lab simulates no mailbox). In notifications mode it binds the endpoint now, so
// a busy port stops `ndrbot serve` at once.
func newNDRWatch(cfg config.Config, lab bool, cat *playbooks.Catalog, st store.Store, th commands.Thread, metrics *observe.Metrics, log *slog.Logger) (*ndrWatch, error) {
	wc := cfg.Watch
	if !wc.Enabled {
		return nil, nil
	}
	if lab {
		log.Warn("watch: not started with --lab (the lab simulates no mailbox)")
		return nil, nil
	}
	t, err := cfg.Target(wc.Target)
	if err != nil {
		return nil, fmt.Errorf("watch.target: %w", err)
	}
	src, err := graphmail.New(wc.Target, t, graphmail.Options{Mailbox: wc.Mailbox, Folder: wc.Folder, Backfill: wc.Window, Log: log})
	if err != nil {
		return nil, err
	}
	n := &ndrWatch{log: log.With("component", "watch")}
	n.w, err = watch.New(watch.Options{Key: src.Key(), Mailbox: wc.Mailbox + "/" + wc.Folder, Source: src, Store: st, Thread: th,
		Channel: cfg.AlertChannel(), Playbooks: watch.CatalogPlaybooks(func() *playbooks.Catalog { return cat }),
		Threshold: wc.Threshold, Window: wc.Window, Cooldown: wc.Cooldown, Interval: wc.PollInterval, Log: log,
		Polled: func(res watch.Result, err error) {
			metrics.WatchPoll(err != nil, res.Codes, res.New > 0, res.Lag, time.Now())
		}})
	if err != nil {
		return nil, err
	}
	if wc.Mode != config.WatchNotifications {
		return n, nil
	}
	state, err := config.ResolveSecret(wc.ClientState, wc.ClientStateFile)
	if err != nil {
		return nil, fmt.Errorf("watch.client_state: %w", err)
	}
	n.sub, err = src.NewSubscriber(graphmail.SubscriberOptions{Store: st, Key: src.Key(), NotificationURL: wc.NotificationURL,
		ClientState: state, Poke: n.w.Poke, Thread: th, Channel: cfg.AlertChannel(), Log: log})
	if err != nil {
		return nil, err
	}
	if n.ln, err = net.Listen("tcp", wc.Listen); err != nil {
		return nil, fmt.Errorf("watch.listen: %w", err)
	}
	n.srv = &http.Server{Handler: graphmail.NotificationHandler(state, n.notified, n.lifecycle, log),
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return n, nil
}

// run serves until ctx ends. The endpoint serves before the subscription is
// created: Graph validates the URL while creating it.
func (n *ndrWatch) run(ctx context.Context) error {
	if n == nil {
		return nil
	}
	var g errgroup.Group
	if n.srv != nil {
		g.Go(func() error {
			n.log.Info("serving change notifications", "listen", n.ln.Addr().String())
			if err := n.srv.Serve(n.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("watch notifications: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return n.srv.Shutdown(shut)
		})
	}
	g.Go(func() error { return n.keep.Run(ctx, n.keepWatching) })
	return g.Wait()
}

// keepWatching is the holder's part: the subscription keeper and the poller.
func (n *ndrWatch) keepWatching(ctx context.Context) error {
	var g errgroup.Group
	if n.sub != nil {
		g.Go(func() error { return n.sub.Run(ctx) })
	}
	g.Go(func() error { return n.w.Run(ctx) })
	return g.Wait()
}

// Signals the endpoint passes to the holder of the watch's lease: a change
// notification ("poke": a delta round now) and a lifecycle notification
// ("lifecycle EVENT SUBSCRIPTION-ID").
const (
	signalPoke      = "poke"
	signalLifecycle = "lifecycle "
)

func (n *ndrWatch) notified() { n.keep.Signal(signalPoke) }

func (n *ndrWatch) lifecycle(event, subscriptionID string) {
	n.keep.Signal(signalLifecycle + event + " " + subscriptionID)
}

// signal acts on a signal on the holder.
func (n *ndrWatch) signal(s string) {
	if s == signalPoke {
		n.w.Poke()
		return
	}
	if rest, ok := strings.CutPrefix(s, signalLifecycle); ok && n.sub != nil {
		event, id, _ := strings.Cut(rest, " ")
		n.sub.Lifecycle(event, id)
		return
	}
	n.log.Warn("unknown signal for the watch ignored", "signal", s)
}
