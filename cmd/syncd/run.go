package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	stdsync "sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/leader"
	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

func (e *env) runCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run as a service: scheduled incremental and full reconciles",
		Long: `Run until SIGINT or SIGTERM: an incremental reconcile on schedule.incremental
(the CRM rows changed since the last run), a full reconcile on schedule.full,
and, with crm.notify, an incremental one within a second of a CRM change.
With webhook.listen, Sinch's contact callbacks are received there, verified,
stored, and the contacts they name reconciled within seconds.
Every hour, journal entries, runs and processed Sinch events older than
journal.retention are pruned.

SIGHUP (systemctl reload syncd) re-reads the configuration file and applies
what can change while running: log.level, shutdown_timeout,
journal.retention, each project's schedule.incremental, schedule.full and
sinch.rate_limit_rps, and projects added to or removed from the projects:
list (a new one without webhook.listen). Other changes are refused in one
log line that names their keys, and take a restart; a configuration with
problems is refused whole. The environment is the one syncd started with.
Serves every project of the configuration (or --project's). Run it on
several hosts against one PostgreSQL: for each project one process is active
and the others stand by, taking it over within seconds of its loss; the
projects spread over the live processes. One run at a time per Sinch
project, across hosts (a PostgreSQL advisory lock). Serves /healthz, /readyz
and /metrics on http.listen, and speaks systemd's notify protocol
(Type=notify: READY=1 once it serves and takes part in the elections;
the watchdog is pinged only while the elections, each project's scheduler
and each run going on make progress; at stop it asks systemd to wait
shutdown_timeout and a margin). Refuses to start on a database with
migrations pending.

Exit status: 0 stopped by SIGINT or SIGTERM, 1 error at start (the
configuration, the database, migrations pending, http.listen in use).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.daemon(cmd.Context())
		},
	}
}

// runStatus is what the daemon knows of a project's last run, for /readyz.
type runStatus struct {
	mu      stdsync.Mutex
	outcome state.Outcome
	why     string // why it failed
}

func (s *runStatus) set(outcome state.Outcome, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome, s.why = outcome, why
}

// standBy forgets the last run: this process no longer leads the project,
// so its runs say nothing of the project's state now.
func (s *runStatus) standBy() { s.set("", "") }

func (s *runStatus) failedBecause() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.why
}

// failure says in one line why a run failed: its error, or its failed
// operations.
func failure(rep contactsync.Report, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case rep.Failed > 0 && len(rep.Errors) > 0:
		return fmt.Sprintf("%d operations failed, the first: %s", rep.Failed, rep.Errors[0])
	case rep.Failed > 0:
		return fmt.Sprintf("%d operations failed", rep.Failed)
	}
	return ""
}

func (s *runStatus) last() (state.Outcome, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcome, s.outcome != ""
}

// daemonState is what `syncd run` serves: the configuration it runs on and
// its projects, which SIGHUP may change (see reload).
type daemonState struct {
	e        *env
	log      *zap.Logger
	level    zap.AtomicLevel // log.level, which a reload changes
	store    *state.Store
	registry *metrics.Metrics
	elector  *leader.Elector

	lastCheck atomic.Int64 // when the elector last came round (unix ns), for the watchdog

	mu      stdsync.Mutex
	cfg     Config        // the process's keys as they run now
	serving []*projectRun // the projects served, in the configuration's order
	// byID holds every project served since the start, by Sinch project
	// id, for the elector's calls about a project a reload removed.
	byID map[string]*projectRun
}

// running returns the projects served now.
func (s *daemonState) running() []*projectRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.serving)
}

func (s *daemonState) project(id string) *projectRun {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byID[id]
}

// config returns the process's configuration as it runs now.
func (s *daemonState) config() Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

func (s *daemonState) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.serving))
	for _, p := range s.serving {
		out = append(out, p.d.cfg.Sinch.ProjectID)
	}
	return out
}

func (e *env) daemon(ctx context.Context) error {
	cfg, err := loadConfig(e.configPath, e.configExplicit, e.getenv)
	if err != nil {
		return err
	}
	log, err := e.logger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	for _, w := range e.envWarnings(cfg) {
		log.Warn(w)
	}
	store, err := state.Open(ctx, cfg.Database.URL, log)
	if err != nil {
		return fmt.Errorf("database.url: %w", err)
	}
	defer func() { _ = store.Close() }()
	if err := store.CheckMigrated(ctx); err != nil {
		return err
	}
	serve, err := e.projects(cfg)
	if err != nil {
		return err
	}
	s := &daemonState{e: e, log: log, level: e.logLevel, store: store, registry: metrics.New(), cfg: cfg, byID: map[string]*projectRun{}}
	for _, p := range serve {
		d, err := projectDeps(p, log, store, s.registry)
		if err != nil {
			return fmt.Errorf("project %s: %w", p.Name, err)
		}
		pr := newProjectRun(d)
		s.serving = append(s.serving, pr)
		s.byID[d.cfg.Sinch.ProjectID] = pr
	}

	// Every project a reload may add shares the connection pool.
	store.ServeProjects(len(s.serving))

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{
		Handler:           metrics.Handler(s.registry, daemonHealth(store, s.running)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpDone := make(chan error, 1)
	go func() { httpDone <- serveUntilDone(httpCtx, srv, ln) }()
	defer func() { stopHTTP(); <-httpDone }()

	// Every process takes callbacks, standby or not: the proxy in front may
	// send them to any of them, and the one that leads is woken.
	stopWebhooks, err := e.serveWebhooks(ctx, s.serving)
	if err != nil {
		return err
	}
	defer stopWebhooks()

	s.lastCheck.Store(time.Now().UnixNano())
	s.elector = leader.New(store.SQL(), s.ids(), log.Named("leader"), leader.Options{
		Busy: func(id string) bool { p := s.project(id); return p != nil && p.busy() },
		OnChange: func(id string, leading bool) {
			if p := s.project(id); p != nil {
				p.setLeading(leading)
			}
		},
		OnCheck: func() { s.lastCheck.Store(time.Now().UnixNano()) },
	})
	runCtx, stopRuns := context.WithCancel(ctx)
	electDone := make(chan struct{})
	go func() {
		defer close(electDone)
		// Run's only error is ctx's end.
		_ = s.elector.Run(runCtx, func(ctx context.Context, id string) {
			if p := s.project(id); p != nil {
				p.lead(ctx, s.retention)
			}
		})
	}()
	waitRuns := true
	defer func() {
		stopRuns()
		if waitRuns {
			<-electDone
		}
	}()

	hangups := e.hangups
	if hangups == nil {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGHUP)
		defer signal.Stop(ch)
		hangups = ch
	}

	// Ready: the database answers, the schema is this binary's, the
	// listeners serve and the process takes part in the elections. Not the
	// first run's end: a standby never runs one, and a first run may take
	// hours.
	notifySystemd(log, daemon.SdNotifyReady, "STATUS=started; electing who syncs each project")
	log.Info("syncd is running", zap.String("config", e.configSource()), zap.String("http", ln.Addr().String()), zap.Strings("projects", projectNamesOf(s.serving)))
	if e.ready != nil {
		e.ready(ln.Addr().String())
	}
	stopWatchdog := startWatchdog(log, s.stalled)
	defer stopWatchdog()

	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hangups:
			s.reload()
		}
	}
	timeout := s.config().ShutdownTimeout
	// systemd waits this long for the exit however TimeoutStopSec= is set,
	// so that the two cannot drift apart: shutdown_timeout, and time to
	// record the journal after it.
	notifySystemd(log, daemon.SdNotifyStopping, fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d", (timeout+stopMargin).Microseconds()),
		"STATUS=stopping: letting operations in flight finish")
	log.Info("stopping: no new operations; waiting for those in flight", zap.Duration("shutdown_timeout", timeout))
	stopRuns()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-electDone:
		log.Info("stopped")
	case <-timer.C:
		log.Warn("shutdown_timeout passed with operations in flight; exiting, the journal keeps them pending and the next run finishes the work")
		waitRuns = false // the process is exiting
	}
	return nil
}

// stopMargin is what systemd is asked to wait beyond shutdown_timeout:
// a run's end is recorded within 10 s of its context's end.
const stopMargin = 15 * time.Second

// retention is journal.retention as it runs now, for the pruning.
func (s *daemonState) retention() time.Duration { return s.config().Journal.Retention }

func projectNamesOf(ps []*projectRun) []string {
	names := make([]string, 0, len(ps))
	for _, p := range ps {
		names = append(names, p.d.project)
	}
	return names
}

func formatNext(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// notifySystemd sends a notify-protocol message when syncd runs under
// systemd with Type=notify; elsewhere it does nothing.
func notifySystemd(log *zap.Logger, states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		log.Warn("systemd notify", zap.Error(err))
	}
}
