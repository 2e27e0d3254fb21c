package main

import (
	"context"
	"fmt"
	"strings"
	stdsync "sync"
	"time"

	"go.uber.org/zap"

	"github.com/syncd/syncd/crm"
	"github.com/syncd/syncd/metrics"
	"github.com/syncd/syncd/state"
	contactsync "github.com/syncd/syncd/sync"
)

// projectRun is one project as `syncd run` serves it: its callbacks are
// taken whether or not this process leads it, its schedules run only while
// it does.
type projectRun struct {
	d      *deps
	status *runStatus
	events *state.Events
	stored chan struct{} // a callback was stored: an event run is due

	mu       stdsync.Mutex
	dmn      *contactsync.Daemon // while its schedules run
	active   bool                // this process leads the project
	schedule ScheduleConfig      // as it runs now: a reload may change it
	rate     float64             // sinch.rate_limit_rps as it runs now

	// What the watchdog looks at (see daemonState.stalled), under mu.
	beat     time.Time // the scheduler's last heartbeat
	running  bool      // a run holds the project lock
	progress time.Time // the run's last sign of progress
}

func newProjectRun(d *deps) *projectRun {
	return &projectRun{d: d, status: &runStatus{}, events: d.store.Events(), stored: make(chan struct{}, 1),
		schedule: d.cfg.Schedule, rate: d.cfg.Sinch.RateLimitRPS}
}

// config is the project's configuration as it runs now: as it started,
// with what reloads applied.
func (p *projectRun) config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.d.cfg
	cfg.Schedule, cfg.Sinch.RateLimitRPS = p.schedule, p.rate
	return cfg
}

// setRateLimit applies a reloaded sinch.rate_limit_rps to the project's
// client.
func (p *projectRun) setRateLimit(rps float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.d.client.SetRateLimit(rps)
	p.rate = rps
}

// setSchedule applies a reloaded schedule: to the daemon running the
// project's schedules, if it leads it now, and to its next lead.
func (p *projectRun) setSchedule(sc ScheduleConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dmn != nil {
		if err := p.dmn.SetSchedules(sc.Incremental, sc.Full); err != nil {
			return err
		}
	}
	p.schedule = sc
	exportSchedules(p.d.metrics, sc)
	return nil
}

// heartbeat is the scheduler's sign of life.
func (p *projectRun) heartbeat() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.beat = time.Now()
}

// progressed notes a sign of progress of the run going on.
func (p *projectRun) progressed() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.progress = time.Now()
}

// holding notes whether a run holds the project lock: from taking it
// until the run is reported (or the daemon is no longer busy).
func (p *projectRun) holding(held bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running = held
	p.progress = time.Now()
}

// watchedLocks tells the watchdog when a run holds the project lock, and
// so is expected to make progress: waiting for the lock is not stalling.
type watchedLocks struct {
	contactsync.Locks
	p *projectRun
}

func (w watchedLocks) Lock(ctx context.Context, projectID string) (*state.Lock, error) {
	w.p.holding(false) // waiting, however long, is not stalling
	l, err := w.Locks.Lock(ctx, projectID)
	w.p.holding(err == nil)
	return l, err
}

func (w watchedLocks) TryLock(ctx context.Context, projectID string) (*state.Lock, error) {
	l, err := w.Locks.TryLock(ctx, projectID)
	w.p.holding(err == nil)
	return l, err
}

// wake asks for an event run.
func (p *projectRun) wake() {
	select {
	case p.stored <- struct{}{}:
	default: // one is already asked for
	}
}

// busy reports whether a run of the project is going in this process.
func (p *projectRun) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dmn != nil && p.dmn.Busy()
}

func (p *projectRun) setDaemon(d *contactsync.Daemon) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d != nil && p.dmn == nil {
		// A reload between the lead's start and now is not lost.
		_ = d.SetSchedules(p.schedule.Incremental, p.schedule.Full)
	}
	p.dmn = d
	p.beat, p.running = time.Now(), false
}

