package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	stdsync "sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/leader"
	"github.com/syncd/syncd/metrics"
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
Every hour, journal entries and runs older than journal.retention are pruned.
Serves every project of the configuration (or --project's). Run it on
several hosts against one PostgreSQL: for each project one process is active
and the others stand by, taking it over within seconds of its loss; the
projects spread over the live processes. One run at a time per Sinch
project, across hosts (a PostgreSQL advisory lock). Serves /healthz, /readyz
and /metrics on http.listen, and speaks systemd's notify protocol
(Type=notify, watchdog). Refuses to start on a database with migrations
pending.

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
	outcome string
	why     string // why it failed
}

func (s *runStatus) set(outcome, why string) {
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

func (s *runStatus) last() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcome, s.outcome != ""
}

func (e *env) daemon(ctx context.Context) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	log, err := e.logger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	store, err := crm.Open(ctx, cfg.Database.URL, log)
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
	registry := metrics.New()
	var projects []*projectRun
	for _, p := range serve {
		d, err := projectDeps(p, log, store, registry)
		if err != nil {
			return fmt.Errorf("project %s: %w", p.Name, err)
		}
		projects = append(projects, newProjectRun(d))
	}

	store.ServeProjects(len(projects))

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{
		Handler:           metrics.Handler(registry, daemonHealth(store, projects)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpDone := make(chan error, 1)
	go func() { httpDone <- serveUntilDone(httpCtx, srv, ln) }()
	defer func() { stopHTTP(); <-httpDone }()

	// Every process takes callbacks, standby or not: the proxy in front may
	// send them to any of them, and the one that leads is woken.
	stopWebhooks, err := e.serveWebhooks(ctx, projects)
	if err != nil {
		return err
	}
	defer stopWebhooks()

	db, err := store.DB().DB()
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	byID := make(map[string]*projectRun, len(projects))
	ids := make([]string, 0, len(projects))
	for _, p := range projects {
		byID[p.d.cfg.Sinch.ProjectID] = p
		ids = append(ids, p.d.cfg.Sinch.ProjectID)
	}
	elector := leader.New(db, ids, log.Named("leader"), leader.Options{
		Busy:     func(id string) bool { return byID[id].busy() },
		OnChange: func(id string, leading bool) { byID[id].setLeading(leading) },
	})
	runCtx, stopRuns := context.WithCancel(ctx)
	electDone := make(chan struct{})
	go func() {
		defer close(electDone)
		// Run's only error is ctx's end.
		_ = elector.Run(runCtx, func(ctx context.Context, id string) { byID[id].lead(ctx) })
	}()
	waitRuns := true
	defer func() {
		stopRuns()
		if waitRuns {
			<-electDone
		}
	}()

	notifySystemd(log, daemon.SdNotifyReady, "STATUS=started; electing who syncs each project")
	names := make([]string, 0, len(projects))
	for _, p := range projects {
		names = append(names, p.d.project)
	}
	log.Info("syncd is running", zap.String("http", ln.Addr().String()), zap.Strings("projects", names))
	if e.ready != nil {
		e.ready(ln.Addr().String())
	}
	stopWatchdog := startWatchdog(log)
	defer stopWatchdog()

	<-ctx.Done()
	notifySystemd(log, daemon.SdNotifyStopping, "STATUS=stopping: letting operations in flight finish")
	log.Info("stopping: no new operations; waiting for those in flight", zap.Duration("shutdown_timeout", cfg.ShutdownTimeout))
	stopRuns()
	timer := time.NewTimer(cfg.ShutdownTimeout)
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

// startWatchdog pings systemd's watchdog at half its interval when the unit
// sets WatchdogSec, so that a wedged process is restarted.
func startWatchdog(log *zap.Logger) (stop func()) {
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(interval / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				notifySystemd(log, daemon.SdNotifyWatchdog)
			}
		}
	}()
	return func() { close(done); <-stopped }
}
