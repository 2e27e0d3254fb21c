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
	"github.com/syncd/syncd/metrics"
	contactsync "github.com/syncd/syncd/sync"
	"github.com/syncd/syncd/webhook"
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
One run at a time per Sinch project, across hosts (a PostgreSQL advisory
lock). Serves /healthz, /readyz and /metrics on http.listen, and speaks
systemd's notify protocol (Type=notify, watchdog). Refuses to start on a
database with migrations pending.

Exit status: 0 stopped by SIGINT or SIGTERM, 1 error at start (the
configuration, the database, migrations pending, http.listen in use).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return e.daemon(cmd.Context())
		},
	}
}

// runStatus is what the daemon knows of its last run, for /readyz and the
// systemd status line.
type runStatus struct {
	mu      stdsync.Mutex
	outcome string
	line    string
	why     string // why it failed
}

func (s *runStatus) set(outcome, line, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome, s.line, s.why = outcome, line, why
}

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
	d, err := e.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	cfg, log := d.cfg, d.log

	status := &runStatus{}
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{
		Handler:           metrics.Handler(d.registry, metrics.Health{Ping: d.store.Ping, LastRun: status.last, FailedBecause: status.failedBecause}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	httpCtx, stopHTTP := context.WithCancel(context.WithoutCancel(ctx))
	httpDone := make(chan error, 1)
	go func() { httpDone <- serveUntilDone(httpCtx, srv, ln) }()
	defer func() { stopHTTP(); <-httpDone }()

	events := webhook.NewStore(d.store.DB())
	stored := make(chan struct{}, 1)
	stopWebhook, err := e.serveWebhook(ctx, d, events, func() {
		select {
		case stored <- struct{}{}:
		default: // an event run is already asked for
		}
	})
	if err != nil {
		return err
	}
	defer stopWebhook()

	rec := d.reconciler(false)
	if cfg.Webhook.Listen != "" {
		rec.Events = events
	}

	runCtx, stopRuns := context.WithCancel(ctx)
	defer stopRuns()
	var changes chan struct{}
	listening := make(chan struct{})
	listenDone := make(chan struct{})
	if cfg.CRM.Notify {
		changes = make(chan struct{}, 1)
		var once stdsync.Once
		go func() {
			defer close(listenDone)
			_ = d.store.Listen(runCtx, func() { once.Do(func() { close(listening) }) }, func(payload string) {
				// A rename keeps its contact: the run re-keys it.
				if c := crm.ParseChange(payload); c.Renamed() {
					rec.NoteRename(c.OldID, c.NewID)
				}
				select {
				case changes <- struct{}{}:
				default: // a run is already asked for
				}
			})
		}()
	} else {
		close(listening)
		close(listenDone)
	}

	dmn := &contactsync.Daemon{
		Reconciler:  rec,
		Logger:      log,
		Incremental: cfg.Schedule.Incremental,
		Full:        cfg.Schedule.Full,
		OnSkip:      d.metrics.TickSkipped,
		// A first run at start catches up on what changed while syncd was
		// down (a full one when nothing was ever synced).
		RunAtStart: true,
	}
	if cfg.Webhook.Listen != "" {
		dmn.Events = stored
	}
	dmn.OnRun = func(rep contactsync.Report, err error) {
		inc, full := dmn.NextRuns()
		line := fmt.Sprintf("last run: %s %s at %s (%s); next incremental %s, next full %s",
			rep.Kind, rep.Outcome, time.Now().Format(time.RFC3339), rep.Plan.Summary(), formatNext(inc), formatNext(full))
		status.set(rep.Outcome, line, failure(rep, err))
		notifySystemd(log, "STATUS="+line)
		d.metrics.DeletesWithheld(rep.Kind, rep.Withheld)
	}
	// Every process that runs the schedules is active for the project (the
	// advisory lock takes turns between them).
	d.metrics.SetActive(true)
	// The schedules' periods let alerts and dashboards compare runs with
	// them; a spec that does not parse is dmn.Run's error to report.
	for kind, spec := range map[string]string{contactsync.RunIncremental: cfg.Schedule.Incremental, contactsync.RunFull: cfg.Schedule.Full} {
		if s, err := contactsync.ParseSchedule(spec); err == nil {
			d.metrics.SetSchedule(kind, s)
		}
	}

	// Changes committed from here on wake a run.
	select {
	case <-listening:
	case <-ctx.Done():
		return nil
	}
	daemonDone := make(chan error, 1)
	go func() { daemonDone <- dmn.Run(runCtx, changes) }()
	pruned := make(chan struct{})
	go func() { defer close(pruned); pruneLoop(runCtx, d) }()
	defer func() { stopRuns(); <-pruned }()
	notifySystemd(log, daemon.SdNotifyReady, "STATUS=started; first run under way")
	log.Info("syncd is running", zap.String("http", ln.Addr().String()), zap.Bool("crm_notify", cfg.CRM.Notify),
		zap.String("webhook", cfg.Webhook.Listen),
		zap.String("incremental", cfg.Schedule.Incremental), zap.String("full", cfg.Schedule.Full))
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
	case err := <-daemonDone:
		<-listenDone
		if err != nil {
			return err
		}
		log.Info("stopped")
	case <-timer.C:
		log.Warn("shutdown_timeout passed with operations in flight; exiting, the journal keeps them pending and the next run finishes the work")
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