// lead runs the project's schedules, CRM notifications, event runs and
// journal pruning (retention says how far back) until ctx ends: this
// process leads the project until then.
func (p *projectRun) lead(ctx context.Context, retention func() time.Duration) {
	d, cfg, log := p.d, p.d.cfg, p.d.log
	p.mu.Lock()
	schedule := p.schedule
	p.mu.Unlock()
	rec := d.reconciler(false)
	if cfg.Webhook.Listen != "" {
		rec.Events = p.events
	}
	rec.Locks = watchedLocks{Locks: rec.Locks, p: p}
	rec.OnProgress = func(contactsync.Progress) { p.progressed() }

	var changes chan struct{}
	listening := make(chan struct{})
	listenDone := make(chan struct{})
	if cfg.CRM.Notify || cfg.Webhook.Listen != "" {
		if cfg.CRM.Notify {
			changes = make(chan struct{}, 1)
		}
		var once stdsync.Once
		go func() {
			defer close(listenDone)
			_ = listenForWakes(ctx, d, func() { once.Do(func() { close(listening) }) }, p.wake, func(payload string) {
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
		Incremental: schedule.Incremental,
		Full:        schedule.Full,
		OnSkip:      d.metrics.TickSkipped,
		Heartbeat:   p.heartbeat,
		// A first run at start catches up on what changed while no process
		// led the project (a full one when nothing was ever synced, or when
		// the last full run was cut short). It waits for a run still
		// holding the project lock: the last one of a leader that lost its
		// session.
		RunAtStart: true,
	}
	if cfg.Webhook.Listen != "" {
		dmn.Events = p.stored
	}
	dmn.OnRun = func(rep contactsync.Report, err error) {
		p.holding(false)
		inc, full := dmn.NextRuns()
		line := fmt.Sprintf("last run of %s: %s %s at %s (%s); next incremental %s, next full %s",
			p.d.project, rep.Kind, rep.Outcome, time.Now().Format(time.RFC3339), rep.Plan.Summary(), formatNext(inc), formatNext(full))
		p.status.set(rep.Outcome, failure(rep, err))
		notifySystemd(log, "STATUS="+line)
		d.metrics.DeletesWithheld(rep.Kind, rep.Withheld)
	}
	// The schedules' periods let alerts and dashboards compare runs with
	// them.
	exportSchedules(d.metrics, schedule)

	// Changes committed from here on wake a run.
	select {
	case <-listening:
	case <-ctx.Done():
		<-listenDone
		return
	}
	p.setDaemon(dmn)
	defer p.setDaemon(nil)
	pruned := make(chan struct{})
	go func() { defer close(pruned); pruneLoop(ctx, d, retention) }()
	log.Info("leading the project: running its schedules", zap.Bool("crm_notify", cfg.CRM.Notify),
		zap.String("webhook", cfg.Webhook.Listen),
		zap.String("incremental", schedule.Incremental), zap.String("full", schedule.Full))
	if err := dmn.Run(ctx, changes); err != nil {
		log.Error("the project's schedules stopped", zap.Error(err))
	}
	<-listenDone
	<-pruned
	log.Info("no longer leading the project")
}

// daemonHealth is /readyz for a process serving projects: ready while the
// database answers and no project's last run here failed; a process
// standing by for every project is ready too. Its answer says which
// projects this process leads.
func daemonHealth(store *state.Store, running func() []*projectRun) metrics.Health {
	return metrics.Health{
		Ping: store.Ping,
		LastRun: func() (state.Outcome, bool) {
			var outcome state.Outcome
			any := false
			for _, p := range running() {
				if o, ok := p.status.last(); ok {
					if o == state.OutcomeFailed {
						return o, true
					}
					outcome, any = o, true
				}
			}
			return outcome, any
		},
		FailedBecause: func() string {
			var why []string
			for _, p := range running() {
				if o, _ := p.status.last(); o == state.OutcomeFailed {
					why = append(why, p.d.project+": "+p.status.failedBecause())
				}
			}
			return strings.Join(why, "; ")
		},
		Roles: func() string {
			var active, standby []string
			for _, p := range running() {
				if p.leading() {
					active = append(active, p.d.project)
				} else {
					standby = append(standby, p.d.project)
				}
			}
			return roles(active, standby)
		},
	}
}

func (p *projectRun) leading() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

// setLeading is told by the elector when this process starts or stops
// leading the project.
func (p *projectRun) setLeading(leading bool) {
	p.mu.Lock()
	p.active = leading
	p.mu.Unlock()
	p.d.metrics.SetActive(leading)
	if !leading {
		p.status.standBy()
	}
}

// roles says in a few words which projects a process leads.
func roles(active, standby []string) string {
	var parts []string
	if len(active) > 0 {
		parts = append(parts, "active for "+strings.Join(active, ", "))
	}
	if len(standby) > 0 {
		parts = append(parts, "standing by for "+strings.Join(standby, ", "))
	}
	return strings.Join(parts, "; ")
}

// exportSchedules sets the schedules' periods, which alerts and dashboards
// compare runs with; the configuration checked that they parse.
func exportSchedules(m *metrics.Project, sc ScheduleConfig) {
	for kind, spec := range map[state.RunKind]string{state.RunIncremental: sc.Incremental, state.RunFull: sc.Full} {
		if s, err := contactsync.ParseSchedule(spec); err == nil {
			m.SetSchedule(kind, s)
		}
	}
}
